package appconfig

import (
	"strings"
	"testing"
)

// TestKeys checks Keys against the parser: every key in it is read (no
// "unknown key" warning, no error), with the name of a named entry in
// place of NAME. The other direction holds by construction: known lets
// nothing else through.
func TestKeys(t *testing.T) {
	examples := map[string]string{
		"app_name":               "blog",
		"runner":                 "main.py",
		"platform":               "python",
		"php_root":               "web",
		"default_location":       "blog.example.com",
		"update_fetch":           "/setup",
		"service.NAME":           "",
		"packages":               "python3-django",
		"package_install_script": "bin/before-packages",
		"after_install_script":   "bin/after-services",
		"config.required":        "true",
		"config.default":         "config",
		"config.template":        "config-template",
		"config.checker":         "blog.config:check",
		"cron.NAME":              "@daily /cron/clean",
		"cron.NAME.random_delay": "5m",
		"cron.NAME.timeout":      "2h",
		"worker.NAME":            "bin/worker",
		"worker.NAME.replicas":   "2",
		"limit.memory":           "512M",
		"limit.tasks":            "256",
		"limit.cpu_weight":       "50",
		"limit.file_size":        "1G",
	}
	seen := map[string]bool{}
	text := "[production]\n"
	for _, key := range Keys {
		if seen[key] {
			t.Errorf("%s is in Keys twice", key)
		}
		seen[key] = true
		v, ok := examples[key]
		if !ok {
			t.Errorf("no example value for %s: add one here", key)
			continue
		}
		family, _, _ := strings.Cut(key, ".")
		text += strings.Replace(key, "NAME", family+"1", 1) + " = " + v + "\n"
	}
	for key := range examples {
		if !seen[key] {
			t.Errorf("example for %s, which is not in Keys", key)
		}
	}
	c, err := Parse("app.ini", []byte(text))
	if err != nil {
		t.Fatalf("every key of Keys:\n%s\n%v", text, err)
	}
	for _, w := range c.Warnings {
		t.Errorf("warning: %s", w)
	}
	if len(c.Crons) != 1 || c.Crons[0].Timeout.String() != "2h0m0s" || len(c.Workers) != 1 || c.Workers[0].Replicas != 2 || c.Limits.TasksMax != 256 {
		t.Errorf("settings not applied: crons %+v workers %+v limits %+v", c.Crons, c.Workers, c.Limits)
	}
}

func TestKeyPattern(t *testing.T) {
	for name, want := range map[string]string{
		"app_name":          "app_name",
		"service.postgis":   "service.NAME",
		"service.a.b":       "service.NAME", // service has no settings: p.service refuses the name
		"cron.clean":        "cron.NAME",
		"cron.clean.tmeout": "cron.NAME.tmeout",
		"worker.w.replicas": "worker.NAME.replicas",
		"limit.memory":      "limit.memory",
		"config.x.y":        "config.x.y",
	} {
		if got := keyPattern(name); got != want {
			t.Errorf("keyPattern(%q) = %q, want %q", name, got, want)
		}
	}
}
