package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInit(t *testing.T) {
	h := newHarness(t)
	dir := filepath.Join(t.TempDir(), "shop")
	code, stdout, stderr := h.run("init", dir, "--main", "command")
	if code != ExitOK || !strings.Contains(stdout, "wrote server") || !strings.Contains(stderr, "app shop (command)") {
		t.Fatalf("init = %d\n%s\n%s", code, stdout, stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "server")); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("server not executable: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server"), []byte("#!/bin/sh\nexec my-server\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := h.run("init", dir, "--main", "command"); code != ExitUsage || !strings.Contains(stderr, "already has server") {
		t.Errorf("init over an edited runner = %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "server")); !strings.Contains(string(b), "my-server") {
		t.Error("the runner was overwritten without -f")
	}
	if code, stdout, _ := h.run("init", dir, "--main", "command", "-f"); code != ExitOK || !strings.Contains(stdout, "wrote server") {
		t.Errorf("init -f = %d %s", code, stdout)
	}
	if code, _, stderr := h.run("init", dir, "--main", "ruby"); code != ExitUsage || !strings.Contains(stderr, "ruby") {
		t.Errorf("--main ruby = %d %s", code, stderr)
	}
}

func TestCreateConfig(t *testing.T) {
	h := newHarness(t)
	dir := appDir(t, map[string]string{
		"app.ini":                          "[production]\napp_name = blog\nconfig.template = tmpl\nconfig.default = conf\n",
		"tmpl/template.ini":                "[variables]\ndbname = the database\nsecret = a random string\n",
		"tmpl/local.ini.tmpl":              "[db]\nname = {{dbname}}\nsecret = {{secret}}\n",
		"tmpl/+dbname+/readme.txt":         "per database\n",
		"notemplate/app.ini":               "[production]\napp_name = x\n",
		"tmpl/.ignored":                    "",
		"tmpl/subdir/plain.txt":            "plain\n",
		"tmpl/subdir/+secret+.secret.tmpl": "{{secret}}",
	})
	code, stdout, _ := h.run("create-config", dir, "--info")
	if code != ExitOK || stdout != "dbname: the database\nsecret: a random string\n" {
		t.Errorf("--info = %d %q", code, stdout)
	}
	// Without a terminal, missing variables are an error that changes nothing.
	if code, _, stderr := h.run("create-config", dir, "dbname=blog"); code != ExitUsage || !strings.Contains(stderr, "secret=...") {
		t.Errorf("missing secret = %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf")); err == nil {
		t.Error("a refused create-config wrote conf/")
	}
	code, stdout, stderr := h.run("create-config", dir, "dbname=blog", "secret=s3")
	if code != ExitOK {
		t.Fatalf("create-config = %d %s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "conf", "local.ini")); string(got) != "[db]\nname = blog\nsecret = s3\n" {
		t.Errorf("local.ini = %q", got)
	}
	for _, p := range []string{"blog/readme.txt", "subdir/plain.txt", "subdir/s3.secret"} {
		if _, err := os.Stat(filepath.Join(dir, "conf", p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if !strings.Contains(stdout, "local.ini") {
		t.Errorf("stdout = %q", stdout)
	}
	out := t.TempDir()
	code, stdout, _ = h.run("create-config", dir, out, "dbname=wiki", "secret=s3")
	if code != ExitOK || !strings.Contains(stdout, filepath.Join(out, "local.ini")) {
		t.Fatalf("with OUTPUT = %d %q", code, stdout)
	}
	code, stdout, _ = h.run("create-config", dir, out, "dbname=shop", "secret=s3")
	if code != ExitOK || !strings.Contains(stdout, "kept as local.ini.1") {
		t.Fatalf("over a different file = %d %q", code, stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "local.ini.1")); !strings.Contains(string(got), "wiki") {
		t.Errorf("local.ini.1 = %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create-config", filepath.Join(dir, "notemplate")}, "no config.template"},
		{[]string{"create-config", dir, "out", "not-an-assignment"}, "not VAR=VALUE"},
		{[]string{"create-config", t.TempDir()}, "no app.ini"},
	} {
		if code, _, stderr := h.run(tc.args...); code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v = %d %s, want %q", tc.args[1:], code, stderr, tc.want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe runs the command itself: [devel] settings from the config
// file reach the services, the app is served, Ctrl-C (the context) stops
// it cleanly.
func TestServe(t *testing.T) {
	h := newHarness(t)
	files := filepath.Join(t.TempDir(), "files")
	h.writeConfig("[devel:site]\nfiles = " + files + "\n")
	dir := appDir(t, map[string]string{
		"app.ini":           "[production]\napp_name = site\nservice.files =\nservice.mysql =\n",
		"static/index.html": "<p>site</p>",
	})
	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", dir, "--port", "0"}, Env{
			Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr,
			Getenv: func(string) string { return "" }, Home: h.home, EtcHosts: h.etcHosts,
		})
	}()
	urlRE := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+/)`)
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve never said where it listens:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("serve exited %d:\n%s", code, stderr.String())
	}
	if string(body) != "<p>site</p>" {
		t.Errorf("GET / = %q", body)
	}
	out := stderr.String()
	for _, want := range []string{"service files: " + files, "service.mysql: toppcloud runs no database locally", "GET / 200 static"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve's output lacks %q:\n%s", want, out)
		}
	}
	if st, err := os.Stat(files); err != nil || !st.IsDir() {
		t.Errorf("files directory not made: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", t.TempDir()}, "no app.ini"},
		{[]string{"serve", dir, "--port", "70000"}, "not a port"},
		{[]string{"serve", dir, "--config", filepath.Join(dir, "nope")}, "not a directory"},
	} {
		if code, _, stderr := h.run(tc.args...); code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v = %d %s, want %q", tc.args, code, stderr, tc.want)
		}
	}
}
