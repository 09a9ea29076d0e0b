package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/assets"
)

const testSecret = "node-secret-for-tests"

// testAppSecret is the secret of the test instances' app, "demo".
var testAppSecret = AppSecret([]byte(testSecret), "demo")

// testLayout makes a node layout in a short temporary directory (unix
// socket paths must stay under 108 bytes), with the assets installed and
// a node secret.
func testLayout(t *testing.T) layout.Layout {
	t.Helper()
	root, err := os.MkdirTemp("", "tc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	l := layout.Default()
	l.WWW = filepath.Join(root, "www")
	l.Data = filepath.Join(root, "lib")
	l.Apps = filepath.Join(root, "lib", "apps")
	l.Logs = filepath.Join(root, "log")
	l.AppLogs = filepath.Join(root, "log", "apps")
	l.Run = filepath.Join(root, "run")
	l.InstanceEtc = filepath.Join(root, "etc")
	l.Units = filepath.Join(root, "units")
	l.Assets = filepath.Join(root, "share")
	l.Secret = filepath.Join(root, "lib", "secret")
	for _, d := range []string{l.WWW, l.Apps, l.AppLogs, l.Run, l.InstanceEtc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := assets.Install(l.Assets); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Secret, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// testInstance copies testdata/apps/SRC as instance APP.2024-01-02_001
// and returns it with its environment built, ready to run.
func testInstance(t *testing.T, l layout.Layout, src string, kind appconfig.Kind, runner, name string) *Instance {
	t.Helper()
	app := "demo"
	inst := &Instance{
		App: app, Name: app + ".2024-01-02_001", Kind: kind, Runner: runner, RunnerName: name,
		User: "app-demo", Layout: l,
	}
	if err := os.CopyFS(inst.Dir(), os.DirFS(filepath.Join("testdata", "apps", src))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{l.AppLogDir(app), l.TempDir(app), l.SocketDir(inst.Name)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(l.AppSecret(app), []byte(testAppSecret), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := Environment(l, EnvInput{
		App: app, Instance: inst.Name, Locations: []string{"www.example.com/blog", "example.com"},
		Services: map[string]string{"CONFIG_TEST": "service value with $dollar and \"quotes\""},
	})
	if err != nil {
		t.Fatal(err)
	}
	inst.Env = env
	if inst.Token, err = NewToken(); err != nil {
		t.Fatal(err)
	}
	return inst
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a process started the way its unit would start it.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{}
	err    error
	status int
}

// startProcess runs argv with env (plus PATH) in dir, in its own process
// group, killed at the end of the test.
func startProcess(t *testing.T, argv []string, env map[string]string, dir string) *proc {
	t.Helper()
	return startProcessAs(t, nil, argv, env, dir)
}

// startProcessAs is startProcess with the given credential (nil: ours).
func startProcessAs(t *testing.T, cred *syscall.Credential, argv []string, env map[string]string, dir string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.status = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(argv[0]), p.out.String())
		}
	})
	return p
}

// exited fits HealthCheck.Exited.
func (p *proc) exited(context.Context) error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: exit status %d", ErrExited, p.status)
	default:
		return nil
	}
}

// tail fits HealthCheck.Output.
func (p *proc) tail(context.Context) ([]string, error) {
	lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	if len(lines) > DefaultTailLines {
		lines = lines[len(lines)-DefaultTailLines:]
	}
	return lines, nil
}

// wait waits for the process to exit.
func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("process still running after %s; output:\n%s", d, p.out.String())
	}
}

// unixClient is an HTTP client for a unix socket.
func unixClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
}

// need skips the test when a program is missing.
func need(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			t.Skipf("%s is not installed (apt-get install gunicorn python3-pastedeploy php-fpm)", p)
		}
	}
}
