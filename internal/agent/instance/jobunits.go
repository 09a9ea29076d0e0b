package instance

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// An app's jobs (app.ini's cron.NAME and worker.NAME) run in units of
// their own, from templates that share the web process's sandbox
// (appSandbox) and, in their drop-ins, its user, environment and paths
// (appUser, appPaths):
//
//	toppcloud-worker@INSTANCE:NAME:N.service   replica N of worker NAME, run by an instance
//	toppcloud-cron@APP:NAME.timer              the schedule of cron NAME of an app
//	toppcloud-cron@APP:NAME.service            one run of it, as the app's live instance
//
// Workers belong to an instance: they start with it and stop with it.
// Crons belong to the app, whichever instance is live: one timer per
// entry whose name does not change from one deploy to the next, so that
// systemd never runs an entry twice at once (a run that comes due while
// the last one still runs happens right after it, once) and its
// Persistent= record of the last run carries over.

// Job unit templates.
const (
	WorkerTemplate      = "toppcloud-worker@.service"
	CronServiceTemplate = "toppcloud-cron@.service"
	CronTimerTemplate   = "toppcloud-cron@.timer"
)

// EnvJob names the job a worker or cron run is (app.ini's NAME).
const EnvJob = "TOPPCLOUD_JOB"

// WorkerRestartDelay is systemd's pause before restarting a failed
// worker; the worker-turn step lengthens it after quick failures.
const WorkerRestartDelay = "1s"

// Worker is one replica of an app.ini worker as an instance runs it.
type Worker struct {
	Name string
	// Replica numbers the node's copies of the worker from 1.
	Replica int
	Command appconfig.Command
}

// WorkerUnitName is the unit of a worker replica of an instance.
func WorkerUnitName(instance, worker string, replica int) string {
	return "toppcloud-worker@" + instance + ":" + worker + ":" + strconv.Itoa(replica) + ".service"
}

// WorkerUnitPattern matches the worker units of every instance of app:
// every replica of worker job, or of every worker when job is "".
func WorkerUnitPattern(app, job string) string {
	if job == "" {
		job = "*"
	}
	return "toppcloud-worker@" + app + ".*:" + job + ":*.service"
}

// WorkerUnit is a worker unit's name taken apart.
type WorkerUnit struct {
	Instance string
	Name     string
	Replica  int
}

// Unit is the unit's name.
func (w WorkerUnit) Unit() string { return WorkerUnitName(w.Instance, w.Name, w.Replica) }

// ParseWorkerUnit takes a worker unit's name apart.
func ParseWorkerUnit(unit string) (WorkerUnit, bool) {
	rest, ok := strings.CutPrefix(unit, "toppcloud-worker@")
	if !ok {
		return WorkerUnit{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".service")
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != 3 {
		return WorkerUnit{}, false
	}
	n, err := strconv.Atoi(parts[2])
	if _, isInst := SplitName(parts[0]); !isInst || err != nil || n < 1 || strconv.Itoa(n) != parts[2] || appconfig.CheckJobName(parts[1]) != nil {
		return WorkerUnit{}, false
	}
	return WorkerUnit{Instance: parts[0], Name: parts[1], Replica: n}, true
}

// CronUnitName is the timer (suffix ".timer") or service (".service")
// of an app's cron entry.
func CronUnitName(app, job, suffix string) string {
	return "toppcloud-cron@" + app + ":" + job + suffix
}

// parseCronUnit takes the name of a cron entry's drop-in directory or
// unit apart: its app and job.
func parseCronUnit(name, suffix string) (app, job string, ok bool) {
	rest, ok := strings.CutPrefix(name, "toppcloud-cron@")
	if !ok {
		return "", "", false
	}
	if rest, ok = strings.CutSuffix(rest, suffix); !ok {
		return "", "", false
	}
	app, job, ok = strings.Cut(rest, ":")
	if !ok || appconfig.CheckAppName(app) != nil || appconfig.CheckJobName(job) != nil {
		return "", "", false
	}
	return app, job, true
}

// dropIn is where the agent writes a unit's drop-in.
func dropIn(l layout.Layout, unit, file string) string {
	return path.Join(l.Units, unit+".d", file)
}

// Drop-in file names of job units.
const (
	workerDropIn   = "worker.conf"
	cronDropIn     = "job.conf"
	scheduleDropIn = "schedule.conf"
)

func jobTemplates(l layout.Layout) map[string][]byte {
	return map[string][]byte{
		WorkerTemplate:      workerTemplate(l),
		CronServiceTemplate: cronServiceTemplate(l),
		CronTimerTemplate:   cronTimerTemplate(),
	}
}

func workerTemplate(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud worker (app.ini's worker.NAME); written by the agent, do not edit.")
	w("# Each unit's drop-in (toppcloud-worker@INSTANCE:NAME:N.service.d/" + workerDropIn + ")")
	w("# sets its user, command and the directories it may use.")
	w("[Unit]")
	w("Description=toppcloud worker %i")
	w("After=network.target")
	w("# Never given up on: the step before each start spaces restarts out.")
	w("StartLimitIntervalSec=0")
	w("")
	w("[Service]")
	w("Type=exec")
	w("Restart=on-failure")
	w("RestartSec=" + WorkerRestartDelay)
	w("# As root, before the worker runs: wait until no other instance's copy of")
	w("# this worker runs (a deploy starts the new one before it stops the old),")
	w("# then, after quick failures, wait longer before each restart.")
	w("ExecStartPre=+" + l.Agent + " node-job worker-turn %n")
	w("TimeoutStartSec=5min")
	w("StandardOutput=journal")
	w("StandardError=journal")
	w("KillMode=mixed")
	w("KillSignal=SIGTERM")
	w(fmt.Sprintf("TimeoutStopSec=%d", int((DefaultGracefulTimeout + DefaultStopSlack).Seconds())))
	appSandbox(w, l)
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return []byte(b.String())
}

func cronServiceTemplate(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud cron run (app.ini's cron.NAME); written by the agent, do not edit.")
	w("# Each entry's drop-in (toppcloud-cron@APP:NAME.service.d/" + cronDropIn + ") says")
	w("# which instance runs it, as whom, and what.")
	w("[Unit]")
	w("Description=toppcloud cron job %i")
	w("")
	w("[Service]")
	w("Type=oneshot")
	w("StandardOutput=journal")
	w("StandardError=journal")
	w("KillMode=mixed")
	w(fmt.Sprintf("TimeoutStopSec=%d", int((DefaultGracefulTimeout + DefaultStopSlack).Seconds())))
	appSandbox(w, l)
	return []byte(b.String())
}

func cronTimerTemplate() []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud cron schedule (app.ini's cron.NAME); written by the agent, do not edit.")
	w("# Each entry's drop-in (toppcloud-cron@APP:NAME.timer.d/" + scheduleDropIn + ") holds")
	w("# its schedule.")
	w("[Unit]")
	w("Description=toppcloud schedule of cron job %i")
	w("")
	w("[Timer]")
	w("# A run missed while the node was down happens once when it is back.")
	w("Persistent=yes")
	w("# On the minute, not within systemd's default minute of slack.")
	w("AccuracySec=1s")
	w("")
	w("[Install]")
	w("WantedBy=timers.target")
	return []byte(b.String())
}

// checkJobs validates what job units are rendered from: names that
// become unit names and paths.
func (i *Instance) checkJobs(names ...string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("jobs of instance %q: %s: %w", i.Name, fmt.Sprintf(format, args...), ErrInvalid)
	}
	if err := appconfig.CheckAppName(i.App); err != nil {
		return bad("%v", err)
	}
	if app, ok := SplitName(i.Name); !ok || app != i.App {
		return bad("the instance name must be %s.SUFFIX", i.App)
	}
	if !i.HasProcess() {
		return bad("a static site runs no jobs")
	}
	if u := i.user(); !userRE.MatchString(u) || u == "root" || u == "www-mgr" {
		return bad("user %q cannot run an app", u)
	}
	for _, n := range names {
		if err := appconfig.CheckJobName(n); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// jobEnv writes the environment lines of a job's drop-in: the
// instance's, less the internal token unless the job makes internal
// requests, and its name.
func jobEnv(w func(string), job string, keepToken bool) {
	if !keepToken {
		w("# The token proves the agent's own requests; the app's scripts do not need it.")
		w("UnsetEnvironment=" + EnvInternalToken)
	}
	w("Environment=PYTHONUNBUFFERED=1 " + EnvJob + "=" + job)
}

// WorkerDropIn renders the drop-in of one worker replica of this
// instance.
func (i *Instance) WorkerDropIn(wk Worker) ([]byte, error) {
	if err := i.checkJobs(wk.Name); err != nil {
		return nil, err
	}
	argv, err := i.scriptArgv(wk.Command)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", wk.Name, err)
	}
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w(fmt.Sprintf("# toppcloud worker %s (replica %d) of instance %s; written by the agent, do not edit.", wk.Name, wk.Replica, i.Name))
	w("[Service]")
	i.appUser(w)
	jobEnv(w, wk.Name, false)
	w("ExecStart=" + ExecLine(argv))
	i.appPaths(w)
	return []byte(b.String()), nil
}

// CronDropIns renders the drop-ins of one of the app's cron entries run
// as this instance: the service's (what runs, as whom) and the timer's
// (when). host is the Host of an internal request.
func (i *Instance) CronDropIns(c appconfig.Cron, host string) (service, timer []byte, err error) {
	if err := i.checkJobs(c.Name); err != nil {
		return nil, nil, err
	}
	if c.Schedule == nil {
		return nil, nil, fmt.Errorf("cron %s: no schedule", c.Name)
	}
	var argv []string
	switch {
	case c.Script != nil:
		if argv, err = i.scriptArgv(*c.Script); err != nil {
			return nil, nil, fmt.Errorf("cron %s: %w", c.Name, err)
		}
	case strings.HasPrefix(c.URL, "/") && !strings.ContainsFunc(c.URL+host, isSpaceOrControl):
		if host == "" {
			host = "localhost"
		}
		argv = []string{i.Layout.Agent, "node-job", "fetch", "--kind", i.Kind.String(), "--host", host, i.Name, c.URL}
	default:
		return nil, nil, fmt.Errorf("cron %s: %q is neither a script nor a URL path", c.Name, c.URL)
	}
	var sb strings.Builder
	w := func(s string) { sb.WriteString(s); sb.WriteByte('\n') }
	w(fmt.Sprintf("# toppcloud cron job %s of %s, run as instance %s; written by the agent, do not edit.", c.Name, i.App, i.Name))
	w("[Unit]")
	w("# At boot, a run missed while the node was down waits for the instance.")
	w("After=" + UnitName(i.Name))
	w("")
	w("[Service]")
	i.appUser(w)
	if c.Script == nil {
		w("# An internal request, as update_fetch's: the instance's token proves it.")
	}
	jobEnv(w, c.Name, c.Script == nil)
	w("ExecStart=" + ExecLine(argv))
	w(fmt.Sprintf("TimeoutStartSec=%d", int(c.Timeout.Seconds())))
	i.appPaths(w)

	var tb strings.Builder
	w = func(s string) { tb.WriteString(s); tb.WriteByte('\n') }
	w(fmt.Sprintf("# toppcloud schedule of cron job %s of %s: %s; written by the agent, do not edit.", c.Name, i.App, c.Schedule.Spec))
	w("[Timer]")
	for _, ev := range c.Schedule.Calendar() {
		w("OnCalendar=" + ev)
	}
	if c.RandomDelay > 0 {
		w(fmt.Sprintf("RandomizedDelaySec=%d", int(c.RandomDelay.Seconds())))
	}
	return []byte(sb.String()), []byte(tb.String()), nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// ExecLine writes argv as an ExecStart= value: words with anything but
// plain characters double-quoted with C escapes, and "%" and "$" doubled
// so that systemd neither expands specifiers nor variables in them.
func ExecLine(argv []string) string {
	words := make([]string, len(argv))
	for n, a := range argv {
		a = strings.ReplaceAll(strings.ReplaceAll(a, "%", "%%"), "$", "$$")
		if a != "" && !strings.ContainsFunc(a, needsQuote) {
			words[n] = a
			continue
		}
		var b strings.Builder
		b.WriteByte('"')
		for _, c := range []byte(a) {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < ' ' || c == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		words[n] = b.String()
	}
	return strings.Join(words, " ")
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("/._-+=:,@%$", r)
}
