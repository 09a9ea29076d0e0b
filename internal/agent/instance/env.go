package instance

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
	"github.com/toppcloud/toppcloud/internal/version"
)

// The variables every application sees, and the bootstrap's own
// (appruntime, which the local development server shares, defines them).
const (
	EnvVersion           = appruntime.EnvVersion
	EnvInstanceName      = appruntime.EnvInstanceName
	EnvAppName           = appruntime.EnvAppName
	EnvCanonicalHostname = appruntime.EnvCanonicalHostname
	EnvLogs              = appruntime.EnvLogs
	EnvAppConfig         = appruntime.EnvAppConfig
	EnvTemp              = appruntime.EnvTemp

	EnvInstanceDir   = appruntime.EnvInstanceDir
	EnvRunnerKind    = appruntime.EnvRunnerKind
	EnvRunner        = appruntime.EnvRunner
	EnvRunnerName    = appruntime.EnvRunnerName
	EnvPHPRoot       = appruntime.EnvPHPRoot
	EnvSecretFile    = appruntime.EnvSecretFile
	EnvInternalToken = appruntime.EnvInternalToken
)

// EnvInput is what an application's environment is made of.
type EnvInput struct {
	App      string
	Instance string
	// Locations the instance serves ([http[s]://]HOST[:PORT][/PATH]);
	// the canonical hostname is the shortest host among them, as the
	// original chose it.
	Locations []string
	// ConfigUploaded is true when the app has an uploaded --config
	// directory (Layout.ConfigDir); otherwise ConfigDefault (the app.ini's
	// config.default, relative to the instance) is used if set.
	ConfigUploaded bool
	ConfigDefault  string
	// Services are the CONFIG_* variables the app's services give.
	Services map[string]string
	// SilverVersion overrides version.SilverVersion(); it must start with
	// "silverlining/".
	SilverVersion string
}

// Environment returns the variables an application instance sees. It
// does no I/O: the caller says whether an uploaded config exists.
// SILVER_MATCH_PATH is not here: it is per request (router header).
func Environment(l layout.Layout, in EnvInput) (map[string]string, error) {
	if err := appconfig.CheckAppName(in.App); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if !strings.HasPrefix(in.Instance, in.App+".") {
		return nil, fmt.Errorf("environment: instance %q is not an instance of %q", in.Instance, in.App)
	}
	sv := in.SilverVersion
	if sv == "" {
		sv = version.SilverVersion()
	}
	if !strings.HasPrefix(sv, "silverlining/") {
		return nil, fmt.Errorf("environment: SILVER_VERSION %q must start with silverlining/ (applications test for it)", sv)
	}
	env := map[string]string{
		EnvVersion:      sv,
		EnvInstanceName: in.Instance,
		EnvAppName:      in.App,
		EnvLogs:         l.AppLogDir(in.App),
		EnvTemp:         l.TempDir(in.App),
	}
	if h := CanonicalHostname(in.Locations); h != "" {
		env[EnvCanonicalHostname] = h
	}
	switch {
	case in.ConfigUploaded:
		env[EnvAppConfig] = l.ConfigDir(in.App)
	case in.ConfigDefault != "":
		if err := checkRel(in.ConfigDefault); err != nil {
			return nil, fmt.Errorf("environment: config.default: %w", err)
		}
		env[EnvAppConfig] = path.Join(l.InstanceDir(in.Instance), in.ConfigDefault)
	}
	for k, v := range in.Services {
		if !appruntime.IsConfigKey(k) {
			return nil, fmt.Errorf("environment: service variable %q: names are CONFIG_ and upper-case letters, digits, _", k)
		}
		env[k] = v
	}
	if err := checkEnv(env); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	return env, nil
}

func checkEnv(env map[string]string) error { return appruntime.CheckEnv(env) }

// CanonicalHostname picks the shortest host of the locations (a leading
// "." of a wildcard removed, ports dropped, "*" ignored; ties go to the
// alphabetically first), or "" when there is none.
func CanonicalHostname(locations []string) string {
	var best string
	for _, loc := range locations {
		h := locationHost(loc)
		if h == "" || h == "*" {
			continue
		}
		if best == "" || len(h) < len(best) || len(h) == len(best) && h < best {
			best = h
		}
	}
	return best
}

func locationHost(loc string) string {
	if i := strings.Index(loc, "://"); i >= 0 {
		loc = loc[i+3:]
	}
	if i := strings.IndexByte(loc, '/'); i >= 0 {
		loc = loc[:i]
	}
	if strings.HasPrefix(loc, "[") {
		if i := strings.IndexByte(loc, ']'); i >= 0 {
			return strings.ToLower(loc[:i+1])
		}
		return ""
	}
	if i := strings.LastIndexByte(loc, ':'); i >= 0 {
		loc = loc[:i]
	}
	return strings.ToLower(strings.TrimPrefix(loc, "."))
}

// NewToken returns a fresh random token for Instance.Token.
func NewToken() (string, error) { return appruntime.NewToken() }

// ProcessEnv is the instance process's whole environment: the
// application's (Env) plus what the bootstrap needs, PORT and HOST for
// command apps, and a UTF-8 locale.
func (i *Instance) ProcessEnv() map[string]string {
	env := make(map[string]string, len(i.Env)+10)
	for k, v := range i.Env {
		env[k] = v
	}
	env["LANG"] = "C.UTF-8"
	maps.Copy(env, appruntime.Process{
		Kind: i.Kind, Dir: i.Dir(), Runner: i.Runner, RunnerName: i.RunnerName, PHPRoot: i.PHPRoot,
		SecretFile: i.Layout.AppSecret(i.App), Token: i.Token, Port: i.Port,
	}.Env())
	return env
}

// EnvFile renders env as a systemd EnvironmentFile: one KEY="VALUE" per
// line, sorted, with \ " $ and ` escaped inside the double quotes (systemd
// unescapes exactly those). The file holds the internal token and the
// services' passwords: it is written root-only (0600) and systemd reads it
// before dropping privileges.
func EnvFile(env map[string]string) ([]byte, error) {
	if err := checkEnv(env); err != nil {
		return nil, fmt.Errorf("environment file: %w", err)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("# toppcloud instance environment; written by the agent, do not edit.\n")
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(envQuoter.Replace(env[k]))
		b.WriteString("\"\n")
	}
	return []byte(b.String()), nil
}

var envQuoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")

// ParseEnvFile reads what EnvFile wrote (and the subset of systemd's
// syntax it uses), for the agent to run update_fetch scripts with the
// same environment as the instance.
func ParseEnvFile(data []byte) (map[string]string, error) {
	env := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !appruntime.IsEnvName(k) {
			return nil, fmt.Errorf("environment file line %d: not KEY=VALUE", n+1)
		}
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("environment file line %d: value is not double-quoted", n+1)
		}
		val, err := unquoteEnv(v[1 : len(v)-1])
		if err != nil {
			return nil, fmt.Errorf("environment file line %d: %w", n+1, err)
		}
		env[k] = val
	}
	return env, nil
}

func unquoteEnv(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0:
			b.WriteByte(s[i+1])
			i++
		case c == '"':
			return "", errors.New("unescaped quote")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
