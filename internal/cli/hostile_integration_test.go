package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// evilApp is a python app that attacks the node and other apps from its
// own process (endpoints) and from its update_fetch script.
var evilApp = map[string]string{
	"app.ini": "[production]\napp_name = evil\nrunner = app.py\nupdate_fetch = script:bin/attack.sh\n" +
		"limit.memory = 200M\nlimit.tasks = 64\nlimit.cpu_weight = 20\nlimit.file_size = 2M\n",
	"app.py": `import os, socket, threading, urllib.parse

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
    return s.recv(200).decode(errors="replace")

def squat(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    def serve():
        while True:
            c, _ = s.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsquatted: your visitors are mine\n")
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    return "listening on %d" % port

def swap(target):
    sock = "/run/toppcloud/%s/app.sock" % os.environ["SILVER_INSTANCE_NAME"]
    os.unlink(sock)
    os.symlink(target, sock)
    return "swapped"

def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    path = environ["PATH_INFO"]
    try:
        if path == "/connect":
            body = "connected: " + connect(int(q["port"]))
        elif path == "/squat":
            body = squat(int(q["port"]))
        elif path == "/swap":
            body = swap(q["target"])
        elif path == "/read":
            body = "read: " + open(q["path"]).read()
        else:
            body = "evil app"
    except Exception as e:
        body = "failed: %s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
`,
	"bin/attack.sh": `#!/bin/sh
printf 'escape \033]0;owned\007\033[2J done\n'
echo "whoami: $(id -un)"
echo "node secret: $(cat /var/lib/toppcloud/secret 2>&1)"
echo "victim config: $(cat /var/lib/toppcloud/apps/victim/config/secrets.ini 2>&1)"
echo "victim secret: $(cat /var/lib/toppcloud/apps/victim/secret 2>&1)"
echo "www: $(ls /var/www 2>&1 | tr '\n' ' ')"
setsid sh -c 'exec sleep 3001' </dev/null >/dev/null 2>&1 &
head -c 3000000 /dev/zero > "$TEMP/big"; echo "big file: $?"
rm -f "$SILVER_LOGS/errors.log"; ln -s /var/lib/toppcloud/secret "$SILVER_LOGS/errors.log"
echo "attacks done"
`,
}

// TestIntegration_Hostile deploys apps that attack the node and each
// other, on one real local node: each subtest is an item of the
// hardening issue, and each failed before its fix. Nothing an app does
// may change what another app serves or read another app's secrets.
func TestIntegration_Hostile(t *testing.T) {
	e := newLocalEnv(t)
	node, w, root := e.setUpNode(t, "hostile")
	rootSh := rootShell(root)
	sh := func(t *testing.T, script string) string {
		t.Helper()
		return strings.TrimSpace(rootSh(t, script))
	}
	// fails runs a command that must fail, and returns its output.
	fails := func(t *testing.T, script string) string {
		t.Helper()
		out, err := root.Output(context.Background(), []string{"sh", "-c", script}, nil)
		if err == nil {
			t.Errorf("%s succeeded: %s", script, out)
		}
		return string(out)
	}

	const victimSecret = "hunter2-of-the-victim"
	victim := copyApp(t, "python", map[string]string{"app.ini": "[production]\napp_name = victim\nrunner = app.py\n"})
	config := t.TempDir()
	os.WriteFile(filepath.Join(config, "secrets.ini"), []byte("[db]\npassword = "+victimSecret+"\n"), 0o644)
	e.ok("update", victim, "victim.test", "--node", node, "--config", config)
	vcmd := copyApp(t, "command", map[string]string{"app.ini": "[production]\napp_name = vcmd\nrunner = server\n"})
	e.ok("update", vcmd, "vcmd.test", "--node", node)
	w.expect("victim.test", "/", 200, "Hello from toppcloud")
	w.expect("vcmd.test", "/", 200, "Hello from a command app")
	victimLive, _ := liveAt(e.query(node), "victim.test")
	vcmdLive, _ := liveAt(e.query(node), "vcmd.test")

	t.Run("1 a symlink planted for an instance's socket directory is not followed", func(t *testing.T) {
		// Caddy's user (or group) cannot plant anything there any more.
		fails(t, "runuser -u caddy -- ln -s /etc /run/toppcloud/planted")
		if got := sh(t, "stat -c '%U:%G %a' /run/toppcloud"); got != "root:root 755" {
			t.Errorf("/run/toppcloud is %s", got)
		}
		before := sh(t, "stat -c '%U:%G %a' /etc/toppcloud")
		// The name the next update of victim gets.
		m := regexp.MustCompile(`_(\d{3})$`).FindStringSubmatch(victimLive)
		var n int
		fmt.Sscanf(m[1], "%d", &n)
		next := fmt.Sprintf("%s_%03d", strings.TrimSuffix(victimLive, "_"+m[1]), n+1)
		sh(t, "ln -s /etc/toppcloud /run/toppcloud/"+next)
		code, out := e.run("update", victim, "victim.test", "--node", node, "--force")
		if after := sh(t, "stat -c '%U:%G %a' /etc/toppcloud"); after != before {
			t.Errorf("/etc/toppcloud changed from %s to %s through the planted symlink", before, after)
		}
		if code != ExitFailed || !strings.Contains(out, "not a directory") {
			t.Errorf("update over a planted symlink: exit %d\n%s", code, out)
		}
		sh(t, "rm -f /run/toppcloud/"+next)
		w.expect("victim.test", "/", 200, "Hello from toppcloud")
		if live, _ := liveAt(e.query(node), "victim.test"); live != victimLive {
			t.Errorf("live changed to %s", live)
		}
	})

	var evilOut string
	t.Run("deploying the hostile app", func(t *testing.T) {
		evilOut = e.ok("update", copyApp(t, "python", evilApp), "evil.test", "--node", node)
		w.expect("evil.test", "/", 200, "evil app")
	})
	evilLive, _ := liveAt(e.query(node), "evil.test")

	t.Run("2 and 9 secrets and code are not every local user's", func(t *testing.T) {
		cfg := "/var/lib/toppcloud/apps/victim/config/secrets.ini"
		for _, u := range []string{"nobody", "caddy", "app-evil", "www-mgr"} {
			fails(t, "runuser -u "+u+" -- cat "+cfg)
			fails(t, "runuser -u "+u+" -- cat /var/lib/toppcloud/secret")
			fails(t, "runuser -u "+u+" -- cat /var/lib/toppcloud/apps/victim/secret")
			if u != "caddy" { // Caddy serves the static files
				fails(t, "runuser -u "+u+" -- ls /var/www/"+victimLive)
				fails(t, "runuser -u "+u+" -- cat /var/www/"+victimLive+"/app.py")
			}
		}
		if got := sh(t, "runuser -u app-victim -- cat "+cfg); !strings.Contains(got, victimSecret) {
			t.Errorf("the app cannot read its own config: %q", got)
		}
		sh(t, "runuser -u caddy -- ls /var/www/"+victimLive+"/static")
		w.expect("victim.test", "/robots.txt", 200, "User-agent")
		// Each app's secret is its own.
		ev := w.expect("evil.test", "/read?path=/var/lib/toppcloud/apps/evil/secret", 200, "read: ")
		if vs := sh(t, "cat /var/lib/toppcloud/apps/victim/secret"); strings.Contains(ev, vs) || vs == "" {
			t.Errorf("evil's secret is victim's: %q %q", ev, vs)
		}
	})

	t.Run("3 update_fetch scripts run sandboxed and leave nothing behind", func(t *testing.T) {
		for _, want := range []string{"| whoami: app-evil", "| node secret: cat: /var/lib/toppcloud/secret: No such file", "| attacks done"} {
			if !strings.Contains(evilOut, want) {
				t.Errorf("output lacks %q:\n%s", want, evilOut)
			}
		}
		if strings.Contains(evilOut, victimSecret) || strings.Contains(evilOut, victimLive) {
			t.Errorf("the script read the victim's secrets or code:\n%s", evilOut)
		}
		if left := sh(t, "pgrep -f '[s]leep 3001' || true"); left != "" {
			t.Errorf("the script's daemon outlived it: pid %s", left)
		}
	})

	t.Run("4 no app reaches a command app around the front server or takes its port", func(t *testing.T) {
		port := sh(t, "sed -n 's/^PORT=//p' /etc/toppcloud/instances/"+vcmdLive+"/proxy.env")
		body := w.expect("evil.test", "/connect?port="+port, 200)
		if !strings.Contains(body, "failed: ConnectionRefusedError") {
			t.Errorf("evil connected to vcmd's port directly: %s", body)
		}
		// vcmd goes down; evil binds its port.
		sh(t, "systemctl stop toppcloud-app@"+vcmdLive+".service")
		w.expect("evil.test", "/squat?port="+port, 200, "listening on "+port)
		code, got := w.get("vcmd.test", "/")
		if strings.Contains(got, "squatted") || code == 200 {
			t.Errorf("vcmd's visitors reached the squatter: %d %s", code, got)
		}
		if log := sh(t, "journalctl -u toppcloud-app-proxy@"+vcmdLive+".service --no-pager"); !strings.Contains(log, "not the app's") {
			t.Errorf("the proxy did not say why it refused:\n%s", log)
		}
		sh(t, "systemctl restart toppcloud-app@"+evilLive+".service && systemctl start toppcloud-app@"+vcmdLive+".service")
		waitFor(t, 30*time.Second, func() bool { c, _ := tryGet(w.addr, "vcmd.test", "/"); return c == 200 })
		w.expect("vcmd.test", "/", 200, "Hello from a command app")
	})

	t.Run("5 slow request bodies do not stall an app", func(t *testing.T) {
		e.ok("update", copyApp(t, "php", map[string]string{"app.ini": "[production]\napp_name = vphp\nplatform = php\nrunner = index.php\n"}), "vphp.test", "--node", node)
		w.expect("vphp.test", "/", 200, "Hello from PHP")
		// 40 POSTs whose chunked bodies trickle, a byte every few
		// seconds, to each app.
		const slow = 40
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range slow {
			host := []string{"victim.test", "vphp.test"}[i%2]
			c, err := net.DialTimeout("tcp", net.JoinHostPort(w.addr, "80"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n1\r\na\r\n", host)
		}
		stop := make(chan struct{})
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Second):
				}
				for _, c := range conns {
					c.Write([]byte("1\r\nb\r\n"))
				}
			}
		}()
		defer func() { close(stop); <-trickled }()
		time.Sleep(3 * time.Second)
		// Both apps answer everyone else meanwhile.
		for i := range 10 {
			for _, host := range []string{"victim.test", "vphp.test"} {
				start := time.Now()
				code, err := tryGet(w.addr, host, "/")
				t.Logf("GET %s #%d with %d slow POSTs open: %d in %s (%v)", host, i, slow, code, time.Since(start).Round(time.Millisecond), err)
				if err != nil || code != 200 {
					t.Errorf("GET %s while %d slow POSTs are open: %d %v", host, slow, code, err)
				}
			}
		}
	})

	t.Run("6 logs reads the app's errors.log safely", func(t *testing.T) {
		// The update_fetch script made it a symlink to the node secret.
		nodeSecret := sh(t, "cat /var/lib/toppcloud/secret")
		code, out := e.run("logs", "evil.test", "--node", node)
		if code != ExitOK || strings.Contains(out, nodeSecret) || !strings.Contains(out, "errors.log not shown: errors.log is a symlink") {
			t.Errorf("logs of a symlinked errors.log: exit %d\n%s", code, out)
		}
		sh(t, "rm /var/log/toppcloud/apps/evil/errors.log && runuser -u app-evil -- mkfifo /var/log/toppcloud/apps/evil/errors.log")
		done := make(chan string, 1)
		go func() { _, out := e.run("logs", "evil.test", "--node", node); done <- out }()
		select {
		case out := <-done:
			if !strings.Contains(out, "not a regular file") {
				t.Errorf("logs of a FIFO:\n%s", out)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("logs hung on a FIFO")
		}
		sh(t, "rm /var/log/toppcloud/apps/evil/errors.log")
	})

	t.Run("7 every app unit and its scripts have limits", func(t *testing.T) {
		props := sh(t, "systemctl show -p MemoryMax -p TasksMax -p CPUWeight -p LimitFSIZE toppcloud-app@"+evilLive+".service")
		for _, want := range []string{"MemoryMax=209715200", "TasksMax=64", "CPUWeight=20", "LimitFSIZE=2097152"} {
			if !strings.Contains(props, want) {
				t.Errorf("evil's unit lacks %s:\n%s", want, props)
			}
		}
		props = sh(t, "systemctl show -p MemoryMax -p TasksMax toppcloud-app@"+victimLive+".service; grep MemTotal /proc/meminfo")
		if strings.Contains(props, "MemoryMax=infinity") || strings.Contains(props, "TasksMax=infinity") {
			t.Errorf("victim has no default limits:\n%s", props)
		}
		// The file size limit holds in the update_fetch script's unit.
		if !strings.Contains(evilOut, "| big file: 153") {
			t.Errorf("the script wrote a file past limit.file_size (want exit 153, SIGXFSZ):\n%s", evilOut)
		}
	})

	t.Run("8 the app's control characters never reach the terminal", func(t *testing.T) {
		if strings.ContainsAny(evilOut, "\x1b\x07") || !strings.Contains(evilOut, "| escape ^[]0;owned^G^[[2J done") {
			t.Errorf("update output:\n%q", evilOut)
		}
	})

	t.Run("11 an app cannot swap the socket the front server dials", func(t *testing.T) {
		body := w.expect("evil.test", "/swap?target=/run/toppcloud/"+victimLive+"/app.sock", 200)
		if !strings.Contains(body, "failed: PermissionError") {
			t.Errorf("swap: %s", body)
		}
		w.expect("evil.test", "/", 200, "evil app")
		if code, body := w.get("evil.test", "/"); strings.Contains(body, "Hello from toppcloud") {
			t.Errorf("evil.test served the victim: %d", code)
		}
		// The app stops on its own (gunicorn exits 0 on SIGTERM, so
		// nothing restarts it) while still routed; a process of the same
		// app then tries the swap in the directory the stop handed back.
		unit := "toppcloud-app@" + evilLive + ".service"
		sh(t, "systemctl kill --signal=SIGTERM "+unit+" && for i in $(seq 50); do systemctl is-active -q "+unit+" || break; sleep 0.2; done")
		fails(t, "runuser -u app-evil -- ln -sf /run/toppcloud/"+victimLive+"/app.sock /run/toppcloud/"+evilLive+"/app.sock")
		if code, body := w.get("evil.test", "/"); strings.Contains(body, "Hello from toppcloud") {
			t.Errorf("evil.test served the victim after its app stopped: %d", code)
		}
		sh(t, "systemctl start "+unit)
		w.expect("evil.test", "/", 200, "evil app")
	})

	t.Run("12 logrotate works in an app's log directory as the app", func(t *testing.T) {
		rule := sh(t, "cat /etc/logrotate.d/toppcloud-app-evil")
		if !strings.Contains(rule, "su app-evil app-evil") {
			t.Errorf("rule:\n%s", rule)
		}
		sh(t, "runuser -u app-evil -- sh -c 'echo line > /var/log/toppcloud/apps/evil/app.log' && logrotate -f /etc/logrotate.d/toppcloud-app-evil")
		if owner := sh(t, "stat -c %U /var/log/toppcloud/apps/evil/app.log.1"); owner != "app-evil" {
			t.Errorf("rotated log owned by %s", owner)
		}
		if got := sh(t, "systemctl show -p TimersCalendar logrotate.timer"); !strings.Contains(got, "hourly") && !strings.Contains(got, "*-*-* *:00:00") {
			t.Errorf("logrotate timer: %s", got)
		}
	})

	// Whatever evil did, the others serve what they served.
	w.expect("victim.test", "/", 200, "Hello from toppcloud")
	w.expect("vcmd.test", "/", 200, "Hello from a command app")
	if code, _ := w.get("victim.test", "/"); code != http.StatusOK {
		t.Errorf("victim: %d", code)
	}
}
