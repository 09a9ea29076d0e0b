package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// appDir writes an application directory.
func appDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testWSGI = "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n"

func goodApp(t *testing.T) string {
	return appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\n", "main.py": testWSGI})
}

// TestAppCommands_BadInputTouchesNoNode: every mistake in the command
// line or the app directory exits 2 with a message saying what is wrong,
// and no command runs on the node.
func TestAppCommands_BadInputTouchesNoNode(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	before := len(n.srv.Execs())
	escaping := goodApp(t)
	if err := os.Symlink("/etc/passwd", filepath.Join(escaping, "passwd")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"update", filepath.Join(t.TempDir(), "none"), "web1"}, "application directory"},
		{[]string{"update", appDir(t, map[string]string{"main.py": testWSGI}), "web1"}, "no app.ini"},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production\n"}), "web1"}, "app.ini:1"},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.rb\n", "main.rb": "x"}), "web1"}, "runner"},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\n"}), "web1"}, "main.py"},
		{[]string{"update", escaping, "web1"}, "passwd"},
		{[]string{"update", goodApp(t), "web1", "--name", "../../etc"}, "--name"},
		{[]string{"update", goodApp(t), "web1", "--name", "UPPER.case"}, "--name"},
		{[]string{"update", goodApp(t), "web1/../../etc"}, "location"},
		{[]string{"update", goodApp(t), "web1/%2e%2e/x"}, "location"},
		{[]string{"update", goodApp(t), "web1", "--compress", "gzip"}, "--compress"},
		{[]string{"update", goodApp(t)}, "default_location"},
		{[]string{"update", goodApp(t), "elsewhere.example"}, "--node"},
		{[]string{"update", goodApp(t), "web1", "--config", "/nonexistent"}, "--config"},
		{[]string{"update", goodApp(t), "web1", "--lock-timeout", "-1s"}, "must not be negative"},
		{[]string{"update"}, "usage"},
		{[]string{"activate", "web1/../x", "prev"}, "location"},
		{[]string{"activate", "web1", "../../x"}, "not an instance name"},
		{[]string{"activate", "web1"}, "usage"},
		{[]string{"deactivate", "*.example.com"}, "--node"},
		{[]string{"deactivate", "ghost.example"}, "--node"},
		{[]string{"disable", "--by-name", "blog", "--by-location", "web1"}, "--by-name APP or --by-location"},
		{[]string{"disable", "--by-name", "blog"}, "--node"},
		{[]string{"disable", "--by-name", "../x", "--node", "web1"}, "app"},
		{[]string{"enable"}, "--by-name APP or --by-location"},
		{[]string{"query", "web1", "[bad"}, "bad pattern"},
		{[]string{"query", "ghost"}, "no node named ghost"},
		{[]string{"clean-node", "ghost"}, "no node named ghost"},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\n\ncron.tick = 61 * * * * /tick\n", "main.py": testWSGI}), "web1"},
			`app.ini:5: cron.tick: "61 * * * *": minute: "61" is not a number from 0 to 59`},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\ncron.x = @daily script:bin/missing\n", "main.py": testWSGI}), "web1"},
			`app.ini:4: cron.x: file "bin/missing" not found`},
		{[]string{"update", appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\nworker.w = bin/w\nworker.w.replicas = many\n", "main.py": testWSGI, "bin/w": "x"}), "web1"},
			`app.ini:5: worker.w.replicas: "many": replicas is a number from 1 to 100`},
		{[]string{"logs", "web1", "--job", "No Such"}, "job name"},
		{[]string{"logs", "web1", "-n", "-5"}, "negative"},
		{[]string{"logs", "*"}, "--node"},
		{[]string{"backup", "web1", "remote:../x"}, "backup name"},
		{[]string{"backup", "web1", "b.zip"}, ".tar.gz"},
		{[]string{"backup", "web1", "ssh://host/x"}, "unknown kind"},
		{[]string{"backup", "web1", "/nonexistent/dir/b"}, "no directory"},
		{[]string{"backup", "web1"}, "usage"},
		{[]string{"restore", "/nonexistent", "web1"}, "restore"},
		{[]string{"restore", "b.zip", "web1"}, ".tar.gz"},
		{[]string{"clear", "web1/../x"}, "location"},
		{[]string{"run", "web1"}, "LOCATION and SCRIPT"},
		{[]string{"run", "-x", "web1", "s"}, "unknown option"},
		{[]string{"run", "ghost.example", "s"}, "--node"},
	} {
		code, _, stderr := n.run(tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d mentioning %q:\n%s", tc.args, code, ExitUsage, tc.want, stderr)
		}
	}
	if execs := n.srv.Execs(); len(execs) != before {
		t.Errorf("commands ran on the node: %q", execs[before:])
	}
}

// deployStreams makes the canned answers of an update: the node lacks
// nothing, then deploy.
func deployStreams(t *testing.T, n *agentNode, deploy string) {
	var b strings.Builder
	if err := protocol.NewWriter(&b).Reply(protocol.UpdateNeed{App: []int{}}); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.replies[protocol.OpUpdate] = b.String()
	n.streams[protocol.OpUpdate] = deploy
}

func TestUpdate_ShowsStepsAppOutputAndURL(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	var b strings.Builder
	w := protocol.NewWriter(&b)
	w.Event(protocol.Event{Step: "start", Status: protocol.StepStart})
	w.Event(protocol.Event{Step: "start", Status: protocol.StepDone, Detail: "answers"})
	w.Log(protocol.StreamApp, "Fetching update URL /update")
	w.Log("agent", "a detail only -v shows")
	w.OK(protocol.DeployResult{Instance: "blog.2024-01-01_002", Prev: "blog.2024-01-01_001", Release: 2, Location: "web1/blog/"})
	deployStreams(t, n, b.String())

	code, stdout, stderr := n.run("update", goodApp(t), "web1/blog", "--lock-timeout", "3s", "--etc-hosts")
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"upload: done (nothing new to send", "start: done (answers)", "  | Fetching update URL /update",
		"blog.2024-01-01_002 is live at http://web1/blog/ (release 2; previous: blog.2024-01-01_001"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "only -v shows") {
		t.Error("an agent detail was shown without -v")
	}
	if stdout != "http://web1/blog/\n" {
		t.Errorf("stdout = %q", stdout)
	}
	// The agent is not asked its version: the update names the client's.
	if strings.Contains(stderr, "check agent") {
		t.Errorf("the agent was checked before the update:\n%s", stderr)
	}
	var req protocol.Request
	var args protocol.UpdateArgs
	if err := json.Unmarshal([]byte(n.reqs[protocol.OpUpdate]), &req); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(req.Args, &args); err != nil {
		t.Fatal(err)
	}
	if req.Fingerprint != n.sum || args.App != "blog" || args.Location != "web1/blog/" || !args.SkipUnchanged || args.LockWait != protocol.Duration(3e9) {
		t.Errorf("update request = %+v, args %+v", req, args)
	}
	if hosts, _ := os.ReadFile(n.h.etcHosts); !strings.Contains(string(hosts), "web1") {
		t.Errorf("--etc-hosts: %s", hosts)
	}
}

func TestUpdate_FailureShowsTheAppsError(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	deployStreams(t, n, stream(t, []protocol.Event{{Step: "start", Status: protocol.StepStart}, {Step: "start", Status: protocol.StepFailed}}, nil, &protocol.Error{
		Code: protocol.CodeUnhealthy, Message: "instance blog.x exited before answering",
		Tail: []string{"Traceback (most recent call last):", "ModuleNotFoundError: No module named 'nonexistent'"},
	}))
	code, _, stderr := n.run("update", goodApp(t), "web1")
	if code != ExitFailed {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"start: failed", "exited before answering", "  | ModuleNotFoundError: No module named 'nonexistent'"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestQuery_PrintsAppsAndJSON(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	res := protocol.QueryResult{Apps: []protocol.AppInfo{{Name: "blog", Instances: []protocol.InstanceInfo{
		{Name: "blog.1", Kind: "python", State: "inactive", Prev: []string{"web1/"}},
		{Name: "blog.2", Kind: "python", State: "active", Live: []string{"web1/"}},
		{Name: "blog.0", Kind: "python", State: "inactive"},
	}, Releases: []protocol.Release{{Number: 2, Action: "update", Instance: "blog.2", Locations: []string{"web1/"}, LocalUser: "me@here"}},
		Crons: []protocol.CronInfo{
			{Name: "tick", Schedule: "* * * * *", Target: "/cron/tick", Instance: "blog.2", Scheduled: true,
				Last: time.Date(2026, 1, 2, 3, 4, 0, 0, time.Local), Next: time.Date(2026, 1, 2, 3, 5, 0, 0, time.Local), LastResult: "exit status 1"},
			{Name: "clean", Schedule: "@daily", Target: "script:bin/clean"},
		},
		Workers: []protocol.WorkerInfo{
			{Name: "mailer", Replica: 1, Instance: "blog.2", State: protocol.WorkerRunning, Restarts: 2, PID: 42},
			{Name: "mailer", Replica: 2, Instance: "blog.2", State: protocol.WorkerRestarting, Restarts: 5, LastExit: "killed by signal 9"},
		},
	}}}
	n.mu.Lock()
	n.streams[protocol.OpQuery] = stream(t, nil, res, nil)
	n.mu.Unlock()
	code, stdout, stderr := n.run("query", "web1", "blog*")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"app blog", "blog.1  prev at web1/  [python, inactive]", "blog.2  live at web1/  [python, active]", "blog.0  unused", "release 2: update blog.2 at web1/",
		"cron tick: * * * * * /cron/tick  [last 2026-01-02 03:04:00 (exit status 1), next 2026-01-02 03:05:00, as blog.2]",
		"cron clean: @daily script:bin/clean  [not scheduled]",
		"worker mailer: blog.2  [running, 2 restarts, pid 42]",
		"worker mailer#2: blog.2  [restarting, 5 restarts, last exit: killed by signal 9]"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(n.reqs[protocol.OpQuery], `"patterns":["blog*"]`) {
		t.Errorf("request %s", n.reqs[protocol.OpQuery])
	}
	code, stdout, _ = n.run("query", "web1", "--json")
	var got protocol.QueryResult
	if code != ExitOK || json.Unmarshal([]byte(stdout), &got) != nil || len(got.Apps) != 1 || len(got.Apps[0].Instances) != 3 {
		t.Errorf("--json: exit %d\n%s", code, stdout)
	}
}

// TestAppText_ControlCharactersNeverReachTheTerminal: what an app (or a
// node) writes is printed with its control characters made visible, in
// update_fetch output, step details, warnings, error tails and messages,
// and logs' errors.log and journal lines.
func TestAppText_ControlCharactersNeverReachTheTerminal(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	const hostile = "x\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\r\x9b31m\xc2\x9b0m\xff"
	var b strings.Builder
	w := protocol.NewWriter(&b)
	w.Event(protocol.Event{Step: "start", Status: protocol.StepStart})
	w.Event(protocol.Event{Step: "start", Status: protocol.StepProgress, Detail: "progress " + hostile})
	w.Log(protocol.StreamApp, "fetch "+hostile)
	w.Log(protocol.StreamWarning, "warn "+hostile)
	w.Event(protocol.Event{Step: "start", Status: protocol.StepFailed})
	w.Fail(&protocol.Error{Code: protocol.CodeFetchFailed, Message: "message " + hostile, Tail: []string{"tail " + hostile}})
	deployStreams(t, n, b.String())
	_, stdout, stderr := n.run("update", goodApp(t), "web1")

	b.Reset()
	w = protocol.NewWriter(&b)
	w.Log(protocol.StreamErrorsLog, "errors "+hostile)
	w.Log(protocol.StreamJournal, "journal "+hostile)
	w.OK(protocol.LogsResult{App: "blog"})
	n.mu.Lock()
	n.streams[protocol.OpLogs] = b.String()
	n.mu.Unlock()
	code, lstdout, lstderr := n.run("logs", "web1")
	if code != ExitOK {
		t.Fatalf("logs: exit %d\n%s", code, lstderr)
	}
	all := stdout + stderr + lstdout + lstderr
	for _, want := range []string{"fetch x", "warn x", "message x", "tail x", "errors x", "journal x"} {
		if !strings.Contains(all, want+"^[]52;c;cm0gLXJmIH4=^G^[[2J^M") {
			t.Errorf("output lacks %q with its escapes shown:\n%s", want, all)
		}
	}
	for i, r := range all {
		if r != '\n' && r != '\t' && (r < 0x20 || r >= 0x7f && r <= 0x9f) {
			t.Fatalf("control character %U at %d reached the terminal:\n%q", r, i, all)
		}
	}
	if strings.ContainsRune(all, 0xfffd) == false {
		t.Errorf("a byte that is not UTF-8 was not replaced:\n%q", all)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext é": "plain\ttext é",
		"a\x1b[31mb":    "a^[[31mb",
		"\r\n\x00\x7f":  "^M^J^@^?",
		"\u009b1m":      "M-^[1m",
		"bad\xffutf8":   "bad\uFFFDutf8",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PrintableLines("one\x1b\r\ntwo"); got != "one^[\ntwo" {
		t.Errorf("PrintableLines = %q", got)
	}
}
