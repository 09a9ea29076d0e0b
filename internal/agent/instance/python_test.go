package instance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// startInstance runs the instance's ExecStart as its unit would, with the
// real gunicorn or php-fpm, and waits until it answers.
func startInstance(t *testing.T, inst *Instance) *proc {
	t.Helper()
	if err := inst.Validate(); err != nil {
		t.Fatal(err)
	}
	if inst.Kind == appconfig.KindPHP {
		writeFPMConfig(t, inst)
	}
	if inst.Kind == appconfig.KindCommand {
		startProxy(t, inst)
	}
	p := startProcess(t, inst.Command(), inst.ProcessEnv(), inst.Dir())
	h := inst.Health(p.exited, p.tail)
	h.Timeout = 30 * time.Second
	if err := h.Wait(context.Background()); err != nil {
		t.Fatalf("instance did not start: %v\n%s", err, p.out.String())
	}
	return p
}

func getJSON(t *testing.T, c *http.Client, req *http.Request) map[string]any {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s\n%s", req.URL, resp.Status, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v\n%s", req.URL, err, body)
	}
	return v
}

func TestPython_Gunicorn(t *testing.T) {
	need(t, "/usr/bin/gunicorn")
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "application")
	startInstance(t, inst)
	c := unixClient(l.Socket(inst.Name))

	get := func(path string, header map[string]string) map[string]any {
		req, _ := http.NewRequest("GET", "http://www.example.com"+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return getJSON(t, c, req)
	}

	t.Run("environment", func(t *testing.T) {
		v := get("/", nil)
		osEnv := v["os_environ"].(map[string]any)
		want := map[string]string{
			"SILVER_INSTANCE_NAME":      inst.Name,
			"SILVER_APP_NAME":           "demo",
			"SILVER_CANONICAL_HOSTNAME": "example.com",
			"SILVER_LOGS":               l.AppLogDir("demo"),
			"TEMP":                      l.TempDir("demo"),
			"CONFIG_TEST":               `service value with $dollar and "quotes"`,
		}
		for k, w := range want {
			if got, _ := osEnv[k].(string); got != w {
				t.Errorf("os.environ[%s] = %q, want %q", k, got, w)
			}
		}
		if sv, _ := osEnv["SILVER_VERSION"].(string); !strings.HasPrefix(sv, "silverlining/") {
			t.Errorf("SILVER_VERSION = %q, want silverlining/...", sv)
		}
		if _, ok := osEnv["TOPPCLOUD_INTERNAL_TOKEN"]; ok {
			t.Error("the internal token is visible in os.environ")
		}
		if v["name"] != "main_py" {
			t.Errorf("runner module name = %v, want main_py", v["name"])
		}
	})

	t.Run("lib paths and sitecustomize", func(t *testing.T) {
		v := get("/", nil)
		for k, w := range map[string]string{
			"helper": "from lib/python", "sp": "from site-packages", "pth": "from a .pth directory",
			"sitecustomize": "yes",
		} {
			if v[k] != w {
				t.Errorf("%s = %v, want %q", k, v[k], w)
			}
		}
	})

	t.Run("silversupport shim", func(t *testing.T) {
		v := get("/", nil)
		if v["secret"] != testAppSecret {
			t.Errorf("get_secret() = %v, want the app's secret", v["secret"])
		}
		if v["production"] != true {
			t.Errorf("is_production() = %v, want true", v["production"])
		}
	})

	t.Run("an unread request body is drained before the connection closes", func(t *testing.T) {
		// The router sends headers, then the body, on a connection of
		// its own. The app answers without reading the body; the
		// connection must still take the body and close cleanly (no
		// reset, which the router would turn into a 502).
		conn, err := net.Dial("unix", l.Socket(inst.Name))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		const size = 200000
		if _, err := fmt.Fprintf(conn, "POST /print HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte("printed")) {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("reading the response: %v (got %q)", err, got)
			}
			got = append(got, buf[:n]...)
		}
		if _, err := conn.Write(bytes.Repeat([]byte("x"), size)); err != nil {
			t.Fatalf("sending the body after the response: %v", err)
		}
		if rest, err := io.ReadAll(conn); err != nil {
			t.Fatalf("the connection did not close cleanly: %v (after %q)", err, rest)
		}
	})

	t.Run("match path", func(t *testing.T) {
		for _, tc := range []struct {
			path, match, script, info string
		}{
			{"/blog/x/y", "/blog", "/blog", "/x/y"},
			{"/blog", "/blog", "/blog", ""},
			{"/blog/", "/blog/", "/blog", "/"},
			{"/a%20b/c", "/a%20b", "/a b", "/c"},
			{"/x", "", "", "/x"},
			{"/blogger", "/blog", "", "/blogger"},
		} {
			v := get(tc.path, map[string]string{MatchPathHeader: tc.match})
			env := v["environ"].(map[string]any)
			if env["SCRIPT_NAME"] != tc.script || env["PATH_INFO"] != tc.info {
				t.Errorf("%s mounted at %q: SCRIPT_NAME=%q PATH_INFO=%q, want %q %q",
					tc.path, tc.match, env["SCRIPT_NAME"], env["PATH_INFO"], tc.script, tc.info)
			}
			if _, ok := env["HTTP_X_TOPPCLOUD_MATCH_PATH"]; ok {
				t.Error("the match path header reaches the app")
			}
		}
	})

	t.Run("client SCRIPT_NAME header ignored", func(t *testing.T) {
		v := get("/real/path", map[string]string{"SCRIPT_NAME": "/real"})
		env := v["environ"].(map[string]any)
		if env["SCRIPT_NAME"] != "" || env["PATH_INFO"] != "/real/path" {
			t.Errorf("SCRIPT_NAME=%q PATH_INFO=%q, want \"\" /real/path", env["SCRIPT_NAME"], env["PATH_INFO"])
		}
	})

	t.Run("remote addr and scheme from the proxy", func(t *testing.T) {
		v := get("/", map[string]string{"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Forwarded-Proto": "https"})
		env := v["environ"].(map[string]any)
		if env["REMOTE_ADDR"] != "203.0.113.7" {
			t.Errorf("REMOTE_ADDR = %v", env["REMOTE_ADDR"])
		}
		if env["wsgi.url_scheme"] != "https" {
			t.Errorf("wsgi.url_scheme = %v", env["wsgi.url_scheme"])
		}
	})

	t.Run("internal flag", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			header string
			want   bool
		}{
			{"no header", "", false},
			{"wrong token", strings.Repeat("0", 64), false},
			{"empty", " ", false},
			{"genuine", inst.Token, true},
		} {
			h := map[string]string{}
			if tc.header != "" {
				h[InternalHeader] = tc.header
			}
			env := get("/", h)["environ"].(map[string]any)
			if env["silverlining.update"] != tc.want || env["silverlining.internal"] != tc.want {
				t.Errorf("%s: silverlining.update = %v, internal = %v, want %v", tc.name,
					env["silverlining.update"], env["silverlining.internal"], tc.want)
			}
			if _, ok := env["HTTP_X_TOPPCLOUD_INTERNAL"]; ok {
				t.Errorf("%s: the internal header reaches the app", tc.name)
			}
		}
	})

	t.Run("errors.log", func(t *testing.T) {
		logFile := l.AppLogDir("demo") + "/errors.log"
		os.Remove(logFile)
		get("/", nil) // writes nothing
		if _, err := os.Stat(logFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a request without output created errors.log (%v)", err)
		}
		req, _ := http.NewRequest("GET", "http://example.com/blog/print", nil)
		req.Header.Set(MatchPathHeader, "/blog")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		get("/", nil)
		// The chunk is written when the server closes the response, just
		// after the client has it.
		data := waitFile(t, logFile, "Finish errors")
		re := regexp.MustCompile(`^Errors for request GET /blog/print \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) in UTC, \d+\.\d{6}sec\):\n` +
			`This is stdout\nThis is stderr\nExecuted application\n` +
			`Finish errors for request GET /blog/print \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) in UTC\)\n$`)
		m := re.FindStringSubmatch(string(data))
		if m == nil {
			t.Fatalf("errors.log:\n%s", data)
		}
		if m[1] != m[2] {
			t.Errorf("start and finish dates differ: %q %q", m[1], m[2])
		}
		if _, err := time.Parse("2006-01-02 15:04:05", m[1]); err != nil {
			t.Errorf("date %q: %v", m[1], err)
		}
	})

	t.Run("errors.log under concurrent requests", func(t *testing.T) {
		logFile := l.AppLogDir("demo") + "/errors.log"
		os.Remove(logFile)
		const n = 24
		var wg sync.WaitGroup
		for k := 0; k < n; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Get("http://example.com/print")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		var data []byte
		for time.Now().Before(deadline) {
			data, _ = os.ReadFile(logFile)
			if strings.Count(string(data), "Finish errors") == n {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		chunk := regexp.MustCompile(`Errors for request GET /print \([^)]*\):\nThis is stdout\nThis is stderr\nExecuted application\nFinish errors for request GET /print \([^)]*\)\n`)
		if rest := chunk.ReplaceAllString(string(data), ""); rest != "" || strings.Count(string(data), "Finish errors") != n {
			t.Errorf("%d chunks, or chunks mixed up; left over:\n%s", strings.Count(string(data), "Finish errors"), rest)
		}
	})

	t.Run("exception is logged", func(t *testing.T) {
		logFile := l.AppLogDir("demo") + "/errors.log"
		os.Remove(logFile)
		resp, err := c.Get("http://example.com/crash")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 500 {
			t.Errorf("status %d, want 500", resp.StatusCode)
		}
		data := waitFile(t, logFile, "Finish errors")
		if !strings.Contains(string(data), "RuntimeError: crash in the app") ||
			!strings.HasPrefix(string(data), "Errors for request GET /crash") {
			t.Errorf("errors.log:\n%s", data)
		}
	})
}

// waitFile waits until file contains want and returns its content.
func waitFile(t *testing.T, file, want string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(file)
		if err == nil && strings.Contains(string(data), want) || time.Now().After(deadline) {
			return data
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPython_NamedRunner(t *testing.T) {
	need(t, "/usr/bin/gunicorn")
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "other")
	startInstance(t, inst)
	resp, err := unixClient(l.Socket(inst.Name)).Get("http://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "named runner" {
		t.Errorf("body %q, want the #other application's", body)
	}
}

func TestPython_Paste(t *testing.T) {
	need(t, "/usr/bin/gunicorn", "/usr/lib/python3/dist-packages/paste/deploy")
	for _, tc := range []struct{ name, want string }{
		{"", "hello from paste"},
		{"other", "the other app"},
	} {
		t.Run("#"+tc.name, func(t *testing.T) {
			l := testLayout(t)
			inst := testInstance(t, l, "paste", appconfig.KindPaste, "config.ini", tc.name)
			startInstance(t, inst)
			resp, err := unixClient(l.Socket(inst.Name)).Get("http://example.com/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := tc.want + "|secret=" + testAppSecret + "|instance=" + inst.Name
			if string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
		})
	}
}

func TestPython_ImportErrorStopsGunicorn(t *testing.T) {
	need(t, "/usr/bin/gunicorn")
	l := testLayout(t)
	inst := testInstance(t, l, "broken", appconfig.KindPython, "main.py", "")
	p := startProcess(t, inst.Command(), inst.ProcessEnv(), inst.Dir())
	err := inst.Health(p.exited, p.tail).Wait(context.Background())
	var he *HealthError
	if !errors.As(err, &he) || he.Reason != "exited" {
		t.Fatalf("health check: %v, want the process to have exited", err)
	}
	p.wait(t, 30*time.Second)
	if p.status == 0 {
		t.Errorf("gunicorn exited 0")
	}
	out := p.out.String()
	for _, want := range []string{
		"Traceback (most recent call last)",
		"ModuleNotFoundError: No module named 'this_module_does_not_exist_anywhere'",
		"main.py",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if tail := strings.Join(he.Tail, "\n"); !strings.Contains(tail, "this_module_does_not_exist_anywhere") {
		t.Errorf("the error's tail lacks the application's error:\n%s", tail)
	}
	if strings.Contains(out, "TOPPCLOUD_INTERNAL_TOKEN") || strings.Contains(out, inst.Token) {
		t.Error("the output shows the internal token")
	}
}
