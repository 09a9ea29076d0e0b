package cli

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/sshx"
)

// jobsApp is a Python app with two once-a-minute crons (an internal
// request and a script) and a worker. Each writes what ran, as which
// instance and when, to the app's log directory.
var jobsApp = map[string]string{
	"app.ini": "[production]\napp_name = jobs\nrunner = app.py\n" +
		"cron.tick = * * * * * /cron/tick\n" +
		"cron.script = * * * * * script:bin/tick.sh\n" +
		"worker.loop = bin/worker.py --beat 1\n",
	"app.py": `import os, time

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/cron/tick':
        # The app refuses its cron URL to anyone but the agent.
        if not environ.get('silverlining.internal'):
            start_response('403 Forbidden', [('Content-Type', 'text/plain')])
            return [b'internal requests only\n']
        with open(os.path.join(os.environ['SILVER_LOGS'], 'jobs.log'), 'a') as f:
            f.write('url %s %d\n' % (os.environ['SILVER_INSTANCE_NAME'], time.time()))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ticked\n']
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('jobs app %s\n' % os.environ['SILVER_INSTANCE_NAME']).encode()]
`,
	"bin/tick.sh": "#!/bin/sh\n" +
		`echo "script $SILVER_INSTANCE_NAME $(date +%s) token=${TOPPCLOUD_INTERNAL_TOKEN:-none}" >> "$SILVER_LOGS/jobs.log"` + "\n" +
		"echo script ran\n",
	// The worker takes a while to stop, as one finishing its task would:
	// the next copy must wait for it.
	"bin/worker.py": `import os, signal, sys, time
log = os.path.join(os.environ['SILVER_LOGS'], 'jobs.log')
def note(what):
    with open(log, 'a') as f:
        f.write('%s %s %d %.3f\n' % (what, os.environ['SILVER_INSTANCE_NAME'], os.getpid(), time.time()))
def stop(*_):
    time.sleep(2)
    note('stop')
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note('start')
print('worker %s up (%s)' % (os.getpid(), ' '.join(sys.argv[1:])), flush=True)
while True:
    time.sleep(1)
`,
}

// jobsScenario walks the jobs app through its life on the shared node of
// TestIntegration_Update. Its steps are subtests there, apart, so that
// the crons' first run (within a minute of the deploy) comes while other
// subtests run rather than being waited for.
type jobsScenario struct {
	e    *localEnv
	node string
	w    web
	// root is a root login on the node (a new one after a reboot).
	root *sshx.Client
	dir  string
	// first is the instance the first deploy made, second the redeploy's.
	first, second string
}

const jobsHost = "jobs.test"

// sh runs script as root on the node.
func (j *jobsScenario) sh(t *testing.T, script string) string {
	t.Helper()
	out, err := j.root.Output(context.Background(), []string{"sh", "-c", script}, nil)
	if err != nil {
		t.Fatalf("%s: %v %s", script, err, out)
	}
	return string(out)
}

// app returns the jobs app's entry in query.
func (j *jobsScenario) app(t *testing.T) protocol.AppInfo {
	t.Helper()
	for _, a := range j.e.query(j.node).Apps {
		if a.Name == "jobs" {
			return a
		}
	}
	t.Fatalf("query has no app jobs")
	return protocol.AppInfo{}
}

// event is a line of the app's jobs.log.
type event struct {
	what, instance string
	pid            int
	at             float64
	rest           string
}

func (j *jobsScenario) events(t *testing.T) []event {
	t.Helper()
	var out []event
	for _, line := range strings.Split(j.sh(t, "cat /var/log/toppcloud/apps/jobs/jobs.log 2>/dev/null || true"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		ev := event{what: f[0], instance: f[1]}
		switch ev.what {
		case "start", "stop":
			ev.pid, _ = strconv.Atoi(f[2])
			ev.at, _ = strconv.ParseFloat(f[3], 64)
		default:
			ev.at, _ = strconv.ParseFloat(f[2], 64)
			ev.rest = strings.Join(f[3:], " ")
		}
		out = append(out, ev)
	}
	return out
}

func (j *jobsScenario) deploy(t *testing.T) {
	j.dir = copyApp(t, "python", jobsApp)
	out := j.e.ok("update", j.dir, jobsHost, "--node", j.node)
	for _, want := range []string{"workers: done (1 worker started", "jobs: done (cron script, tick added; 2 crons as jobs."} {
		if !strings.Contains(out, want) {
			t.Errorf("update output lacks %q:\n%s", want, out)
		}
	}
	j.first, _ = liveAt(j.e.query(j.node), jobsHost)
	a := j.app(t)
	if len(a.Crons) != 2 || len(a.Workers) != 1 {
		t.Fatalf("query: crons %+v workers %+v", a.Crons, a.Workers)
	}
	for _, c := range a.Crons {
		if !c.Scheduled || c.Instance != j.first || c.Next.IsZero() || c.Schedule != "* * * * *" {
			t.Errorf("cron %+v", c)
		}
	}
	if wk := a.Workers[0]; wk.Name != "loop" || wk.Instance != j.first || wk.Restarts != 0 ||
		(wk.State != protocol.WorkerRunning && wk.State != protocol.WorkerWaiting) {
		t.Errorf("worker %+v", wk)
	}
	// From outside, the cron URL is refused, with or without a made-up
	// internal header.
	for _, header := range []string{"", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+j.w.addr+"/cron/tick", nil)
		req.Host = jobsHost
		if header != "" {
			req.Header.Set("X-Toppcloud-Internal", header)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /cron/tick from outside (header %q) = %d", header, resp.StatusCode)
		}
	}
}

func (j *jobsScenario) crons(t *testing.T) {
	// Both crons run within a minute of the deploy; most of that minute
	// went by in the subtests before this one.
	var url, script []event
	waitFor(t, 90*time.Second, func() bool {
		url, script = nil, nil
		for _, ev := range j.events(t) {
			switch ev.what {
			case "url":
				url = append(url, ev)
			case "script":
				script = append(script, ev)
			}
		}
		return len(url) > 0 && len(script) > 0
	})
	for _, ev := range append(url, script...) {
		// As the live instance, on the minute (the timer's accuracy is a
		// second; the rest is starting a process on a busy machine).
		if ev.instance != j.first {
			t.Errorf("%s cron ran as %s, live is %s", ev.what, ev.instance, j.first)
		}
		if sec := int64(ev.at) % 60; sec > 20 {
			t.Errorf("%s cron ran %ds after the minute", ev.what, sec)
		}
	}
	if script[0].rest != "token=none" {
		t.Errorf("the script saw the internal token: %q", script[0].rest)
	}
	a := j.app(t)
	for _, c := range a.Crons {
		if c.Last.IsZero() || (c.LastResult != "success" && !c.Running) {
			t.Errorf("cron %s after its run: %+v", c.Name, c)
		}
	}
	code, stdout, stderr := j.e.run2("logs", jobsHost, "--node", j.node, "--job", "tick", "-n", "30")
	if code != ExitOK || !strings.Contains(stdout, "GET /cron/tick (Host jobs.test) from "+j.first) || !strings.Contains(stdout, "ticked") ||
		strings.Contains(stdout, "script ran") || strings.Contains(stdout, "errors.log") {
		t.Errorf("logs --job tick: exit %d\n%s%s", code, stderr, stdout)
	}
	if code, out := j.e.run("logs", jobsHost, "--node", j.node, "--job", "nope"); code != ExitFailed || !strings.Contains(out, "jobs has no job nope (its jobs: tick, script, loop)") {
		t.Errorf("logs --job nope: exit %d\n%s", code, out)
	}
}

func (j *jobsScenario) workers(t *testing.T) {
	unit := func(instance string) string { return "toppcloud-worker@" + instance + ":loop:1.service" }
	// A crash: systemd starts it again.
	before := j.app(t).Workers[0]
	if before.PID == 0 {
		t.Fatalf("worker without a process: %+v", before)
	}
	j.sh(t, fmt.Sprintf("kill -9 %d", before.PID))
	var after protocol.WorkerInfo
	waitFor(t, 30*time.Second, func() bool {
		after = j.app(t).Workers[0]
		return after.State == protocol.WorkerRunning && after.PID != 0 && after.PID != before.PID
	})
	if after.Restarts != 1 || after.Instance != j.first {
		t.Errorf("after the crash: %+v", after)
	}

	// A redeploy: the new instance's worker starts before the switch and
	// waits until the old one, stopped after it, has finished.
	v2 := copyApp(t, "python", jobsApp)
	out := j.e.ok("update", v2, jobsHost, "--node", j.node, "--force")
	j.second, _ = liveAt(j.e.query(j.node), jobsHost)
	if !strings.Contains(out, "1 worker of "+j.first+" stopped; cron script, tick moved") {
		t.Errorf("update output:\n%s", out)
	}
	var wk []protocol.WorkerInfo
	waitFor(t, 30*time.Second, func() bool {
		wk = j.app(t).Workers
		return len(wk) == 1 && wk[0].State == protocol.WorkerRunning
	})
	if wk[0].Instance != j.second || wk[0].Restarts != 0 {
		t.Errorf("worker after the redeploy: %+v", wk)
	}
	for _, c := range j.app(t).Crons {
		if c.Instance != j.second || !c.Scheduled {
			t.Errorf("cron after the redeploy: %+v", c)
		}
	}
	// One process at any time: every start after the stop before it.
	running := map[int]string{}
	var crashed = before.PID
	for _, ev := range j.events(t) {
		switch ev.what {
		case "start":
			delete(running, crashed) // killed with -9, it wrote no stop
			if len(running) > 0 {
				t.Errorf("worker %d of %s started at %.3f while %v ran", ev.pid, ev.instance, ev.at, running)
			}
			running[ev.pid] = ev.instance
		case "stop":
			delete(running, ev.pid)
		}
	}
	if len(running) != 1 || running[wk[0].PID] != j.second {
		t.Errorf("running at the end: %v, want pid %d of %s", running, wk[0].PID, j.second)
	}
	logs := j.sh(t, "journalctl --no-pager -o cat -u '"+unit(j.second)+"'")
	if !strings.Contains(logs, "waiting for "+unit(j.first)+" to stop") {
		t.Errorf("the new worker did not wait for the old one:\n%s", logs)
	}
	if code, stdout, _ := j.e.run2("logs", jobsHost, "--node", j.node, "--job", "loop"); code != ExitOK || !strings.Contains(stdout, "(--beat 1)") {
		t.Errorf("logs --job loop: exit %d\n%s", code, stdout)
	}
}

func (j *jobsScenario) disable(t *testing.T) {
	j.e.ok("disable", "--by-name", "jobs", "--node", j.node)
	for _, c := range j.app(t).Crons {
		if c.Scheduled {
			t.Errorf("cron of a disabled app: %+v", c)
		}
	}
	if timers := j.sh(t, "systemctl list-timers --all --no-legend 'toppcloud-cron@jobs:*' | wc -l"); strings.TrimSpace(timers) != "0" {
		t.Errorf("%s timers of a disabled app", timers)
	}
	j.e.ok("enable", "--by-name", "jobs", "--node", j.node)
	for _, c := range j.app(t).Crons {
		if !c.Scheduled || c.Instance != j.second {
			t.Errorf("cron after enable: %+v", c)
		}
	}
}

// afterReboot: the worker and timers came back by themselves; deactivate
// stops them.
func (j *jobsScenario) afterReboot(t *testing.T) {
	// The login from before the reboot is gone.
	j.root = j.e.dial(j.e.record(j.node), "root")
	var a protocol.AppInfo
	waitFor(t, 90*time.Second, func() bool {
		a = j.app(t)
		return len(a.Workers) == 1 && a.Workers[0].State == protocol.WorkerRunning
	})
	for _, c := range a.Crons {
		if !c.Scheduled {
			t.Errorf("cron after the reboot: %+v", c)
		}
	}
	last := a.Workers[0]
	j.e.ok("deactivate", jobsHost, "--node", j.node)
	a = j.app(t)
	if len(a.Crons) != 0 || len(a.Workers) != 0 {
		t.Errorf("after deactivate: crons %+v, workers %+v", a.Crons, a.Workers)
	}
	waitFor(t, 30*time.Second, func() bool {
		return strings.TrimSpace(j.sh(t, "systemctl list-units --no-legend --state=active,activating,deactivating 'toppcloud-worker@jobs.*' 'toppcloud-cron@jobs:*' | wc -l")) == "0"
	})
	stopped := false
	for _, ev := range j.events(t) {
		if ev.what == "stop" && ev.pid == last.PID {
			stopped = true
		}
	}
	if !stopped {
		t.Errorf("the worker (pid %d) did not stop gracefully", last.PID)
	}
}
