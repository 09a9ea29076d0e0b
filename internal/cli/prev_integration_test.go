package cli

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// TestIntegration_Prev deploys v1 then v2 of an app on a local node and
// checks that prev.HOST answers with v1, started on demand, while HOST
// answers with v2; then the rollback, the next deploy, deactivate, https
// and a command app; and that route changes still fail no request with
// prev. routes about.
func TestIntegration_Prev(t *testing.T) {
	e := newLocalEnv(t)
	node := localtest.UniqueName("prev")
	t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", node); code != ExitOK {
			t.Errorf("destroy-node: %s", out)
		}
	})
	e.ok("create-node", node, "--setup-node")
	rec := e.record(node)
	w := web{t: t, addr: rec.Address()}
	root := e.dial(rec, "root")
	sh := func(t *testing.T, script string) string {
		t.Helper()
		out, err := root.Output(t.Context(), []string{"sh", "-c", script}, nil)
		if err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
		return string(out)
	}
	instanceOf := func(t *testing.T, host string) string {
		t.Helper()
		var env map[string]string
		if err := json.Unmarshal([]byte(w.expect(host, "/env", 200)), &env); err != nil {
			t.Fatal(err)
		}
		return env["SILVER_INSTANCE_NAME"]
	}
	// What answers on demand: the sockets under /run/toppcloud/prev.
	armed := func(t *testing.T) string {
		t.Helper()
		return strings.TrimSpace(sh(t, "ls /run/toppcloud/prev 2>/dev/null || true"))
	}
	// An update arms the previous instance after it returns, in a
	// transient unit (toppcloud node prev-sync): wait for that to be done.
	synced := func(t *testing.T) bool {
		t.Helper()
		return strings.TrimSpace(sh(t, "systemctl list-units --all --no-legend 'toppcloud-prev-sync-*' | wc -l")) == "0"
	}
	waitArmed := func(t *testing.T, want string) {
		t.Helper()
		waitFor(t, time.Minute, func() bool { return synced(t) && armed(t) == want })
	}
	state := func(t *testing.T, inst string) string {
		t.Helper()
		return strings.TrimSpace(sh(t, "systemctl is-active toppcloud-app@"+inst+".service || true"))
	}
	v1 := copyApp(t, "python", nil)
	v2 := copyApp(t, "python", map[string]string{"lib/python/greeting.py": "def text():\n    return 'Hello version two'\n"})
	v3 := copyApp(t, "python", map[string]string{"lib/python/greeting.py": "def text():\n    return 'Hello version three'\n"})
	// Another app has every other name below rb.test: prev.rb.test must
	// still never reach it.
	other := copyApp(t, "static", nil)
	e.ok("update", other, ".rb.test", "--node", node)

	var first, second string
	t.Run("prev.HOST answers with v1, started on demand, HOST with v2", func(t *testing.T) {
		e.ok("update", v1, "rb.test", "--node", node)
		first = instanceOf(t, "rb.test")
		w.expect("prev.rb.test", "/", 404, "Not Found")
		w.expect("x.rb.test", "/", 200, "A static site") // the wildcard, for contrast

		out := e.ok("update", v2, "rb.test", "--node", node)
		if !strings.Contains(out, "answering at http://prev.rb.test/") {
			t.Errorf("update does not say where the previous instance answers:\n%s", out)
		}
		second = instanceOf(t, "rb.test")
		waitArmed(t, first)
		waitFor(t, time.Minute, func() bool { s := state(t, first); return s == "inactive" || s == "failed" })
		w.expect("rb.test", "/", 200, "Hello version two")
		w.expect("prev.rb.test", "/", 200, "Hello from toppcloud")
		if got := instanceOf(t, "prev.rb.test"); got != first {
			t.Errorf("prev.rb.test served by %s, want %s", got, first)
		}
		w.expect("rb.test", "/", 200, "Hello version two")
		if s := state(t, first); s != "active" {
			t.Errorf("%s after a request to prev.rb.test: %s", first, s)
		}
	})

	t.Run("the instance stops with its proxy and starts again", func(t *testing.T) {
		// What the proxy does after PrevIdleTimeout: exit.
		sh(t, "systemctl kill --signal=SIGTERM toppcloud-prev@"+first+".service")
		waitFor(t, time.Minute, func() bool { s := state(t, first); return s == "inactive" || s == "failed" })
		w.expect("prev.rb.test", "/", 200, "Hello from toppcloud")
	})

	t.Run("activate prev switches to the checked instance", func(t *testing.T) {
		e.ok("activate", "rb.test", "prev", "--node", node)
		w.expect("rb.test", "/", 200, "Hello from toppcloud")
		waitArmed(t, second)
		if got := instanceOf(t, "prev.rb.test"); got != second {
			t.Errorf("prev.rb.test served by %s after the rollback, want %s", got, second)
		}
		// The live one no longer stops with a proxy.
		if b := sh(t, "systemctl show -p BindsTo --value toppcloud-app@"+first+".service"); strings.TrimSpace(b) != "" {
			t.Errorf("live %s is still bound to %s", first, b)
		}
		sh(t, "systemctl kill --signal=SIGTERM toppcloud-prev@"+second+".service || true")
		time.Sleep(2 * time.Second)
		w.expect("rb.test", "/", 200, "Hello from toppcloud")
	})

	t.Run("the next deploy stops the instance that is no longer previous", func(t *testing.T) {
		e.ok("update", v3, "rb.test", "--node", node)
		w.expect("rb.test", "/", 200, "Hello version three")
		waitArmed(t, first)
		if got := instanceOf(t, "prev.rb.test"); got != first {
			t.Errorf("prev.rb.test served by %s, want %s", got, first)
		}
		waitFor(t, time.Minute, func() bool { s := state(t, second); return s == "inactive" || s == "failed" })
	})

	t.Run("deactivate --keep-prev keeps prev.HOST; deactivate ends it", func(t *testing.T) {
		e.ok("deactivate", "rb.test", "--keep-prev", "--node", node)
		w.expect("rb.test", "/", 200, "A static site")
		w.expect("prev.rb.test", "/", 200, "Hello from toppcloud")
		e.ok("deactivate", "rb.test", "--node", node)
		if a := armed(t); a != "" {
			t.Errorf("armed after deactivate: %q", a)
		}
		w.expect("prev.rb.test", "/", 200, "A static site") // now just a name under .rb.test
	})

	t.Run("a command app", func(t *testing.T) {
		cmd := copyApp(t, "command", nil)
		e.ok("update", cmd, "cmd.test", "--node", node)
		_, b1 := w.get("cmd.test", "/")
		e.ok("update", cmd, "cmd.test", "--node", node, "--force")
		_, b2 := w.get("cmd.test", "/")
		inst := func(body string) string {
			_, after, _ := strings.Cut(body, "(instance ")
			name, _, _ := strings.Cut(after, ")")
			return name
		}
		if inst(b1) == "" || inst(b1) == inst(b2) {
			t.Fatalf("no new instance: %q then %q", b1, b2)
		}
		waitFor(t, time.Minute, func() bool { return synced(t) })
		w.expect("prev.cmd.test", "/x", 200, "(instance "+inst(b1)+")", "path /x")
	})

	t.Run("https: prev.HOST gets a certificate of its own", func(t *testing.T) {
		e.ok("update", v1, "https://sec.test", "--node", node)
		e.ok("update", v2, "https://sec.test", "--node", node)
		waitFor(t, time.Minute, func() bool { return synced(t) })
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(e.ok("node-ca", node))) {
			t.Fatal("node-ca printed no certificate")
		}
		code, body, cert, err := httpsGet(rec.Address(), "prev.sec.test", "/", roots)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "Hello from toppcloud") {
			t.Fatalf("https://prev.sec.test/ = %d %v\n%s", code, err, body)
		}
		if cert.VerifyHostname("prev.sec.test") != nil {
			t.Errorf("certificate names %v", cert.DNSNames)
		}
		if code, loc := redirectOf(t, rec.Address(), "prev.sec.test", "/a?b=c"); code != http.StatusPermanentRedirect || loc != "https://prev.sec.test/a?b=c" {
			t.Errorf("plain http to prev.sec.test = %d %q", code, loc)
		}
	})

	e.ok("update", v1, "zd.test", "--node", node)
	testRouteChangesUnderLoad(t, e, node, w)
}
