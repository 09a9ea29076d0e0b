package appconfig

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/ini"
	"github.com/toppcloud/toppcloud/internal/schedule"
)

// Jobs: work an app does outside requests, in [production] beside its
// other keys:
//
//	cron.NAME = MIN HOUR DOM MON DOW  /path      an internal request to the live instance
//	cron.NAME = @daily  script:bin/clean --old   a script in the app's environment
//	cron.NAME.random_delay = 5m                  start up to 5 minutes late, at random
//	cron.NAME.timeout = 2h                       end a run that takes longer (default 1h)
//	worker.NAME = bin/worker --queue mail        a long-running process beside the web one
//	worker.NAME.replicas = 2                     copies across a site's nodes (default 1)
//
// (The right-hand column explains; in app.ini a comment after a value
// would be part of it.)

// Job defaults and bounds.
const (
	DefaultCronTimeout = time.Hour
	MaxCronTimeout     = 7 * 24 * time.Hour
	MaxRandomDelay     = 24 * time.Hour
	MaxReplicas        = 100
	// MaxJobNameLen keeps unit names short (they hold the instance name
	// too).
	MaxJobNameLen = 32
)

// Cron is a cron.NAME entry: something that runs on a schedule as the
// app's live instance.
type Cron struct {
	Name     string
	Schedule *schedule.Schedule
	// URL is the path, with an optional query, requested from the live
	// instance as an internal request (as update_fetch's are); "" for a
	// script.
	URL string
	// Script is set for a "script:PATH ARGS" entry.
	Script *Command
	// RandomDelay delays each run by up to this long, chosen at random
	// (cron.NAME.random_delay), so that many nodes or apps do not all
	// start at the same second.
	RandomDelay time.Duration
	// Timeout ends a run that takes longer (cron.NAME.timeout).
	Timeout time.Duration
	Line    int
}

// Target is the entry as written after the schedule: the URL path or
// "script:PATH ARGS".
func (c Cron) Target() string {
	if c.Script != nil {
		return "script:" + c.Script.String()
	}
	return c.URL
}

// Worker is a worker.NAME entry: a long-running process of the app beside
// its web process, restarted when it fails.
type Worker struct {
	Name    string
	Command Command
	// Replicas is how many copies a site (several nodes) runs in all
	// (worker.NAME.replicas); a node of its own runs one.
	Replicas int
	Line     int
}

// String is the command line: the path and its arguments, quoted where
// needed.
func (c Command) String() string {
	words := []string{c.Path}
	for _, a := range c.Args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// Job returns the cron or worker called name, if the app has one.
func (c *Config) Job(name string) (cron *Cron, worker *Worker) {
	for i := range c.Crons {
		if c.Crons[i].Name == name {
			return &c.Crons[i], nil
		}
	}
	for i := range c.Workers {
		if c.Workers[i].Name == name {
			return nil, &c.Workers[i]
		}
	}
	return nil, nil
}

// JobNames lists the app's crons and workers by name, crons first.
func (c *Config) JobNames() []string {
	var out []string
	for _, j := range c.Crons {
		out = append(out, j.Name)
	}
	for _, w := range c.Workers {
		out = append(out, w.Name)
	}
	return out
}

var jobNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// CheckJobName reports whether name can name a cron or worker: it becomes
// part of systemd unit names.
func CheckJobName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the job name is empty")
	case len(name) > MaxJobNameLen:
		return fmt.Errorf("job name %q is longer than %d characters", name, MaxJobNameLen)
	case !jobNameRE.MatchString(name):
		return fmt.Errorf("job name %q may only use lower-case letters, digits, - and _, and must start with a letter or digit", name)
	}
	return nil
}

// jobKeys gathers cron.* and worker.* keys while the section is read;
// finish checks and assembles them once every key is known (an option
// may come before its entry).
type jobKeys struct {
	entries []*ini.Key
	options []*ini.Key
}

// add takes a cron.* or worker.* key.
func (j *jobKeys) add(k *ini.Key) {
	_, rest, _ := strings.Cut(k.Name, ".")
	if strings.Contains(rest, ".") {
		j.options = append(j.options, k)
	} else {
		j.entries = append(j.entries, k)
	}
}

func (p *parse) jobs(j *jobKeys) {
	c := p.c
	if len(j.entries)+len(j.options) == 0 {
		return
	}
	seen := map[string]*ini.Key{}
	for _, k := range j.entries {
		kind, name, _ := strings.Cut(k.Name, ".")
		if err := CheckJobName(name); err != nil {
			p.fail(k.Errorf("%v", err))
			continue
		}
		if other, ok := seen[name]; ok {
			p.fail(k.Errorf("%s is also the name of %s on line %d: a cron and a worker cannot share a name (logs --job NAME names one)", name, other.Name, other.Line))
			continue
		}
		seen[name] = k
		if strings.ContainsRune(k.Value, '\n') {
			p.fail(k.Errorf("one entry per key: write each on a line of its own, under a name of its own"))
			continue
		}
		switch kind {
		case "cron":
			p.cron(k, name)
		case "worker":
			if cmd, ok := p.command(k, ini.Line{Text: k.Value, Num: k.Line}, k.Value); ok {
				c.Workers = append(c.Workers, Worker{Name: name, Command: cmd, Replicas: 1, Line: k.Line})
			}
		}
	}
	for _, k := range j.options {
		p.jobOption(k, seen)
	}
	if c.Runner.Kind == KindStatic && len(j.entries) > 0 {
		k := j.entries[0]
		p.fail(k.Errorf("a static site runs no process, so it has no cron or worker entries: give it a runner"))
	}
}

func (p *parse) cron(k *ini.Key, name string) {
	spec, target, err := schedule.Split(k.Value)
	if err != nil {
		p.fail(k.Errorf("%v", err))
		return
	}
	sched, err := schedule.Parse(spec)
	if err != nil {
		p.fail(k.Errorf("%v", err))
		return
	}
	cr := Cron{Name: name, Schedule: sched, Timeout: DefaultCronTimeout, Line: k.Line}
	switch rest, isScript := strings.CutPrefix(target, "script:"); {
	case target == "":
		p.fail(k.Errorf("%q: say what runs after the schedule: a URL path (/cron/clean) or script:PATH ARGS", k.Value))
		return
	case isScript:
		cmd, ok := p.command(k, ini.Line{Text: target, Num: k.Line}, rest)
		if !ok {
			return
		}
		cr.Script = &cmd
	case !strings.HasPrefix(target, "/"):
		p.fail(k.Errorf("%q: after the schedule comes a URL path starting with / (such as /cron/clean) or script:PATH ARGS", target))
		return
	case strings.ContainsFunc(target, isSpaceOrControl):
		p.fail(k.Errorf("%q: a URL path cannot contain spaces (write %%20)", target))
		return
	default:
		cr.URL = target
	}
	p.c.Crons = append(p.c.Crons, cr)
}

func (p *parse) jobOption(k *ini.Key, entries map[string]*ini.Key) {
	kind, rest, _ := strings.Cut(k.Name, ".")
	name, opt, _ := strings.Cut(rest, ".")
	entry, ok := entries[name]
	if !ok || !strings.HasPrefix(entry.Name, kind+".") {
		p.fail(k.Errorf("there is no %s.%s entry for this setting", kind, name))
		return
	}
	cron, worker := p.c.Job(name)
	switch {
	case kind == "cron" && opt == "random_delay":
		d, err := parseDuration(k.Value, 0, MaxRandomDelay)
		if err != nil {
			p.fail(k.Errorf("%v", err))
		} else if cron != nil {
			cron.RandomDelay = d
		}
	case kind == "cron" && opt == "timeout":
		d, err := parseDuration(k.Value, time.Second, MaxCronTimeout)
		if err != nil {
			p.fail(k.Errorf("%v", err))
		} else if cron != nil {
			cron.Timeout = d
		}
	case kind == "worker" && opt == "replicas":
		n, err := strconv.Atoi(k.Value)
		if err != nil || n < 1 || n > MaxReplicas {
			p.fail(k.Errorf("%q: replicas is a number from 1 to %d", k.Value, MaxReplicas))
		} else if worker != nil {
			worker.Replicas = n
		}
	default:
		// known refuses settings Keys does not list.
		p.fail(k.Errorf("unknown setting %q of a %s", opt, kind))
	}
}

// parseDuration reads "90s", "5m", "1h30m" or a number of seconds.
func parseDuration(s string, min, max time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration (such as 30s, 5m or 1h30m)", s)
	case d < min || d > max:
		return 0, fmt.Errorf("%s is out of range (%s to %s)", s, min, max)
	case d%time.Second != 0:
		return 0, fmt.Errorf("%s: give whole seconds", s)
	}
	return d, nil
}

// PythonScript reports whether the file at path is a Python script: its
// name ends in .py or its #! line names python. Such scripts run through
// the bootstrap's script runner, with the app's libraries on sys.path.
func PythonScript(path string) bool {
	if strings.HasSuffix(path, ".py") {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return strings.HasPrefix(line, "#!") && strings.Contains(line, "python")
}
