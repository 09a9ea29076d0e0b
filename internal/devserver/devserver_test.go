package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/skeleton"
)

// syncBuffer is the terminal, written by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeApp writes files (path -> content; a "+x " prefix makes it
// executable) into a new app directory.
func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	mode := os.FileMode(0o644)
	if c, ok := strings.CutPrefix(content, "+x "); ok {
		content, mode = c, 0o755
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// Replace rather than rewrite, as editors do, and make sure the
	// mtime moves even on a coarse clock.
	tmp := p + ".tmp-write"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

type served struct {
	t    *testing.T
	url  string
	log  *syncBuffer
	srv  *Server
	home string
}

// serve runs the app in dir until the test ends.
func serve(t *testing.T, dir string, edit func(o *Options)) *served {
	t.Helper()
	home := t.TempDir()
	log := &syncBuffer{}
	o := Options{AppDir: dir, Home: home, DataDir: filepath.Join(home, ".toppcloud", "devel"), User: "tester",
		Log: log, Poll: 50 * time.Millisecond}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("serve's output:\n%s", log.String())
		}
	})
	return &served{t: t, url: "http://" + ln.Addr().String(), log: log, srv: s, home: home}
}

// get returns the status and body of a GET (Host given when not "").
func (s *served) get(path, host string) (int, string, http.Header) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// expect GETs path and checks the status and that the body holds want.
func (s *served) expect(path string, status int, want ...string) string {
	s.t.Helper()
	code, body, _ := s.get(path, "")
	if code != status {
		s.t.Fatalf("GET %s = %d, want %d; body:\n%s", path, code, status, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			s.t.Fatalf("GET %s: body lacks %q:\n%s", path, w, body)
		}
	}
	return body
}

// eventually GETs path until the body holds want (the app reloads in the
// background); it gives up after a generous deadline, which is not a
// speed target (bench/serve measures the reload time).
func (s *served) eventually(path string, status int, want string) string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ := s.get(path, "")
		if code == status && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("GET %s = %d, never %d with %q; last body:\n%s", path, code, status, want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *served) logEventually(want string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.log.String(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("serve's output never said %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
}

const envApp = `import json, os
import helper

def application(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/update':
        with open(os.path.join(os.environ['CONFIG_FILES'], 'updated'), 'a') as f:
            f.write('%s\n' % environ.get('silverlining.update'))
    if path == '/boom':
        print('about to fail')
        raise RuntimeError('kaboom')
    print('handling %s' % path)
    data = {k: v for k, v in os.environ.items() if k.startswith(('SILVER_', 'CONFIG_', 'TOPPCLOUD_'))}
    data['SCRIPT_NAME'] = environ['SCRIPT_NAME']
    data['PATH_INFO'] = path
    data['REMOTE_ADDR'] = environ['REMOTE_ADDR']
    data['internal'] = environ.get('silverlining.internal')
    data['devel'] = environ.get('silverlining.devel')
    data['helper'] = helper.VALUE
    data['body'] = environ['wsgi.input'].read().decode()
    from silversupport.secret import get_secret
    from silversupport.env import is_production
    data['secret'] = bool(get_secret())
    data['production'] = is_production()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(data).encode()]
`

func TestPython_RunsAsANodeWould(t *testing.T) {
	needPython(t)
	dir := writeApp(t, map[string]string{
		"app.ini": "[production]\napp_name = blog\nrunner = main.py\nservice.files =\nservice.writable_root =\n" +
			"service.postgresql =\nupdate_fetch = /update\nconfig.default = conf\n",
		"main.py":                 envApp,
		"lib/python/helper.py":    "VALUE = 'from lib/python'\n",
		"static/robots.txt":       "User-agent: *\n",
		"static/docs/index.html":  "<p>docs</p>\n",
		"conf/settings.ini":       "[x]\n",
		"static/.hidden/file.txt": "x",
	})
	filesDir := filepath.Join(t.TempDir(), "files")
	s := serve(t, dir, func(o *Options) {
		o.Settings = func(app string) map[string]string {
			if app != "blog" {
				t.Errorf("settings asked for %q", app)
			}
			return map[string]string{"files": filesDir}
		}
	})
	body := s.expect("/some/path", http.StatusOK)
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	wr := filepath.Join(s.home, ".toppcloud", "devel", "blog", "writable-root")
	for k, want := range map[string]any{
		"SILVER_INSTANCE_NAME":      "localhost",
		"SILVER_APP_NAME":           "blog",
		"SILVER_CANONICAL_HOSTNAME": "localhost",
		"SILVER_LOGS":               filepath.Join(dir, "silver-logs"),
		"SILVER_APP_CONFIG":         filepath.Join(dir, "conf"),
		"CONFIG_FILES":              filesDir,
		"CONFIG_WRITABLE_ROOT":      wr,
		"SCRIPT_NAME":               "",
		"PATH_INFO":                 "/some/path",
		"REMOTE_ADDR":               "127.0.0.1",
		"internal":                  false,
		"devel":                     true,
		"helper":                    "from lib/python",
		"secret":                    true,
		"production":                false,
	} {
		if env[k] != want {
			t.Errorf("%s = %v, want %v", k, env[k], want)
		}
	}
	if v, _ := env["SILVER_VERSION"].(string); !strings.HasPrefix(v, "devel/") {
		t.Errorf("SILVER_VERSION = %q, want devel/...", v)
	}
	if _, ok := env["TOPPCLOUD_INTERNAL_TOKEN"]; ok {
		t.Error("the internal token reached the application's os.environ")
	}
	if _, ok := env["CONFIG_PG_DBNAME"]; ok {
		t.Error("a database variable without [devel] settings")
	}
	if !strings.Contains(s.log.String(), "service.postgresql: toppcloud runs no database locally") {
		t.Errorf("no message about the missing database:\n%s", s.log.String())
	}

	// update_fetch ran once, as an internal request.
	s.logEventually("update_fetch: fetching update URL /update")
	waitFile(t, filepath.Join(filesDir, "updated"), "True\n")

	// A client cannot claim to be internal, nor pick SCRIPT_NAME.
	req, _ := http.NewRequest(http.MethodPost, s.url+"/x", strings.NewReader("form=1"))
	req.Header.Set("X-Toppcloud-Internal", "guess")
	req.Header.Set("Script-Name", "/evil")
	req.Header.Set("X-Toppcloud-Match-Path", "/x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var posted map[string]any
	if err := json.Unmarshal(raw, &posted); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if posted["internal"] != false || posted["SCRIPT_NAME"] != "" || posted["PATH_INFO"] != "/x" || posted["body"] != "form=1" {
		t.Errorf("forged headers or body: %v", posted)
	}

	// static/ and the writable root come before the app.
	s.expect("/robots.txt", http.StatusOK, "User-agent")
	s.expect("/docs/", http.StatusOK, "<p>docs</p>")
	if code, _, h := s.get("/docs", ""); code != http.StatusMovedPermanently || h.Get("Location") != "docs/" {
		t.Errorf("/docs = %d %q, want a redirect adding the slash", code, h.Get("Location"))
	}
	writeFile(t, filepath.Join(wr, "shared.txt"), "every host\n")
	writeFile(t, filepath.Join(wr, "example.com", "shared.txt"), "example.com only\n")
	s.expect("/shared.txt", http.StatusOK, "every host")
	if _, body, _ := s.get("/shared.txt", "example.com:8080"); !strings.Contains(body, "example.com only") {
		t.Errorf("per-host writable root not used: %q", body)
	}
	if err := os.Symlink("/etc", filepath.Join(wr, "etc")); err != nil {
		t.Fatal(err)
	}
	if _, body, _ := s.get("/etc/hostname", ""); !strings.Contains(body, `"PATH_INFO": "/etc/hostname"`) {
		t.Errorf("a symlink out of the writable root was followed: %q", body)
	}

	// The app's output is in the terminal; an exception shows its
	// traceback in the browser and the terminal.
	s.logEventually("handling /some/path")
	s.expect("/boom", http.StatusInternalServerError, "RuntimeError: kaboom", "Traceback")
	s.logEventually("RuntimeError: kaboom")
	if n := strings.Count(s.log.String(), "RuntimeError: kaboom"); n != 1 {
		t.Errorf("the traceback is in the terminal %d times", n)
	}
}

func waitFile(t *testing.T, p, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(p)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q (%v), want %q", p, b, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPython_ReloadsOnEditAndRecoversFromASyntaxError(t *testing.T) {
	needPython(t)
	dir := writeApp(t, map[string]string{
		"app.ini":              "[production]\napp_name = blog\nrunner = main.py\nupdate_fetch = script:bin/setup.py\n",
		"main.py":              "import helper\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'version 1 ' + helper.WORD.encode()]\n",
		"lib/python/helper.py": "WORD = 'alpha'\n",
		"bin/setup.py":         "import helper, sys\nprint('setup ran with', helper.WORD, sys.argv[1:])\n",
	})
	s := serve(t, dir, nil)
	s.expect("/", http.StatusOK, "version 1 alpha")
	s.logEventually("setup ran with alpha []")

	writeFile(t, filepath.Join(dir, "main.py"), "import helper\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'version 2 ' + helper.WORD.encode()]\n")
	s.eventually("/", http.StatusOK, "version 2 alpha")
	writeFile(t, filepath.Join(dir, "lib/python/helper.py"), "WORD = 'beta'\n")
	s.eventually("/", http.StatusOK, "version 2 beta")

	writeFile(t, filepath.Join(dir, "main.py"), "def application(environ, start_response:\n")
	body := s.eventually("/", http.StatusInternalServerError, "SyntaxError")
	if !strings.Contains(body, "failed to load") || !strings.Contains(body, "main.py") {
		t.Errorf("error page:\n%s", body)
	}
	s.logEventually("SyntaxError")
	// Static files still work while the app is broken.
	writeFile(t, filepath.Join(dir, "static", "a.txt"), "still here")
	s.expect("/a.txt", http.StatusOK, "still here")

	writeFile(t, filepath.Join(dir, "main.py"), "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'version 3']\n")
	s.eventually("/", http.StatusOK, "version 3")

	// app.ini errors show too, and their fix recovers.
	writeFile(t, filepath.Join(dir, "app.ini"), "[production]\nrunner = main.py\n")
	s.eventually("/", http.StatusInternalServerError, "app_name")
	writeFile(t, filepath.Join(dir, "app.ini"), "[production]\napp_name = blog\nrunner = main.py\n")
	s.eventually("/", http.StatusOK, "version 3")
	if strings.Count(s.log.String(), "setup ran with") != 1 {
		t.Errorf("update_fetch did not run exactly once:\n%s", s.log.String())
	}
}

func TestPaste(t *testing.T) {
	needPython(t)
	if err := exec.Command("python3", "-c", "import paste.deploy").Run(); err != nil {
		t.Skip("Paste Deploy is not installed")
	}
	dir := writeApp(t, map[string]string{
		"app.ini":                "[production]\napp_name = pasted\nrunner = config.ini#main\n",
		"config.ini":             "[app:main]\npaste.app_factory = pasteapp:make\ngreeting = hi from paste\n",
		"lib/python/pasteapp.py": "def make(global_conf, greeting):\n    def app(environ, start_response):\n        start_response('200 OK', [])\n        return [(greeting + ' ' + str(bool(global_conf.get('SECRET')))).encode()]\n    return app\n",
	})
	s := serve(t, dir, nil)
	s.expect("/", http.StatusOK, "hi from paste True")
	writeFile(t, filepath.Join(dir, "config.ini"), "[app:main]\npaste.app_factory = pasteapp:make\ngreeting = edited\n")
	s.eventually("/", http.StatusOK, "edited True")
}

func TestCommand(t *testing.T) {
	needPython(t)
	server := `+x #!/usr/bin/env python3
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/crash':
            print('crashing now', flush=True)
            os._exit(3)
        body = ('port %s host %s instance %s match %s' % (os.environ['PORT'], os.environ['HOST'],
                os.environ['SILVER_INSTANCE_NAME'], self.headers.get('X-Toppcloud-Match-Path'))).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
`
	dir := writeApp(t, map[string]string{
		"app.ini":         "[production]\napp_name = cmd\nrunner = server\n",
		"server":          server,
		"static/hi.txt":   "static hi",
		"notwatched.py":   "x = 1\n",
		"bin/unrelated.y": "",
	})
	s := serve(t, dir, nil)
	body := s.expect("/", http.StatusOK, "host 127.0.0.1 instance localhost match /")
	s.expect("/hi.txt", http.StatusOK, "static hi")
	// A .py file is not a command app's code.
	writeFile(t, filepath.Join(dir, "notwatched.py"), "x = 2\n")
	time.Sleep(300 * time.Millisecond)
	if s.srv.Reloads() != 0 {
		t.Errorf("a .py edit reloaded a command app")
	}
	s.expect("/crash", http.StatusBadGateway, "crashing now")
	s.expect("/", http.StatusBadGateway, "exit status 3", "crashing now")
	// Saving the runner starts it again.
	writeFile(t, filepath.Join(dir, "server"), strings.Replace(server, "port %s", "PORT %s", 1))
	if b := s.eventually("/", http.StatusOK, "PORT "); b == body {
		t.Error("not restarted")
	}
}

func TestStatic(t *testing.T) {
	dir := writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = site\n",
		"static/index.html": "<h1>home</h1>",
		"static/css/a.css":  "body{}",
	})
	s := serve(t, dir, nil)
	s.expect("/", http.StatusOK, "<h1>home</h1>")
	s.expect("/css/a.css", http.StatusOK, "body{}")
	s.expect("/missing", http.StatusNotFound)
	s.expect("/css/", http.StatusNotFound)
	if code, _, h := s.get("/index.html", ""); code != http.StatusMovedPermanently || h.Get("Location") != "./" {
		t.Errorf("/index.html = %d %q, want a redirect to ./", code, h.Get("Location"))
	}
}

func TestConfigRequired(t *testing.T) {
	dir := writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = site\nconfig.required = true\n",
		"static/index.html": "x",
	})
	s := serve(t, dir, nil)
	s.expect("/nothing-static", http.StatusInternalServerError, "config.required", "--config")
	conf := t.TempDir()
	s2 := serve(t, dir, func(o *Options) { o.ConfigDir = conf })
	s2.expect("/nothing-static", http.StatusNotFound)
}

func TestNew_BadInput(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no app.ini", Options{AppDir: t.TempDir()}, "no app.ini"},
		{"config not a directory", Options{AppDir: writeApp(t, map[string]string{"app.ini": "[production]\napp_name = a\n"}), ConfigDir: filepath.Join(home, "nope")}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.DataDir = filepath.Join(home, "devel")
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

const phpApp = `<?php
header('Content-Type: text/plain');
echo "front ", $_SERVER['SILVER_INSTANCE_NAME'], " ", $_SERVER['SCRIPT_NAME'], " ", isset($_SERVER['PATH_INFO']) ? $_SERVER['PATH_INFO'] : '-', "\n";
echo "secret ", strlen(SILVER_SECRET) > 0 ? "yes" : "no", "\n";
echo "internal ", $_SERVER['SILVERLINING_INTERNAL'] ? "yes" : "no", "\n";
echo "files ", getenv('CONFIG_FILES'), "\n";
if (isset($_SERVER['PATH_INFO']) && $_SERVER['PATH_INFO'] === '/update') {
    file_put_contents(getenv('CONFIG_FILES') . '/updated', $_SERVER['SILVERLINING_INTERNAL'] ? 'internal' : 'outside');
}
`

func testPHP(t *testing.T, edit func(o *Options)) {
	dir := writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = wp\nplatform = php\nrunner = front.php\nphp_root = web\nservice.files =\nupdate_fetch = /update\n",
		"front.php":         phpApp,
		"web/page.php":      "<?php echo 'page ', $_SERVER['SCRIPT_NAME'], ' ', basename(getcwd()), ' ', silver_next_path() ? 'found' : 'none';\n",
		"web/sub/index.php": "<?php echo 'sub index';\n",
		"web/style.css":     "p{}",
		"static/s.txt":      "static",
	})
	s := serve(t, dir, edit)
	s.expect("/any/where", http.StatusOK, "front localhost /front.php /any/where", "secret yes", "internal no")
	s.expect("/page.php", http.StatusOK, "page /page.php web found")
	s.expect("/style.css", http.StatusOK, "p{}")
	s.expect("/s.txt", http.StatusOK, "static")
	s.expect("/sub/", http.StatusOK, "sub index")
	if code, _, h := s.get("/sub", ""); code != http.StatusMovedPermanently || h.Get("Location") != "/sub/" {
		t.Errorf("/sub = %d %q", code, h.Get("Location"))
	}
	files := filepath.Join(s.home, ".toppcloud", "devel", "wp", "files")
	waitFile(t, filepath.Join(files, "updated"), "internal")
	req, _ := http.NewRequest(http.MethodGet, s.url+"/x", nil)
	req.Header.Set("X-Toppcloud-Devserver-Script-Filename", "/etc/passwd")
	req.Header.Set("X-Toppcloud-Internal", "guess")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "front localhost") || !strings.Contains(string(b), "internal no") {
		t.Errorf("forged headers: %s", b)
	}
}

func TestPHP_CGI(t *testing.T) {
	cgi, err := exec.LookPath("php-cgi")
	if err != nil {
		t.Skip("php-cgi is not installed")
	}
	testPHP(t, func(o *Options) { o.PHPCGI = cgi })
}

func TestPHP_BuiltinServer(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not installed")
	}
	testPHP(t, func(o *Options) { o.PHP = php })
}

func TestPHP_NotInstalled(t *testing.T) {
	dir := writeApp(t, map[string]string{"app.ini": "[production]\napp_name = wp\nplatform = php\n", "index.php": "<?php echo 1;"})
	s := serve(t, dir, func(o *Options) {
		o.LookPath = func(string) (string, error) { return "", errors.New("not found") }
	})
	s.expect("/", http.StatusInternalServerError, "PHP is not installed", "apt install php-cgi", "brew install php")
	s.logEventually("PHP is not installed")
}

func TestPython_NotInstalled(t *testing.T) {
	dir := writeApp(t, map[string]string{"app.ini": "[production]\napp_name = a\nrunner = main.py\n", "main.py": ""})
	s := serve(t, dir, func(o *Options) {
		o.Python = "python3-that-is-not-there"
		o.LookPath = func(string) (string, error) { return "", errors.New("not found") }
	})
	s.expect("/", http.StatusInternalServerError, "python3 is not installed")
}

// Every skeleton toppcloud init writes runs under serve as it is.
func TestSkeletons(t *testing.T) {
	for _, kind := range skeleton.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			switch kind {
			case skeleton.Python, skeleton.Command:
				needPython(t)
			case skeleton.PHP:
				if _, err := exec.LookPath("php-cgi"); err != nil {
					if _, err := exec.LookPath("php"); err != nil {
						t.Skip("no PHP")
					}
				}
			}
			dir := filepath.Join(t.TempDir(), "hello")
			if _, err := skeleton.Write(skeleton.Options{Dir: dir, Kind: kind}); err != nil {
				t.Fatal(err)
			}
			s := serve(t, dir, nil)
			want := "Hello from hello (instance localhost)"
			if kind == skeleton.Static {
				want = "<h1>hello</h1>"
			}
			s.expect("/", http.StatusOK, want)
		})
	}
}
