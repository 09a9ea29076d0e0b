package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/httpload"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
)

// examplesDir is the repository's examples/.
func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyApp copies an example into a temporary directory and applies
// changes (path -> content; "" removes the file; a content starting with
// "#!" is made executable).
func copyApp(t *testing.T, example string, changes map[string]string) string {
	t.Helper()
	src := filepath.Join(examplesDir(t), example)
	dst := t.TempDir()
	err := os.CopyFS(dst, os.DirFS(src))
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range changes {
		target := filepath.Join(dst, p)
		if c == "" {
			os.Remove(target)
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// web asks the node's front server for host+target.
type web struct {
	t    *testing.T
	addr string
}

func (w web) get(host, target string) (int, string) {
	w.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+w.addr+target, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		w.t.Errorf("GET %s%s: %v", host, target, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// expect checks that host+target answers status with a body containing
// every want.
func (w web) expect(host, target string, status int, want ...string) string {
	w.t.Helper()
	code, body := w.get(host, target)
	if code != status {
		w.t.Errorf("GET %s%s = %d, want %d\n%s", host, target, code, status, body)
		return body
	}
	for _, s := range want {
		if !strings.Contains(body, s) {
			w.t.Errorf("GET %s%s: body lacks %q:\n%s", host, target, s, body)
		}
	}
	return body
}

// updateOK runs the CLI and fails the test unless it succeeded.
func (e *localEnv) ok(args ...string) string {
	e.t.Helper()
	code, out := e.run(args...)
	if code != ExitOK {
		e.t.Fatalf("toppcloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (e *localEnv) query(node string) protocol.QueryResult {
	e.t.Helper()
	code, stdout, stderr := e.run2("query", node, "--json")
	var q protocol.QueryResult
	if code != ExitOK || json.Unmarshal([]byte(stdout), &q) != nil {
		e.t.Fatalf("query: exit %d\n%s%s", code, stderr, stdout)
	}
	return q
}

// liveAt returns the instance live at loc, from query.
func liveAt(q protocol.QueryResult, loc string) (live, prev string) {
	for _, r := range q.Routes {
		if r.Location == loc {
			return r.Live, r.Prev
		}
	}
	return "", ""
}

// setUpNode creates and sets up a local node named PREFIX-XXXXXX,
// destroyed when the test ends, and returns its name, its front server
// and a root login.
func (e *localEnv) setUpNode(t *testing.T, prefix string) (string, web, *sshx.Client) {
	t.Helper()
	node := localtest.UniqueName(prefix)
	t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", node); code != ExitOK {
			t.Errorf("destroy-node: %s", out)
		}
	})
	e.ok("create-node", node, "--setup-node")
	rec := e.record(node)
	return node, web{t: t, addr: rec.Address()}, e.dial(rec, "root")
}

// rootShell runs shell scripts on a node, failing the test when one
// fails.
func rootShell(root *sshx.Client) func(t *testing.T, script string) string {
	return func(t *testing.T, script string) string {
		t.Helper()
		out, err := root.Output(context.Background(), []string{"sh", "-c", script}, nil)
		if err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
		return string(out)
	}
}

var instanceLineRE = regexp.MustCompile(`(\S+\.\d{4}-\d\d-\d\d_\d{3}) is live at`)

// TestIntegration_Update deploys the examples to one local node and
// walks through everything an app's life on a node involves. The
// subtests share the node (setting one up takes half a minute) and run in
// order; the reboot comes last.
func TestIntegration_Update(t *testing.T) {
	e := newLocalEnv(t)
	node, w, root := e.setUpNode(t, "upd")
	sh := rootShell(root)
	ex := func(name string) string { return filepath.Join(examplesDir(t), name) }

	t.Run("examples at a host and at a path", func(t *testing.T) {
		for _, d := range []struct{ dir, host, path string }{
			{"python", "py.test", "py"}, {"php", "php.test", "php"},
			{"static", "static.test", "static"}, {"command", "cmd.test", "cmd"},
		} {
			e.ok("update", ex(d.dir), d.host, "--node", node)
			e.ok("update", ex(d.dir), "site.test/"+d.path, "--node", node)
		}
		w.expect("py.test", "/", 200, "Hello from toppcloud", "mounted at '/'")
		w.expect("site.test", "/py/", 200, "Hello from toppcloud", "mounted at '/py'")
		w.expect("py.test", "/robots.txt", 200, "User-agent")
		w.expect("site.test", "/py/robots.txt", 200, "User-agent")
		if code, _ := w.get("site.test", "/py"); code != http.StatusPermanentRedirect {
			t.Errorf("/py without its slash = %d, want a redirect", code)
		}
		w.expect("php.test", "/some/page", 200, "Hello from PHP", "path: /some/page")
		w.expect("site.test", "/php/x", 200, "Hello from PHP", "path: /php/x")
		w.expect("php.test", "/style.css", 200, "font-family")
		w.expect("site.test", "/php/style.css", 200, "font-family")
		w.expect("static.test", "/", 200, "A static site on toppcloud")
		w.expect("site.test", "/static/css/site.css", 200)
		w.expect("static.test", "/missing", 404)
		w.expect("cmd.test", "/x?y=1", 200, "Hello from a command app", "path /x?y=1")
		w.expect("site.test", "/cmd/x", 200, "Hello from a command app", "path /x")
		w.expect("cmd.test", "/hello.txt", 200, "a static file next to a command app")
		w.expect("site.test", "/cmd/hello.txt", 200, "a static file next to a command app")
		w.expect("nothing.test", "/", 404, "Not Found")
		q := e.query(node)
		if len(q.Apps) != 4 || len(q.Routes) != 8 {
			t.Errorf("query: %d apps, %d routes", len(q.Apps), len(q.Routes))
		}
	})

	// The jobs app's steps are spread out: its crons run while other
	// subtests do.
	jobs := &jobsScenario{e: e, node: node, w: w, root: root}
	t.Run("jobs: crons and a worker start with the app", jobs.deploy)

	t.Run("SILVER variables and update_fetch against the new instance", func(t *testing.T) {
		out := e.ok("update", ex("python"), "site.test/py", "--node", node, "--force")
		fetch, sw := strings.Index(out, "update_fetch: done"), strings.Index(out, "switch: done")
		if !strings.Contains(out, "| Fetching update URL /update") || !strings.Contains(out, "| update done") || fetch < 0 || sw < fetch {
			t.Errorf("update_fetch output missing or not before the switch:\n%s", out)
		}
		m := instanceLineRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no instance in the output:\n%s", out)
		}
		var env map[string]string
		if err := json.Unmarshal([]byte(w.expect("site.test", "/py/env", 200)), &env); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"SILVER_APP_NAME": "hello", "SILVER_INSTANCE_NAME": m[1], "SILVER_CANONICAL_HOSTNAME": "site.test",
			"SILVER_LOGS": "/var/log/toppcloud/apps/hello", "SCRIPT_NAME": "/py", "PATH_INFO": "/env",
			// The update URL ran in the new instance, which wrote its name.
			"updated_by": m[1],
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q (all: %v)", k, env[k], v, env)
			}
		}
		if !strings.HasPrefix(env["SILVER_VERSION"], "silverlining/") {
			t.Errorf("SILVER_VERSION = %q", env["SILVER_VERSION"])
		}
		// A client cannot pretend to be the agent.
		code, _ := w.get("site.test", "/py/update")
		if code != http.StatusForbidden {
			t.Errorf("/update from outside = %d", code)
		}
	})

	t.Run("--config and config.checker", func(t *testing.T) {
		checked := copyApp(t, "python", map[string]string{
			"app.ini": "[production]\napp_name = conf\nrunner = app.py\nconfig.required = true\nconfig.checker = checks:check\n",
			"lib/python/checks.py": "import os\n\ndef check(d):\n    if not os.path.exists(os.path.join(d, 'settings.ini')):\n" +
				"        raise ValueError('no settings.ini in ' + d)\n",
		})
		if code, out := e.run("update", checked, "conf.test", "--node", node); code != ExitFailed || !strings.Contains(out, "--config") {
			t.Errorf("config.required without --config: exit %d\n%s", code, out)
		}
		bad := t.TempDir()
		code, out := e.run("update", checked, "conf.test", "--node", node, "--config", bad)
		if code != ExitFailed || !strings.Contains(out, "ValueError: no settings.ini") || !strings.Contains(out, "refused") {
			t.Errorf("refused config: exit %d\n%s", code, out)
		}
		good := t.TempDir()
		os.WriteFile(filepath.Join(good, "settings.ini"), []byte("[db]\n"), 0o644)
		e.ok("update", checked, "conf.test", "--node", node, "--config", good)
		var env map[string]string
		if err := json.Unmarshal([]byte(w.expect("conf.test", "/env", 200)), &env); err != nil {
			t.Fatal(err)
		}
		if env["SILVER_APP_CONFIG"] != "/var/lib/toppcloud/apps/conf/config" {
			t.Errorf("SILVER_APP_CONFIG = %q", env["SILVER_APP_CONFIG"])
		}
		// Kept for the next update without --config.
		e.ok("update", checked, "conf.test", "--node", node, "--force")
	})

	v2 := copyApp(t, "python", map[string]string{"lib/python/greeting.py": "def text():\n    return 'Hello version two'\n"})
	t.Run("redeploy keeps prev; activate prev and a release number; query shows both", func(t *testing.T) {
		e.ok("update", ex("python"), "rb.test", "--node", node)
		first, _ := liveAt(e.query(node), "rb.test")
		// The first redeploy reloads the router once (prev.rb.test gets
		// its instance); the rollback below switches symlinks only.
		e.ok("update", v2, "rb.test", "--node", node)
		w.expect("rb.test", "/", 200, "Hello version two")
		q := e.query(node)
		second, prev := liveAt(q, "rb.test")
		if prev != first || second == first {
			t.Errorf("after redeploy: live %s prev %s, want prev %s", second, prev, first)
		}
		states := map[string]string{}
		for _, a := range q.Apps {
			for _, in := range a.Instances {
				states[in.Name] = in.State
			}
		}
		// The old instance is stopped without blocking the update (a
		// graceful stop may take its whole timeout): either is right.
		if (states[first] != "inactive" && states[first] != "deactivating") || states[second] != "active" {
			t.Errorf("states: prev %s %q, live %s %q", first, states[first], second, states[second])
		}
		if out := e.ok("activate", "rb.test", "prev", "--node", node); !strings.Contains(out, "symlink switched, no reload") {
			t.Errorf("a rollback reloaded Caddy:\n%s", out)
		}
		w.expect("rb.test", "/", 200, "Hello from toppcloud")
		if live, prev := liveAt(e.query(node), "rb.test"); live != first || prev != second {
			t.Errorf("after activate prev: live %s prev %s", live, prev)
		}
		// Back to the second by its release number.
		var rel int
		for _, a := range e.query(node).Apps {
			for _, r := range a.Releases {
				if r.Instance == second && r.Action == "update" {
					rel = r.Number
				}
			}
		}
		e.ok("activate", "rb.test", fmt.Sprint(rel), "--node", node)
		w.expect("rb.test", "/", 200, "Hello version two")
		if code, out := e.run("activate", "rb.test", "hello.1999-01-01_001", "--node", node); code != ExitFailed || !strings.Contains(out, "not on the node") {
			t.Errorf("activate of a missing instance: exit %d\n%s", code, out)
		}
	})

	t.Run("broken versions fail with the app's error and the old one keeps serving", func(t *testing.T) {
		before := e.query(node)
		live, _ := liveAt(before, "rb.test")
		for _, tc := range []struct {
			name string
			dir  string
			args []string
			want []string
		}{
			{"import error", copyApp(t, "python", map[string]string{"app.py": "import nonexistent_module_xyz\n"}), nil,
				[]string{"start: failed", "No module named 'nonexistent_module_xyz'"}},
			{"never listens", copyApp(t, "command", map[string]string{"app.ini": "[production]\napp_name = hello\nrunner = server\n",
				"server": "#!/bin/sh\necho 'starting, but never listening on purpose' >&2\nexec sleep 600\n"}), []string{"--health-timeout", "3s"},
				[]string{"did not answer in time", "never listening on purpose"}},
			{"update_fetch fails", copyApp(t, "python", map[string]string{"app.ini": "[production]\napp_name = hello\nrunner = app.py\nupdate_fetch = /migrate\n",
				"app.py": "def application(environ, start_response):\n    start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])\n    return [b'migration failed: boom\\n']\n"}), nil,
				[]string{"update_fetch: failed", "| migration failed: boom", "answered 500"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, out := e.run(append([]string{"update", tc.dir, "rb.test", "--node", node}, tc.args...)...)
				if code != ExitFailed {
					t.Errorf("exit %d, want %d\n%s", code, ExitFailed, out)
				}
				for _, s := range tc.want {
					if !strings.Contains(out, s) {
						t.Errorf("output lacks %q:\n%s", s, out)
					}
				}
				w.expect("rb.test", "/", 200, "Hello version two")
				after := e.query(node)
				if l, _ := liveAt(after, "rb.test"); l != live {
					t.Errorf("live changed to %s", l)
				}
				count := func(q protocol.QueryResult) (n int) {
					for _, a := range q.Apps {
						n += len(a.Instances)
					}
					return n
				}
				if count(after) != count(before) {
					t.Errorf("the failed instance was left on the node (%d instances, was %d)", count(after), count(before))
				}
			})
		}
	})

	t.Run("disable and enable by location, logs, deactivate", func(t *testing.T) {
		e.ok("disable", "--by-location", "rb.test", "--node", node)
		w.expect("rb.test", "/", 503, "Temporarily Unavailable")
		w.expect("py.test", "/", 503) // the same app at another location
		e.ok("enable", "--by-name", "hello", "--node", node)
		w.expect("rb.test", "/", 200, "Hello version two")
		code, stdout, stderr := e.run2("logs", "rb.test", "--node", node, "-n", "20")
		if code != ExitOK || !strings.Contains(stdout, "toppcloud-app@hello.") {
			t.Errorf("logs: exit %d\n%s%s", code, stderr, stdout)
		}
		e.ok("deactivate", "static.test", "--node", node)
		w.expect("static.test", "/", 404)
		w.expect("site.test", "/static/", 200, "A static site")
	})

	t.Run("jobs: crons run on the minute as the live instance, not from outside", jobs.crons)
	t.Run("jobs: a worker restarts after a crash and moves to a new instance one copy at a time", jobs.workers)
	t.Run("jobs: disable stops the crons, enable brings them back", jobs.disable)

	t.Run("zero downtime under load", func(t *testing.T) {
		e.ok("update", ex("python"), "zd.test", "--node", node)
		l := startLoad(t, w.addr, "zd.test")
		time.Sleep(time.Second)
		var log strings.Builder
		for i := range 5 {
			fmt.Fprintf(&log, "--- update at %.3fs\n", l.l.Elapsed().Seconds())
			log.WriteString(e.ok("update", []string{ex("python"), v2}[i%2], "zd.test", "--node", node, "--force"))
		}
		for range 2 {
			fmt.Fprintf(&log, "--- activate at %.3fs\n", l.l.Elapsed().Seconds())
			log.WriteString(e.ok("activate", "zd.test", "prev", "--node", node))
		}
		time.Sleep(time.Second)
		if !l.stop() {
			t.Logf("the updates and activates:\n%s", log.String())
		}
	})

	testRouteChangesUnderLoad(t, e, node, w)
	httpsStillServed := testHTTPS(t, e, node, w.addr, ex("python"), w, sh)

	t.Run("a second update of the app waits or gives up", func(t *testing.T) {
		slow := copyApp(t, "python", map[string]string{
			"app.ini":     "[production]\napp_name = hello\nrunner = app.py\nupdate_fetch = script:bin/slow.sh\n",
			"bin/slow.sh": "#!/bin/sh\necho migrating slowly\nsleep 5\necho done\n",
		})
		var wg sync.WaitGroup
		var firstCode int
		var firstOut string
		wg.Go(func() { firstCode, firstOut = e.run("update", slow, "lk.test", "--node", node) })
		// The first update holds the app's lock while its script runs.
		waitFor(t, 30*time.Second, func() bool { return strings.TrimSpace(sh(t, "pgrep -f '[s]low.sh' || true")) != "" })
		code, out := e.run("update", ex("python"), "lk2.test", "--node", node, "--lock-timeout", "1s")
		if code != ExitFailed || !strings.Contains(out, "app-hello is locked by update by") {
			t.Errorf("with --lock-timeout 1s: exit %d\n%s", code, out)
		}
		code, out = e.run("update", ex("python"), "lk2.test", "--node", node)
		if code != ExitOK || !strings.Contains(out, "waiting for update by") {
			t.Errorf("waiting update: exit %d\n%s", code, out)
		}
		wg.Wait()
		if firstCode != ExitOK || !strings.Contains(firstOut, "| migrating slowly") {
			t.Errorf("first update: exit %d\n%s", firstCode, firstOut)
		}
	})

	t.Run("interrupted upload leaves the live version, clean-node removes the leftovers", func(t *testing.T) {
		big := copyApp(t, "python", nil)
		for i := range 12 {
			b := make([]byte, 16<<20)
			rand.Read(b)
			if err := os.WriteFile(filepath.Join(big, "static", fmt.Sprintf("blob%02d.bin", i)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		liveBefore, _ := liveAt(e.query(node), "rb.test")
		cmd := exec.Command(localtest.Binary(t), "update", big, "rb.test", "--node", node)
		cmd.Env = append(os.Environ(), "HOME="+e.home, remote.EnvAgentBinary+"="+e.agent)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill the client while the node is receiving contents.
		waitFor(t, 60*time.Second, func() bool {
			return strings.TrimSpace(sh(t, "ls -A /var/lib/toppcloud/blobs/tmp | wc -l")) != "0"
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("killed client:\n%s", out.String())
		if strings.Contains(out.String(), "upload: done") {
			t.Fatal("the upload finished before the kill; the test proves nothing")
		}
		time.Sleep(time.Second)
		if live, _ := liveAt(e.query(node), "rb.test"); live != liveBefore {
			t.Errorf("live at rb.test changed from %s to %s", liveBefore, live)
		}
		w.expect("rb.test", "/", 200, "Hello version two")
		left := sh(t, "find /var/lib/toppcloud/blobs/objects -size +7M | wc -l; ls /var/lib/toppcloud/blobs/manifests | wc -l")
		e.ok("update", v2, "rb.test", "--node", node, "--force")
		w.expect("rb.test", "/", 200, "Hello version two")
		out2 := e.ok("clean-node", node)
		after := sh(t, "find /var/lib/toppcloud/blobs/objects -size +7M | wc -l; ls /var/lib/toppcloud/blobs/manifests | wc -l; ls -A /var/lib/toppcloud/blobs/tmp | wc -l")
		if strings.Fields(after)[0] != "0" || strings.Fields(after)[1] != "0" || strings.Fields(after)[2] != "0" {
			t.Errorf("left after the kill: %q; after clean-node: %q (objects >7M, manifests, temps)\n%s", left, after, out2)
		}
		// clean-node removed instances no route uses, kept live and prev.
		for _, a := range e.query(node).Apps {
			for _, in := range a.Instances {
				if len(in.Live)+len(in.Prev) == 0 {
					t.Errorf("clean-node kept unused instance %s", in.Name)
				}
			}
		}
		w.expect("rb.test", "/", 200, "Hello version two")
		w.expect("site.test", "/cmd/", 200, "Hello from a command app")
	})

	t.Run("after a reboot everything answers again", func(t *testing.T) {
		e.ok("stop-node", node)
		e.ok("start-node", node)
		// Instances start in parallel at boot; each must come up by
		// itself within a while.
		for _, u := range []struct{ host, target string }{
			{"py.test", "/"}, {"site.test", "/py/"}, {"rb.test", "/"}, {"php.test", "/"}, {"site.test", "/php/"},
			{"cmd.test", "/"}, {"site.test", "/cmd/"}, {"site.test", "/static/"},
		} {
			waitFor(t, 90*time.Second, func() bool {
				code, _ := tryGet(w.addr, u.host, u.target)
				return code == 200
			})
		}
		w.expect("py.test", "/", 200, "Hello from toppcloud")
		w.expect("site.test", "/py/", 200, "Hello from toppcloud")
		w.expect("rb.test", "/", 200, "Hello version two")
		w.expect("php.test", "/", 200, "Hello from PHP")
		w.expect("site.test", "/php/", 200, "Hello from PHP")
		w.expect("cmd.test", "/", 200, "Hello from a command app")
		w.expect("site.test", "/cmd/", 200, "Hello from a command app")
		w.expect("site.test", "/static/", 200, "A static site")
		httpsStillServed(t)
		// And updates go on as before.
		e.ok("update", ex("python"), "rb.test", "--node", node)
		w.expect("rb.test", "/", 200, "Hello from toppcloud")
	})
	t.Run("jobs: back after the reboot; deactivate stops them", jobs.afterReboot)
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tryGet(addr, host, target string) (int, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+target, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// load sends requests to one host continuously: keep-alive and new
// connections, GET and POST, each client paced at loadRate requests a
// second. stop fails the test on any failed or 5xx response.
type load struct {
	t *testing.T
	l *httpload.Load
}

const (
	loadRate = 40 // per client: 160 requests a second in all
	// A fast update can be over in two seconds; the load runs for
	// loadMinimum at least so that the requests counted by stop come from
	// before, during and after the switches, however quick they were.
	loadMinimum = 5 * time.Second
)

func startLoad(t *testing.T, addr, host string) *load {
	return &load{t: t, l: httpload.Start(httpload.Config{
		Addr: addr, Host: host, Clients: httpload.Mixed(), Body: "field=value",
		Rate: loadRate, Minimum: loadMinimum,
		Check: func(status int, body []byte) (string, bool) {
			return "", status == http.StatusOK && bytes.Contains(body, []byte("Hello"))
		},
	})}
}

// stop ends the load and reports whether every request succeeded.
func (l *load) stop() bool {
	l.t.Helper()
	r := l.l.Stop()
	l.t.Logf("load: %v", r)
	if len(r.Failures) > 0 {
		l.t.Errorf("%d requests failed, e.g. %q", len(r.Failures), r.Failures[:min(5, len(r.Failures))])
	}
	if r.Total() < 500 {
		l.t.Errorf("only %d requests were sent: the load did not cover the switches", r.Total())
	}
	return len(r.Failures) == 0
}
