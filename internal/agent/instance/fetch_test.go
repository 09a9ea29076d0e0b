package instance

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// runScript runs a script: entry as the test's own user.
func runScript(t *testing.T, inst *Instance, c appconfig.Command) ([]string, error) {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	mine := *inst
	mine.User = me.Username
	cmd, err := mine.ScriptCommand(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr.Credential = nil
	var lines []string
	err = StreamCommand(cmd, func(s string) { lines = append(lines, s) })
	return lines, err
}

func TestFetch_PythonURLs(t *testing.T) {
	need(t, "/usr/bin/gunicorn")
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "")
	startInstance(t, inst)

	var lines []string
	err := inst.RunUpdateFetch(context.Background(), "blog.example.com",
		[]appconfig.Fetch{{URL: "/update?x=1"}}, func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != "Fetching update URL /update?x=1" {
		t.Fatalf("output %q", lines)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &v); err != nil {
		t.Fatal(err)
	}
	env := v["environ"].(map[string]any)
	for k, want := range map[string]any{
		"silverlining.update": true, "SCRIPT_NAME": "", "PATH_INFO": "/update",
		"SERVER_NAME": "blog.example.com", "REMOTE_ADDR": "127.0.0.1",
	} {
		if env[k] != want {
			t.Errorf("%s = %v, want %v", k, env[k], want)
		}
	}

	lines = nil
	err = inst.RunUpdateFetch(context.Background(), "blog.example.com",
		[]appconfig.Fetch{{URL: "/fail"}, {URL: "/never"}}, func(s string) { lines = append(lines, s) })
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 500 || fe.Entry != "/fail" {
		t.Fatalf("failing fetch: %v", err)
	}
	if strings.Join(lines, "|") != "Fetching update URL /fail|update failed" {
		t.Errorf("output %q (the body must be shown, later entries not run)", lines)
	}
}

func TestFetch_Scripts(t *testing.T) {
	need(t, "/usr/bin/python3")
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "")

	lines, err := runScript(t, inst, appconfig.Command{Path: "bin/migrate.py", Args: []string{"--to", "head"}})
	if err != nil {
		t.Fatalf("%v: %q", err, lines)
	}
	want := []string{"migrating with --to head", "helper from lib/python", "instance " + inst.Name, "token absent", "name __main__"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("output\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	lines, err = runScript(t, inst, appconfig.Command{Path: "bin/migrate.py", Args: []string{"--fail"}})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("failing script: %v", err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "migration failed") {
		t.Errorf("stderr not streamed: %q", lines)
	}

	lines, err = runScript(t, inst, appconfig.Command{Path: "bin/hello.sh", Args: []string{"arg"}})
	if err != nil || strings.Join(lines, "|") != "shell script arg for demo" {
		t.Errorf("shell script: %v %q", err, lines)
	}
}

func TestFetch_ScriptRunsAsAppUser(t *testing.T) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "")
	inst.User = "nobody"
	cmd, err := inst.ScriptCommand(context.Background(), appconfig.Command{Path: "bin/migrate.py"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cmd.SysProcAttr.Credential; c == nil || strconv.Itoa(int(c.Uid)) != u.Uid || strconv.Itoa(int(c.Gid)) != u.Gid {
		t.Errorf("credential %+v, want uid %s gid %s", cmd.SysProcAttr.Credential, u.Uid, u.Gid)
	}
	if cmd.Dir != inst.Dir() {
		t.Errorf("dir %s, want %s", cmd.Dir, inst.Dir())
	}
	for _, e := range cmd.Env {
		if strings.HasPrefix(e, EnvInternalToken+"=") {
			t.Error("the script gets the internal token")
		}
	}
	inst.User = "no-such-user-here"
	if _, err := inst.ScriptCommand(context.Background(), appconfig.Command{Path: "bin/migrate.py"}); err == nil {
		t.Error("an unknown user was accepted")
	}
	if _, err := inst.ScriptCommand(context.Background(), appconfig.Command{Path: "../x.py"}); err == nil {
		t.Error("a script outside the app was accepted")
	}
}

func TestCheckConfigCommand(t *testing.T) {
	need(t, "/usr/bin/python3")
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "")
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	inst.User = me.Username
	run := func(dir string) ([]string, error) {
		cmd, err := inst.CheckConfigCommand(context.Background(), appconfig.Checker{Module: "checkconf", Function: "check"}, dir)
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr.Credential = nil
		var lines []string
		err = StreamCommand(cmd, func(s string) { lines = append(lines, s) })
		return lines, err
	}
	good := filepath.Join(t.TempDir(), "conf")
	if err := os.MkdirAll(good, 0o755); err != nil {
		t.Fatal(err)
	}
	lines, err := run(good)
	if err != nil || !strings.Contains(strings.Join(lines, "\n"), "checking conf with from lib/python") {
		t.Errorf("good config: %v %q", err, lines)
	}
	if err := os.WriteFile(filepath.Join(good, "bad"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err = run(good)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(strings.Join(lines, "\n"), "ValueError: the configuration says bad") {
		t.Errorf("bad config: %v %q", err, lines)
	}
	if _, err := inst.CheckConfigCommand(context.Background(), appconfig.Checker{}, good); err == nil {
		t.Error("no checker accepted")
	}
	if _, err := inst.CheckConfigCommand(context.Background(), appconfig.Checker{Module: "m", Function: "f"}, "relative"); err == nil {
		t.Error("a relative directory accepted")
	}
}
