package instance

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

const phpFPM = "/usr/sbin/php-fpm8.2"

func phpInstance(t *testing.T) (*Instance, layout.Layout) {
	t.Helper()
	need(t, phpFPM)
	l := testLayout(t)
	inst := testInstance(t, l, "php", appconfig.KindPHP, "index.php", "")
	inst.PHPRoot = "web"
	// The test runs php-fpm's master as whoever runs the test; as root,
	// php-fpm needs a user for its workers, and nobody can read the test
	// files once they are world-readable.
	inst.User = "nobody"
	if err := os.Chmod(filepath.Dir(l.WWW), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(l.Secret, 0o644); err != nil {
		t.Fatal(err)
	}
	return inst, l
}

func TestPHP_ConfigAccepted(t *testing.T) {
	inst, _ := phpInstance(t)
	writeFPMConfig(t, inst)
	cmd := exec.Command(phpFPM, "--test", "--fpm-config", FPMConfigPath(inst.Layout, inst.Name))
	cmd.Env = envList(inst.ProcessEnv())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("php-fpm -t: %v\n%s", err, out)
	}
}

// writeFPMConfig writes the instance's php-fpm configuration. (Files
// also renders the drop-in, which wants the socket under /run.)
func writeFPMConfig(t *testing.T, inst *Instance) {
	t.Helper()
	conf, err := inst.FPMConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles("", []File{{Path: FPMConfigPath(inst.Layout, inst.Name), Mode: 0o644, Data: conf}}); err != nil {
		t.Fatal(err)
	}
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// fcgiGet sends one FastCGI request to the instance's socket.
func fcgiGet(t *testing.T, inst *Instance, params map[string]string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("unix", inst.Layout.Socket(inst.Name), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	status, _, _, body, err := fcgiRoundTrip(conn, params, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return status, string(b)
}

func TestPHP_ServesFrontController(t *testing.T) {
	inst, _ := phpInstance(t)
	p := startInstance(t, inst)
	front := filepath.Join(inst.Dir(), "index.php")
	base := map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": front, "SCRIPT_NAME": "/index.php",
		"REQUEST_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
		"HTTP_HOST": "example.com",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	t.Run("environment and secret", func(t *testing.T) {
		status, body := fcgiGet(t, inst, base)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		want := map[string]any{
			"secret": testAppSecret, "instance": inst.Name, "server_instance": inst.Name,
			"config": `service value with $dollar and "quotes"`, "update": false,
			"header": "hidden", "base": inst.Dir(),
		}
		for k, w := range want {
			if v[k] != w {
				t.Errorf("%s = %v, want %v", k, v[k], w)
			}
		}
	})

	t.Run("internal flag", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			want  bool
		}{{"", false}, {strings.Repeat("f", 64), false}, {inst.Token, true}} {
			params := base
			if tc.token != "" {
				params = with(map[string]string{"HTTP_X_TOPPCLOUD_INTERNAL": tc.token})
			}
			_, body := fcgiGet(t, inst, params)
			var v map[string]any
			json.Unmarshal([]byte(body), &v)
			if v["update"] != tc.want || v["header"] != "hidden" {
				t.Errorf("token %q: update = %v, header %v; want %v, hidden", tc.token, v["update"], v["header"], tc.want)
			}
		}
	})

	t.Run("silver_call_next", func(t *testing.T) {
		status, body := fcgiGet(t, inst, with(map[string]string{"REQUEST_URI": "/page.php"}))
		if status != 200 || body != "page under php_root\n" {
			t.Errorf("status %d, body %q", status, body)
		}
	})

	t.Run("status", func(t *testing.T) {
		status, _ := fcgiGet(t, inst, with(map[string]string{"REQUEST_URI": "/?status=418", "QUERY_STRING": "status=418"}))
		if status != 418 {
			t.Errorf("status %d, want 418", status)
		}
	})

	t.Run("update_fetch", func(t *testing.T) {
		var lines []string
		out := func(s string) { lines = append(lines, s) }
		err := inst.RunUpdateFetch(context.Background(), "example.com", []appconfig.Fetch{{URL: "/setup"}}, out)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 2 || lines[0] != "Fetching update URL /setup" || !strings.Contains(lines[1], `"update":true`) {
			t.Errorf("output %q", lines)
		}
		err = inst.FetchURL(context.Background(), "example.com", "/?status=503", func(string) {})
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Status != 503 {
			t.Errorf("non-2xx fetch: %v", err)
		}
	})
	_ = p
}

// TestPHP_MasterAsAppUser runs the php-fpm master as an unprivileged user,
// as the unit does on a node: the pool's user line is then ignored, the
// log goes to stderr, and the socket is created in the instance's own
// directory.
func TestPHP_MasterAsAppUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	inst, l := phpInstance(t)
	cred, err := credential("nobody")
	if err != nil {
		t.Skip(err)
	}
	cred.Groups = nil
	if err := os.Chown(l.SocketDir(inst.Name), int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatal(err)
	}
	writeFPMConfig(t, inst)
	p := startProcessAs(t, cred, inst.Command(), inst.ProcessEnv(), inst.Dir())
	h := inst.Health(p.exited, p.tail)
	h.Timeout = 30 * time.Second
	if err := h.Wait(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
	st, err := os.Stat(l.Socket(inst.Name))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != cred.Uid {
		t.Errorf("socket owned by %d, want %d", uid, cred.Uid)
	}
	status, body := fcgiGet(t, inst, map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_FILENAME": filepath.Join(inst.Dir(), "index.php"),
		"SCRIPT_NAME": "/index.php", "REQUEST_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1",
	})
	if status != 200 || !strings.Contains(body, testAppSecret) {
		t.Errorf("status %d: %s", status, body)
	}
	if out := p.out.String(); !strings.Contains(out, "ready to handle connections") {
		t.Errorf("php-fpm's log did not reach stderr:\n%s", out)
	}
}
