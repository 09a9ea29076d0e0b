package instance

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// directCommand runs argv as the test's own user with the environment a
// transient unit gives it (the environment file less the token, RunEnv),
// without systemd: the runner's behaviour (sys.path, the script runner,
// output streaming) is the same, and the host running the tests has no
// systemd to ask.
func directCommand(inst *Instance, argv []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = inst.Dir()
	env := inst.ProcessEnv()
	delete(env, EnvInternalToken)
	maps.Copy(env, inst.RunEnv())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// runScript runs a script: entry as the test's own user.
func runScript(t *testing.T, inst *Instance, c appconfig.Command) ([]string, error) {
	t.Helper()
	argv, err := inst.ScriptArgv(c)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	err = StreamCommand(directCommand(inst, argv), func(s string) { lines = append(lines, s) })
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

// TestRunCommand_TransientUnit: the app's commands run in a transient
// unit of their own, as the app's user, with the instance's environment
// file less the token, and every sandbox setting and limit of the
// instance's service (Properties), which the unit's cgroup outlives no
// process of.
func TestRunCommand_TransientUnit(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	l := testLayout(t)
	inst := testInstance(t, l, "wsgi", appconfig.KindPython, "main.py", "")
	inst.User = "nobody"
	inst.Limits = appconfig.Limits{MemoryMax: 300 << 20}
	cmd, err := inst.ScriptCommand(context.Background(), appconfig.Command{Path: "bin/hello.sh", Args: []string{"a b"}})
	if err != nil {
		t.Fatal(err)
	}
	args := cmd.Args
	if args[0] != l.SystemdRun {
		t.Fatalf("runs %s, not systemd-run", args[0])
	}
	sep := slices.Index(args, "--")
	if sep < 0 || !slices.Equal(args[sep+1:], []string{filepath.Join(inst.Dir(), "bin/hello.sh"), "a b"}) {
		t.Errorf("command after --: %q", args[sep+1:])
	}
	opts := args[1:sep]
	for _, want := range []string{"--wait", "--pipe", "--collect", "--working-directory=" + inst.Dir(),
		"--property=EnvironmentFile=" + EnvFilePath(l, inst.Name), "--property=UnsetEnvironment=" + EnvInternalToken,
		"--property=User=nobody", "--property=NoNewPrivileges=yes", "--property=ProtectSystem=strict",
		"--property=MemoryMax=314572800", "--property=TasksMax=512", "--property=" + hidden(l)} {
		if !slices.Contains(opts, want) {
			t.Errorf("systemd-run lacks %s:\n%q", want, opts)
		}
	}
	for _, p := range inst.Properties() {
		if !slices.Contains(opts, "--property="+p) {
			t.Errorf("the unit lacks the instance's %s", p)
		}
	}
	for _, o := range opts {
		if strings.Contains(o, inst.Token) {
			t.Errorf("the internal token is on the command line: %s", o)
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
		argv, err := inst.CheckConfigArgv(appconfig.Checker{Module: "checkconf", Function: "check"}, dir)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		err = StreamCommand(directCommand(inst, argv), func(s string) { lines = append(lines, s) })
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
