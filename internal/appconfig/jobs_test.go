package appconfig

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/ini"
)

const jobsBase = base + "runner = app.py\n"

func TestParse_Jobs(t *testing.T) {
	c := mustParse(t, jobsBase+
		"cron.tick = * * * * *  /cron/tick?x=1\n"+
		"cron.clean = @daily script:bin/clean.py --older-than '7 days'\n"+
		"worker.mailer = bin/mailer --queue mail\n"+
		"cron.clean.random_delay = 10m\n"+
		"cron.clean.timeout = 90\n"+
		"worker.mailer.replicas = 3\n"+
		"worker.resizer = bin/resize.py\n")
	if got := c.JobNames(); !slices.Equal(got, []string{"tick", "clean", "mailer", "resizer"}) {
		t.Errorf("JobNames = %q", got)
	}
	tick, clean := c.Crons[0], c.Crons[1]
	if tick.URL != "/cron/tick?x=1" || tick.Script != nil || tick.Line != 4 || tick.Timeout != DefaultCronTimeout || tick.RandomDelay != 0 ||
		!slices.Equal(tick.Schedule.Calendar(), []string{"*-*-* *:*:00"}) || tick.Target() != "/cron/tick?x=1" {
		t.Errorf("tick = %+v", tick)
	}
	if want := (Command{Path: "bin/clean.py", Args: []string{"--older-than", "7 days"}, Line: 5}); clean.Script == nil || !reflect.DeepEqual(*clean.Script, want) ||
		clean.RandomDelay != 10*time.Minute || clean.Timeout != 90*time.Second || clean.Schedule.Spec != "@daily" {
		t.Errorf("clean = %+v (script %+v)", clean, clean.Script)
	}
	if got := clean.Target(); got != "script:bin/clean.py --older-than '7 days'" {
		t.Errorf("clean.Target() = %q", got)
	}
	want := []Worker{
		{Name: "mailer", Command: Command{Path: "bin/mailer", Args: []string{"--queue", "mail"}, Line: 6}, Replicas: 3, Line: 6},
		{Name: "resizer", Command: Command{Path: "bin/resize.py", Args: []string{}, Line: 10}, Replicas: 1, Line: 10},
	}
	if !reflect.DeepEqual(c.Workers, want) {
		t.Errorf("Workers = %+v", c.Workers)
	}
	if cr, w := c.Job("mailer"); cr != nil || w == nil || w.Name != "mailer" {
		t.Errorf("Job(mailer) = %v, %v", cr, w)
	}
	if cr, w := c.Job("nope"); cr != nil || w != nil {
		t.Errorf("Job(nope) = %v, %v", cr, w)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
}

func TestParse_JobErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"bad schedule", jobsBase + "cron.x = 61 * * * * /x\n", []string{`app.ini:4: cron.x: "61 * * * *": minute: "61" is not a number from 0 to 59`}},
		{"short schedule", jobsBase + "cron.x = * * /x\n", []string{`app.ini:4: cron.x: "* * /x": a schedule is five fields, MIN HOUR DOM MON DOW (such as 30 2 * * *), or @hourly, @daily, @weekly, @monthly, @yearly`}},
		{"never", jobsBase + "\n\ncron.x = 0 0 31 2 * /x\n", []string{`app.ini:6: cron.x: "0 0 31 2 *" never runs: none of its months has such a day`}},
		{"no target", jobsBase + "cron.x = @daily\n", []string{`app.ini:4: cron.x: "@daily": say what runs after the schedule: a URL path (/cron/clean) or script:PATH ARGS`}},
		{"full url", jobsBase + "cron.x = @daily http://example.com/x\n", []string{`app.ini:4: cron.x: "http://example.com/x": after the schedule comes a URL path starting with / (such as /cron/clean) or script:PATH ARGS`}},
		{"space in url", jobsBase + "cron.x = @daily /a b\n", []string{`app.ini:4: cron.x: "/a b": a URL path cannot contain spaces (write %20)`}},
		{"script outside", jobsBase + "cron.x = @daily script:../x\n", []string{`app.ini:4: cron.x: path "../x" points outside the application directory`}},
		{"empty worker", jobsBase + "worker.w =\n", []string{`app.ini:4: worker.w: "" names no script`}},
		{"absolute worker", jobsBase + "worker.w = /usr/bin/yes\n", []string{`app.ini:4: worker.w: path "/usr/bin/yes" must be relative to the application directory`}},
		{"bad name", jobsBase + "cron.a+b = @daily /x\n", []string{`app.ini:4: cron.a+b: job name "a+b" may only use lower-case letters, digits, - and _, and must start with a letter or digit`}},
		{"empty name", jobsBase + "worker. = x\n", []string{`app.ini:4: worker.: the job name is empty`}},
		{"long name", jobsBase + "worker." + strings.Repeat("w", 33) + " = x\n", []string{`app.ini:4: worker.` + strings.Repeat("w", 33) + `: job name "` + strings.Repeat("w", 33) + `" is longer than 32 characters`}},
		{"shared name", jobsBase + "cron.x = @daily /x\nworker.x = bin/x\n", []string{`app.ini:5: worker.x: x is also the name of cron.x on line 4: a cron and a worker cannot share a name (logs --job NAME names one)`}},
		{"two lines", jobsBase + "cron.x = @daily /x\n  @hourly /y\n", []string{`app.ini:4: cron.x: one entry per key: write each on a line of its own, under a name of its own`}},
		{"option without entry", jobsBase + "cron.x.timeout = 5m\n", []string{`app.ini:4: cron.x.timeout: there is no cron.x entry for this setting`}},
		{"option of the other kind", jobsBase + "worker.x = bin/x\ncron.x.timeout = 5m\n", []string{`app.ini:5: cron.x.timeout: there is no cron.x entry for this setting`}},
		{"unknown cron option", jobsBase + "cron.x = @daily /x\ncron.x.retries = 3\n", []string{`app.ini:5: cron.x.retries: unknown setting "retries" of a cron (there are random_delay and timeout)`}},
		{"unknown worker option", jobsBase + "worker.x = bin/x\nworker.x.timeout = 3\n", []string{`app.ini:5: worker.x.timeout: unknown setting "timeout" of a worker (there are replicas)`}},
		{"bad replicas", jobsBase + "worker.x = bin/x\nworker.x.replicas = 0\n", []string{`app.ini:5: worker.x.replicas: "0": replicas is a number from 1 to 100`}},
		{"many replicas", jobsBase + "worker.x = bin/x\nworker.x.replicas = 101\n", []string{`app.ini:5: worker.x.replicas: "101": replicas is a number from 1 to 100`}},
		{"bad delay", jobsBase + "cron.x = @daily /x\ncron.x.random_delay = soon\n", []string{`app.ini:5: cron.x.random_delay: "soon" is not a duration (such as 30s, 5m or 1h30m)`}},
		{"long delay", jobsBase + "cron.x = @daily /x\ncron.x.random_delay = 25h\n", []string{`app.ini:5: cron.x.random_delay: 25h is out of range (0s to 24h0m0s)`}},
		{"zero timeout", jobsBase + "cron.x = @daily /x\ncron.x.timeout = 0\n", []string{`app.ini:5: cron.x.timeout: 0 is out of range (1s to 168h0m0s)`}},
		{"fractional", jobsBase + "cron.x = @daily /x\ncron.x.timeout = 1.5s\n", []string{`app.ini:5: cron.x.timeout: 1.5s: give whole seconds`}},
		{"static site", base + "cron.x = @daily script:bin/x\n", []string{`app.ini:3: cron.x: a static site runs no process, so it has no cron or worker entries: give it a runner`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("app.ini", []byte(tc.text))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			var ie *ini.Error
			if !errors.As(err, &ie) {
				t.Errorf("error %v is not an *ini.Error", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestValidate_Jobs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		files map[string]string
		want  []string
	}{
		{"present", "cron.a = @daily script:bin/a\ncron.b = @daily script:bin/b.py\ncron.c = @daily /c\nworker.w = bin/w\nworker.p = bin/p\n",
			map[string]string{"bin/a": "+x", "bin/b.py": "print(1)\n", "bin/w": "+x", "bin/p": "#!/usr/bin/env python3\n"}, nil},
		{"missing", "cron.a = @daily script:bin/a\nworker.w = bin/w --x\n", nil, []string{
			`app.ini:4: cron.a: file "bin/a" not found in DIR`,
			`app.ini:5: worker.w: file "bin/w" not found in DIR`}},
		{"not executable", "cron.a = @daily script:bin/a\nworker.w = bin/w\n", map[string]string{"bin/a": "#!/bin/sh\n", "bin/w": "data"}, []string{
			`app.ini:4: cron.a: "bin/a" is not executable: make it executable (chmod +x), or make it a Python script (.py, or a #! line naming python)`,
			`app.ini:5: worker.w: "bin/w" is not executable: make it executable (chmod +x), or make it a Python script (.py, or a #! line naming python)`}},
		{"a directory", "worker.w = bin\n", map[string]string{"bin/": ""}, []string{`app.ini:4: worker.w: "bin" in DIR is not a regular file`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"app.py": ""}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := app(t, files)
			c := mustParse(t, jobsBase+tc.extra)
			var got []string
			if err := c.Validate(dir); err != nil {
				got = strings.Split(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Validate errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
