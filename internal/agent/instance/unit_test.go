package instance

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/units")

const goldenToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// goldenInstances are rendered with the node layout and fixed inputs.
func goldenInstances(t *testing.T, l layout.Layout) map[string]*Instance {
	t.Helper()
	env, err := Environment(l, EnvInput{
		App: "blog", Instance: "blog.2024-01-02_001",
		Locations:     []string{"https://blog.example.com/", "example.com/blog"},
		ConfigDefault: "config",
		Services:      map[string]string{"CONFIG_PG_DBNAME": "blog", "CONFIG_PG_PASSWORD": `p"a$s\w`},
		SilverVersion: "silverlining/v0.0.0-test toppcloud",
	})
	if err != nil {
		t.Fatal(err)
	}
	base := func(kind appconfig.Kind, runner, name string) *Instance {
		return &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: kind, Runner: runner, RunnerName: name,
			Env: env, Token: goldenToken, Layout: l, Port: 23456}
	}
	php := base(appconfig.KindPHP, "index.php", "")
	php.PHPRoot = "public"
	return map[string]*Instance{
		"python":  base(appconfig.KindPython, "main.py", "application"),
		"paste":   base(appconfig.KindPaste, "production.ini", "blog"),
		"php":     php,
		"command": base(appconfig.KindCommand, "bin/server", ""),
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "units", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestUnits_Golden(t *testing.T) {
	l := layout.Default()
	for name, data := range TemplateUnits(l) {
		golden(t, name, data)
	}
	for name, inst := range goldenInstances(t, l) {
		files, err := inst.Files()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range files {
			golden(t, name+"."+filepath.Base(f.Path), f.Data)
		}
	}
}

func TestUnits_FilesAndModes(t *testing.T) {
	l := layout.Default()
	insts := goldenInstances(t, l)
	files, err := insts["php"].Files()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"/etc/toppcloud/instances/blog.2024-01-02_001/env":                              0o600,
		"/etc/toppcloud/instances/blog.2024-01-02_001/php-fpm.conf":                     0o644,
		"/etc/systemd/system/toppcloud-app@blog.2024-01-02_001.service.d/instance.conf": 0o644,
	}
	if len(files) != len(want) {
		t.Errorf("%d files, want %d", len(files), len(want))
	}
	for _, f := range files {
		if m, ok := want[f.Path]; !ok || m != f.Mode {
			t.Errorf("file %s mode %o, want %o", f.Path, f.Mode, want[f.Path])
		}
		if f.Path != EnvFilePath(l, "blog.2024-01-02_001") && bytes.Contains(f.Data, []byte(goldenToken)) {
			t.Errorf("%s (not root-only) contains the internal token", f.Path)
		}
		if f.Path != EnvFilePath(l, "blog.2024-01-02_001") && bytes.Contains(f.Data, []byte(`p"a$s\w`)) {
			t.Errorf("%s (not root-only) contains a service password", f.Path)
		}
	}
	root := t.TempDir()
	if err := WriteFiles(root, files); err != nil {
		t.Fatal(err)
	}
	for p, m := range want {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != m {
			t.Errorf("%s written with mode %o, want %o", p, st.Mode().Perm(), m)
		}
	}
	if err := insts["php"].RemoveFiles(root); err != nil {
		t.Fatal(err)
	}
	for p := range want {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after RemoveFiles", p)
		}
	}
	static := &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: appconfig.KindStatic, Layout: l}
	if files, err := static.Files(); err != nil || files != nil {
		t.Errorf("static app: files %v, err %v; want none", files, err)
	}
}

// TestUnits_SystemdVerify checks the units with systemd-analyze verify,
// which works without systemd running: the template is copied under the
// instance's name with the drop-in beside it, which verify reads.
func TestUnits_SystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	l := layout.Default()
	// A command app's executable must exist for verify.
	www := t.TempDir()
	l.WWW = www
	if err := os.MkdirAll(filepath.Join(www, "blog.2024-01-02_001", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "blog.2024-01-02_001", "bin", "server"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, inst := range goldenInstances(t, l) {
		for _, bin := range inst.Command()[:1] {
			if _, err := os.Stat(bin); err != nil {
				t.Logf("%s: %s missing, verify will complain", name, bin)
			}
		}
		dir := t.TempDir()
		unit := filepath.Join(dir, UnitName(inst.Name))
		if err := os.WriteFile(unit, TemplateUnit(l), 0o644); err != nil {
			t.Fatal(err)
		}
		dropIn, err := inst.DropIn()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(unit+".d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(unit+".d", "instance.conf"), dropIn, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			if _, serr := os.Stat(inst.Command()[0]); serr != nil {
				t.Logf("%s: %v (%s not installed)\n%s", name, err, inst.Command()[0], out)
				continue
			}
			t.Errorf("%s: systemd-analyze verify: %v\n%s", name, err, out)
		}
	}
}

// goldenJobs are a worker and two cron entries, as app.ini gives them.
func goldenJobs(t *testing.T) (Worker, []appconfig.Cron) {
	t.Helper()
	cfg, err := appconfig.Parse("app.ini", []byte("[production]\napp_name = blog\nrunner = main.py\n"+
		"worker.mailer = bin/mailer --queue 'mail out' --rate=50%\n"+
		"cron.tick = */5 * * * * /cron/tick?x=1&y=%41\n"+
		"cron.tick.random_delay = 30s\n"+
		"cron.clean = 30 2 13 * fri script:bin/clean.py --older-than $DAYS\n"+
		"cron.clean.timeout = 2h\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Workers[0]
	return Worker{Name: w.Name, Replica: 2, Command: w.Command}, cfg.Crons
}

func TestJobUnits_Golden(t *testing.T) {
	l := layout.Default()
	worker, crons := goldenJobs(t)
	for _, kind := range []string{"python", "php"} {
		inst := goldenInstances(t, l)[kind]
		wd, err := inst.WorkerDropIn(worker)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, kind+".worker.conf", wd)
		for _, c := range crons {
			service, timer, err := inst.CronDropIns(c, "blog.example.com")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, kind+".cron-"+c.Name+".service.conf", service)
			golden(t, kind+".cron-"+c.Name+".timer.conf", timer)
		}
	}
	// Neither file carries a secret.
	inst := goldenInstances(t, l)["python"]
	inst.WorkerJobs = []Worker{worker}
	files, err := inst.Files()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range files {
		if f.Path == "/etc/systemd/system/toppcloud-worker@blog.2024-01-02_001:mailer:2.service.d/worker.conf" {
			found = f.Mode == 0o644 && !bytes.Contains(f.Data, []byte(goldenToken))
		}
	}
	if !found {
		t.Errorf("Files lacks the worker's drop-in (or it has the token): %v", files)
	}
	links := inst.EnableLinks()
	if want := (Link{Path: "/etc/systemd/system/multi-user.target.wants/toppcloud-worker@blog.2024-01-02_001:mailer:2.service",
		Target: "/etc/systemd/system/toppcloud-worker@.service"}); links[len(links)-1] != want {
		t.Errorf("EnableLinks = %v", links)
	}
}

func TestJobUnits_Refused(t *testing.T) {
	l := layout.Default()
	worker, crons := goldenJobs(t)
	static := &Instance{App: "blog", Name: "blog.2024-01-02_001", Kind: appconfig.KindStatic, Layout: l}
	if _, err := static.WorkerDropIn(worker); err == nil {
		t.Error("a static instance rendered a worker")
	}
	inst := goldenInstances(t, l)["python"]
	bad := worker
	bad.Name = "x y"
	if _, err := inst.WorkerDropIn(bad); err == nil {
		t.Error("a worker named \"x y\" was rendered")
	}
	bad = worker
	bad.Command.Path = "../../etc/x"
	if _, err := inst.WorkerDropIn(bad); err == nil {
		t.Error("a worker outside the instance was rendered")
	}
	c := crons[0]
	if _, _, err := inst.CronDropIns(c, "evil.example.com\nExecStart=/bin/sh"); err == nil {
		t.Error("a host with a line break was rendered into a unit")
	}
	other := *inst
	other.App, other.Name = "other", "other.2024-01-02_001"
	n := &Node{Layout: l}
	if _, err := n.SetCrons(t.Context(), "blog", &other, crons, ""); err == nil {
		t.Error("SetCrons ran blog's crons as another app's instance")
	}
}

func TestExecLine(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"/usr/bin/python3", "a.py", "--x=1"}, "/usr/bin/python3 a.py --x=1"},
		{[]string{"/x", "two words", ""}, `/x "two words" ""`},
		{[]string{"/x", `a"b\c`, "50%", "$HOME", "${X}"}, `/x "a\"b\\c" 50%% $$HOME "$${X}"`},
		{[]string{"/x", "tab\there", ";"}, `/x "tab\x09here" ";"`},
		{[]string{"/x", "/cron?a=1&b=%41"}, `/x "/cron?a=1&b=%%41"`},
	} {
		if got := ExecLine(tc.argv); got != tc.want {
			t.Errorf("ExecLine(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

// TestJobUnits_SystemdVerify checks the job units with systemd-analyze
// verify, which also shows how systemd splits each ExecStart.
func TestJobUnits_SystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	l := layout.Default()
	www := t.TempDir()
	l.WWW = www
	l.Agent = "/bin/true"
	for _, p := range []string{"bin/mailer", "bin/clean.py"} {
		full := filepath.Join(www, "blog.2024-01-02_001", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	worker, crons := goldenJobs(t)
	inst := goldenInstances(t, l)["python"]
	dir := t.TempDir()
	write := func(unit string, template, dropIn []byte) string {
		// verify reads "NAME:..." as something else; systemd itself takes
		// the ":" of our unit names (the integration tests run them).
		p := filepath.Join(dir, strings.ReplaceAll(unit, ":", "-"))
		if err := os.WriteFile(p, template, 0o644); err != nil {
			t.Fatal(err)
		}
		if dropIn != nil {
			if err := os.MkdirAll(p+".d", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p+".d", "x.conf"), dropIn, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	wd, err := inst.WorkerDropIn(worker)
	if err != nil {
		t.Fatal(err)
	}
	units := []string{write(WorkerUnitName(inst.Name, worker.Name, worker.Replica), workerTemplate(l), wd)}
	for _, c := range crons {
		service, timer, err := inst.CronDropIns(c, "blog.example.com")
		if err != nil {
			t.Fatal(err)
		}
		units = append(units, write(CronUnitName("blog", c.Name, ".service"), cronServiceTemplate(l), service),
			write(CronUnitName("blog", c.Name, ".timer"), cronTimerTemplate(), timer))
	}
	for _, u := range units {
		out, err := exec.Command(analyze, "verify", u).CombinedOutput()
		// verify complains about the python interpreter and gunicorn's
		// absence only through missing executables; nothing else may.
		var problems []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "/usr/bin/python3") {
				problems = append(problems, line)
			}
		}
		if len(problems) > 0 {
			t.Errorf("%s: systemd-analyze verify: %v\n%s", filepath.Base(u), err, strings.Join(problems, "\n"))
		}
	}
}
