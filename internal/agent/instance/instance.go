// Package instance runs a node's application instances: it names them
// (NextName), keeps their records (Record), renders their systemd units,
// environment and php-fpm configuration, starts them and waits until they
// answer, runs the app's update_fetch entries against a new one before it
// goes live, and drains and stops the one it replaces. Node is the one
// type the agent's operations go through for all of that.
//
// Every instance runs as the systemd service toppcloud-app@INSTANCE: the
// template unit (TemplateUnit) holds the sandboxing all instances share,
// and a per-instance drop-in (Instance.DropIn) says who runs what:
//
//	/etc/systemd/system/toppcloud-app@.service                 TemplateUnit
//	/etc/systemd/system/toppcloud-app@INSTANCE.service.d/instance.conf
//	/etc/toppcloud/instances/INSTANCE/env                      EnvFile (root, 0600)
//	/etc/toppcloud/instances/INSTANCE/php-fpm.conf             FPMConfig (php only)
//
// The process listens on layout.Socket(INSTANCE), in a directory the unit
// creates for the instance, owned by the app user and group-owned by
// Caddy's group, mode 0750: Caddy and root can reach the socket, other app
// users cannot. A command app listens on 127.0.0.1:PORT instead, and a
// socket-activated proxy (proxy.go) gives it the same unix socket, so the
// router reaches every kind the same way (SocketUpstream).
//
// The app's jobs run in units of their own on the same sandbox
// (jobunits.go): its workers as toppcloud-worker@INSTANCE:NAME:N, its
// crons as toppcloud-cron@APP:NAME timers run as the live instance.
//
// An update, as root on the node: Node.NewName, then (after the blob
// store assembled the directory) Node.SaveRecord; Node.Prepare (the
// runtime, the app user, TEMP, environment, token, port), Node.Start
// (files, units, health checks), Instance.RunUpdateFetch,
// Node.StartWorkers; the router switches; Node.SetCrons and
// Node.StopWorkers move the jobs; Node.DrainAndStop the old one. A
// failure before the switch ends in Node.Remove of the new one.
package instance

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
)

// TemplatePath is the template unit's file.
func TemplatePath(l layout.Layout) string { return path.Join(l.Units, TemplateUnitName) }

// DropInPath is the instance's drop-in.
func DropInPath(l layout.Layout, instance string) string {
	return path.Join(l.Units, UnitName(instance)+".d", "instance.conf")
}

// EnvFilePath is the instance's environment file.
func EnvFilePath(l layout.Layout, instance string) string {
	return path.Join(l.InstanceEtcDir(instance), "env")
}

// FPMConfigPath is the php-fpm configuration of a php instance.
func FPMConfigPath(l layout.Layout, instance string) string {
	return path.Join(l.InstanceEtcDir(instance), "php-fpm.conf")
}

// Names and defaults.
const (
	// TemplateUnitName is the systemd template every instance runs from.
	TemplateUnitName = "toppcloud-app@.service"
	// UserPrefix starts every app user's name: app-blog. With
	// appconfig.MaxAppNameLen the name fits Linux's 32 characters, and it
	// starts with a letter as Debian's adduser wants.
	UserPrefix = "app-"

	// DefaultWorkers and DefaultThreads size gunicorn: threads keep a
	// slow client from holding a whole worker; two processes let one
	// crash or restart without a gap. Many apps share a small node.
	DefaultWorkers = 2
	DefaultThreads = 4
	// DefaultFPMChildren bounds a PHP instance's workers (pm = ondemand).
	DefaultFPMChildren = 5
	// DefaultGracefulTimeout is how long a stopping instance may take to
	// finish requests in flight (gunicorn --graceful-timeout, php-fpm
	// process_control_timeout); systemd kills it DefaultStopSlack later.
	DefaultGracefulTimeout = 30 * time.Second
	DefaultStopSlack       = 15 * time.Second

	// FPMPingPath answers the health check without running app code.
	FPMPingPath = "/.toppcloud-ping"
	// InternalHeader carries the instance's token on the agent's own
	// requests (update_fetch). The router must delete client copies too.
	InternalHeader = appruntime.InternalHeader
	// MatchPathHeader is set by the router to the mount path ("/blog");
	// the bootstrap moves it into SCRIPT_NAME.
	MatchPathHeader = appruntime.MatchPathHeader
)

// UnitName is the systemd service of an instance.
func UnitName(instance string) string { return "toppcloud-app@" + instance + ".service" }

// UserName is the Unix user an app's processes run as.
func UserName(app string) string { return UserPrefix + app }

// CreateUserArgv is the command that creates an app's user and group
// (run once, as root, before the app's first instance starts; exit status
// 9 means the user exists). The home is the app's data directory, which
// is not created here.
func CreateUserArgv(l layout.Layout, app string) []string {
	return []string{"useradd", "--system", "--user-group", "--groups", layout.AppsGroup,
		"--home-dir", l.AppDir(app), "--no-create-home", "--shell", "/usr/sbin/nologin",
		"--comment", "toppcloud app " + app, UserName(app)}
}

// Instance is one instance of an application, as the update flow knows it.
type Instance struct {
	// App is the app name, Name the instance name (APP.YYYY-MM-DD_NNN).
	App  string
	Name string
	// Kind says how it runs (appconfig.Runner.Kind).
	Kind appconfig.Kind
	// Runner is the runner's path relative to the instance directory and
	// RunnerName its #name (appconfig.Runner).
	Runner     string
	RunnerName string
	// PHPRoot is appconfig.Config.PHPRoot (php only).
	PHPRoot string
	// User runs the processes; "" means UserName(App).
	User string
	// Port is what a command app listens on (see FreePort).
	Port int
	// Env is the application's environment (Environment); the
	// bootstrap's own variables are added by ProcessEnv.
	Env map[string]string
	// Token marks the agent's internal requests (NewToken). It is kept in
	// the root-only env file and never shown to clients.
	Token string
	// Workers and Threads size gunicorn (0: the defaults); Workers is
	// php-fpm's max children for php.
	Workers int
	Threads int
	// WorkerJobs are the app.ini workers (worker.NAME) this instance
	// runs beside its web process (see jobunits.go).
	WorkerJobs []Worker

	Layout layout.Layout
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid instance")

// Validate checks the instance before anything is written: names that
// become paths and unit names, the runner, the port, the environment.
func (i *Instance) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("instance %q: %s: %w", i.Name, fmt.Sprintf(format, args...), ErrInvalid)
	}
	if err := appconfig.CheckAppName(i.App); err != nil {
		return bad("%v", err)
	}
	if app, ok := SplitName(i.Name); !ok || app != i.App {
		return bad("the instance name must be %s.SUFFIX (letters, digits, . _ -)", i.App)
	}
	if len(i.Layout.Socket(i.Name)) > 107 {
		return bad("socket path %s is too long for a unix socket", i.Layout.Socket(i.Name))
	}
	switch i.Kind {
	case appconfig.KindPython, appconfig.KindPaste, appconfig.KindCommand:
		if err := checkRel(i.Runner); err != nil {
			return bad("runner: %v", err)
		}
	case appconfig.KindPHP:
		if i.Runner != "" {
			if err := checkRel(i.Runner); err != nil {
				return bad("runner: %v", err)
			}
		}
		if i.PHPRoot != "" {
			if err := checkRel(i.PHPRoot); err != nil {
				return bad("php_root: %v", err)
			}
		}
	case appconfig.KindStatic:
	default:
		return bad("unknown kind %v", i.Kind)
	}
	if strings.ContainsAny(i.RunnerName, "\x00\n\r \t\"'\\") {
		return bad("runner name %q", i.RunnerName)
	}
	if i.Kind == appconfig.KindCommand && (i.Port < 1 || i.Port > 65535) {
		return bad("a command app needs a port (got %d)", i.Port)
	}
	if u := i.user(); !userRE.MatchString(u) || u == "root" || u == "www-mgr" {
		return bad("user %q cannot run an app", u)
	}
	if i.Kind != appconfig.KindStatic && !tokenRE.MatchString(i.Token) {
		return bad("the internal token must be NewToken's output")
	}
	if err := checkEnv(i.Env); err != nil {
		return bad("%v", err)
	}
	return nil
}

var (
	userRE  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	tokenRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func checkRel(p string) error {
	clean := filepath.ToSlash(filepath.Clean(p))
	switch {
	case p == "":
		return errors.New("empty")
	case filepath.IsAbs(p) || clean == ".." || strings.HasPrefix(clean, "../") || clean == ".":
		return fmt.Errorf("%q is not a path inside the application", p)
	case strings.ContainsAny(p, "\x00\n\r\"\\%$;"):
		return fmt.Errorf("%q contains characters a unit file cannot carry", p)
	}
	return nil
}

func (i *Instance) user() string {
	if i.User != "" {
		return i.User
	}
	return UserName(i.App)
}

// Dir is the instance directory.
func (i *Instance) Dir() string { return i.Layout.InstanceDir(i.Name) }

// SandboxInstanceDir is where a PHP instance's own processes also see
// their instance directory. Caddy names PHP scripts by this path
// (SCRIPT_FILENAME) because it does not change from one instance to the
// next, while each php-fpm, sandboxed, sees only its own instance there.
const SandboxInstanceDir = "/var/www/instance"

// SocketUpstream is the unix socket the router reaches the instance on,
// "unix//run/toppcloud/I/app.sock", for every kind that runs a process
// (a command app's is its proxy's); "" for a static app.
func (i *Instance) SocketUpstream() string {
	if !i.HasProcess() {
		return ""
	}
	return "unix/" + i.Layout.Socket(i.Name)
}

// Upstream is what the agent's own requests dial (health checks,
// update_fetch): "unix//run/toppcloud/I/app.sock", "127.0.0.1:PORT" for
// a command app (its process itself, not the proxy), or "" for a static
// app.
func (i *Instance) Upstream() string {
	switch i.Kind {
	case appconfig.KindStatic:
		return ""
	case appconfig.KindCommand:
		return fmt.Sprintf("127.0.0.1:%d", i.Port)
	}
	return "unix/" + i.Layout.Socket(i.Name)
}

// HasProcess reports whether the instance runs anything (static apps
// don't).
func (i *Instance) HasProcess() bool { return i.Kind != appconfig.KindStatic }

func (i *Instance) workers() int {
	if i.Workers > 0 {
		return i.Workers
	}
	if i.Kind == appconfig.KindPHP {
		return DefaultFPMChildren
	}
	return DefaultWorkers
}

func (i *Instance) threads() int {
	if i.Threads > 0 {
		return i.Threads
	}
	return DefaultThreads
}
