// Package appruntime is the contract between toppcloud and a running
// application process, shared by the node's instance runner
// (internal/agent/runner) and the local development server
// (internal/devserver): the names of the variables an application and
// toppcloud's bootstrap (internal/assets/python, internal/assets/php)
// read, the headers the bootstrap trusts, the bootstrap's own variables for each kind of app,
// and how an update_fetch script is recognised as Python.
//
// It does no I/O but IsPythonScript's peek at a file, so a node and a
// developer's machine build the same environment from the same code.
package appruntime

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// The variables every application sees (the original's names).
const (
	EnvVersion           = "SILVER_VERSION"
	EnvInstanceName      = "SILVER_INSTANCE_NAME"
	EnvAppName           = "SILVER_APP_NAME"
	EnvCanonicalHostname = "SILVER_CANONICAL_HOSTNAME"
	EnvLogs              = "SILVER_LOGS"
	EnvAppConfig         = "SILVER_APP_CONFIG"
	EnvTemp              = "TEMP"
)

// The bootstrap's own variables (internal/assets/python/toppcloud_wsgi.py
// and internal/assets/php/prepend.php read them).
const (
	EnvInstanceDir   = "TOPPCLOUD_INSTANCE_DIR"
	EnvRunnerKind    = "TOPPCLOUD_RUNNER_KIND"
	EnvRunner        = "TOPPCLOUD_RUNNER"
	EnvRunnerName    = "TOPPCLOUD_RUNNER_NAME"
	EnvPHPRoot       = "TOPPCLOUD_PHP_ROOT"
	EnvSecretFile    = "TOPPCLOUD_SECRET_FILE"
	EnvKeysFile      = "TOPPCLOUD_KEYS_FILE"
	EnvInternalToken = "TOPPCLOUD_INTERNAL_TOKEN"
)

// Request headers the bootstrap reads.
const (
	// InternalHeader carries the instance's token on toppcloud's own
	// requests (update_fetch). The front server deletes client copies.
	InternalHeader = "X-Toppcloud-Internal"
	// MatchPathHeader is set by the front server to the mount path
	// ("/blog"); the WSGI bootstrap moves it into SCRIPT_NAME.
	MatchPathHeader = "X-Toppcloud-Match-Path"
)

// Process says what an application process runs; Env turns it into the
// bootstrap's variables.
type Process struct {
	// Kind says how it runs (appconfig.Runner.Kind).
	Kind appconfig.Kind
	// Dir is the application directory (an instance directory on a node).
	Dir string
	// Runner is the runner's path relative to Dir and RunnerName its
	// #name (appconfig.Runner).
	Runner     string
	RunnerName string
	// PHPRoot is appconfig.Config.PHPRoot (php only).
	PHPRoot string
	// SecretFile holds the secret silversupport.secret.get_secret reads.
	SecretFile string
	// Token marks toppcloud's internal requests; "" for none.
	Token string
	// Port is what a command app listens on, on 127.0.0.1.
	Port int
}

// Env returns the bootstrap's variables for p: where the app is, what to
// load, the secret file and token, and PORT and HOST for command apps.
func (p Process) Env() map[string]string {
	env := map[string]string{
		EnvInstanceDir: p.Dir,
		EnvSecretFile:  p.SecretFile,
	}
	if p.Token != "" {
		env[EnvInternalToken] = p.Token
	}
	switch p.Kind {
	case appconfig.KindPython, appconfig.KindPaste:
		env[EnvRunnerKind] = p.Kind.String()
		env[EnvRunner] = p.Runner
		if p.RunnerName != "" {
			env[EnvRunnerName] = p.RunnerName
		}
	case appconfig.KindPHP:
		env[EnvRunner] = p.Runner
		env[EnvPHPRoot] = p.PHPRoot
	case appconfig.KindCommand:
		env["PORT"] = strconv.Itoa(p.Port)
		env["HOST"] = "127.0.0.1"
	}
	return env
}

var (
	configKeyRE = regexp.MustCompile(`^CONFIG_[A-Z0-9_]+$`)
	envKeyRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// IsConfigKey reports whether k can be a service's variable: CONFIG_ and
// upper-case letters, digits and _.
func IsConfigKey(k string) bool { return configKeyRE.MatchString(k) }

// IsEnvName reports whether k is a valid variable name.
func IsEnvName(k string) bool { return envKeyRE.MatchString(k) }

// CheckEnv checks that every name is a valid variable name and that no
// value holds NUL or a line break (the node's environment file could not
// carry it, and an application would not expect it).
func CheckEnv(env map[string]string) error {
	for k, v := range env {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("variable name %q", k)
		}
		if strings.ContainsAny(v, "\x00\n\r") {
			return fmt.Errorf("variable %s: values cannot contain NUL or line breaks", k)
		}
	}
	return nil
}

// NewToken returns a fresh random token for Process.Token.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new internal token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// IsPythonScript reports whether an update_fetch script runs through the
// bootstrap's script runner, with the app's libraries on sys.path, as the
// original's call-script.py did: a *.py file, or one whose #! line names
// python. Any other script is executed directly.
func IsPythonScript(script string) bool {
	// app.ini's checks need the same rule for crons and workers, and
	// appconfig cannot import this package: it has the one copy.
	return appconfig.PythonScript(script)
}
