package appconfig

import (
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// Keys are the [production] keys Parse reads, as they are written, with
// NAME for a name the app chooses (service.NAME: the service's;
// cron.NAME and worker.NAME: the job's, and what follows it a setting of
// that job). Parse lets through no other key (see known), so a key it
// learns must be added here; toppcloud init's app.ini is tested to show
// every one (internal/skeleton).
var Keys = []string{
	"app_name",
	"runner",
	"platform",
	"php_root",
	"default_location",
	"update_fetch",
	"service.NAME",
	"packages",
	"package_install_script",
	"after_install_script",
	"config.required",
	"config.default",
	"config.template",
	"config.checker",
	"cron.NAME",
	"cron.NAME.random_delay",
	"cron.NAME.timeout",
	"worker.NAME",
	"worker.NAME.replicas",
	"limit.memory",
	"limit.tasks",
	"limit.cpu_weight",
	"limit.file_size",
}

// legacyKeys are the original's keys Parse still reads, each with a
// warning that says what to write instead.
var legacyKeys = []string{"default_host", "default_hostname", "version"}

// keyPattern is name as Keys writes it: in a family of named entries
// (service, cron, worker) the entry's name becomes NAME, and what
// follows it is a setting if the family has settings.
func keyPattern(name string) string {
	family, rest, ok := strings.Cut(name, ".")
	if !ok || !slices.Contains(Keys, family+".NAME") {
		return name
	}
	if _, setting, ok := strings.Cut(rest, "."); ok && len(keysWithPrefix(family+".NAME.")) > 0 {
		return family + ".NAME." + setting
	}
	return family + ".NAME"
}

// keysWithPrefix lists the Keys starting with prefix, without it.
func keysWithPrefix(prefix string) []string {
	var out []string
	for _, k := range Keys {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// known reports whether Parse reads key k. An unknown key is warned
// about and ignored, as the original did, except an unknown setting of
// a cron or worker, which is refused: a misspelt timeout must not leave
// a job running without one.
func (p *parse) known(k *ini.Key) bool {
	pattern := keyPattern(k.Name)
	if slices.Contains(Keys, pattern) || slices.Contains(legacyKeys, k.Name) {
		return true
	}
	family, _, _ := strings.Cut(pattern, ".")
	if setting, ok := strings.CutPrefix(pattern, family+".NAME."); ok {
		p.fail(k.Errorf("unknown setting %q of a %s (there are %s)", setting, family, joinAnd(keysWithPrefix(family+".NAME."))))
		return false
	}
	if siblings := keysWithPrefix(family + "."); family != pattern && len(siblings) > 0 {
		for i, s := range siblings {
			siblings[i] = family + "." + s
		}
		p.warn(k, "unknown key, ignored (the %s keys are %s)", family, joinAnd(siblings))
		return false
	}
	p.warn(k, "unknown key, ignored")
	return false
}

// joinAnd writes a list as prose: "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
