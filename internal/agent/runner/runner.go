// Package runner makes one application instance run on a node: it renders
// the instance's systemd unit, environment file and php-fpm configuration,
// picks a port for command apps, waits until the new instance answers, and
// runs the app's update_fetch entries against it before it goes live.
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
// The process listens on Layout.Socket(INSTANCE), in a directory the unit
// creates for the instance, owned by the app user and group-owned by
// Caddy's group, mode 0750: Caddy and root can reach the socket, other app
// users cannot. A command app listens on 127.0.0.1:PORT instead, and a
// socket-activated proxy (proxy.go) gives it the same unix socket, so the
// router reaches every kind the same way (SocketUpstream).
//
// The order for the update flow, as root on the node: assets.Install and
// the template units (TemplateUnits) once per agent version; the app user
// (CreateUserArgv) and its directories on first deploy; then per
// instance: FreePort (command apps), Environment, Instance.Files and
// WriteFiles, WriteLinks of EnableLinks, Systemctl.DaemonReload and
// StartInstance, Instance.Health(Systemctl.Exited, Systemctl.Tail).Wait,
// Instance.RunUpdateFetch; hand Instance.SocketUpstream to the router. On
// failure, or when an old instance has drained (Drainer.Wait):
// Systemctl.StopInstance, then Instance.RemoveFiles.
package runner

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
	"github.com/toppcloud/toppcloud/internal/assets"
)

// Layout holds the node paths and programs instances use. DefaultLayout
// is where they are on every node (the README's "How it works" lists
// them); tests point it into a temporary directory.
type Layout struct {
	WWW     string // instance directories: /var/www
	Apps    string // per-app data: /var/lib/toppcloud/apps
	Logs    string // per-app logs: /var/log/toppcloud/apps
	Run     string // per-instance socket directories: /run/toppcloud
	Etc     string // per-instance env and php-fpm files: /etc/toppcloud/instances
	Units   string // systemd unit files: /etc/systemd/system
	Assets  string // assets.InstallDir
	Secret  string // the node secret: /var/lib/toppcloud/secret
	DataDir string // /var/lib/toppcloud, hidden from apps but for their own parts
	LogDir  string // /var/log/toppcloud, likewise

	Gunicorn string // /usr/bin/gunicorn
	PHPFPM   string // /usr/sbin/php-fpm8.2
	Python   string // /usr/bin/python3
	Install  string // /usr/bin/install
	// SocketProxyd forwards a command instance's socket to its port.
	SocketProxyd string // /lib/systemd/systemd-socket-proxyd

	// CaddyGroup is the front server's group, given access to instance
	// sockets.
	CaddyGroup string
}

// DefaultLayout returns the paths of a node.
func DefaultLayout() Layout {
	return Layout{
		WWW:          "/var/www",
		Apps:         "/var/lib/toppcloud/apps",
		Logs:         "/var/log/toppcloud/apps",
		Run:          "/run/toppcloud",
		Etc:          "/etc/toppcloud/instances",
		Units:        "/etc/systemd/system",
		Assets:       assets.InstallDir,
		Secret:       "/var/lib/toppcloud/secret",
		DataDir:      "/var/lib/toppcloud",
		LogDir:       "/var/log/toppcloud",
		Gunicorn:     "/usr/bin/gunicorn",
		PHPFPM:       "/usr/sbin/php-fpm8.2",
		Python:       "/usr/bin/python3",
		Install:      "/usr/bin/install",
		SocketProxyd: "/lib/systemd/systemd-socket-proxyd",
		CaddyGroup:   "caddy",
	}
}

// InstanceDir is /var/www/INSTANCE.
func (l Layout) InstanceDir(instance string) string { return filepath.Join(l.WWW, instance) }

// AppDir is the app's data directory, /var/lib/toppcloud/apps/APP.
func (l Layout) AppDir(app string) string { return filepath.Join(l.Apps, app) }

// LogDirOf is the app's log directory, $SILVER_LOGS.
func (l Layout) LogDirOf(app string) string { return filepath.Join(l.Logs, app) }

// TempDir is the app's $TEMP, emptied on every update.
func (l Layout) TempDir(app string) string { return filepath.Join(l.AppDir(app), "tmp") }

// ConfigDir is where an uploaded --config directory is kept.
func (l Layout) ConfigDir(app string) string { return filepath.Join(l.AppDir(app), "config") }

// SocketDir is the instance's own directory for its socket.
func (l Layout) SocketDir(instance string) string { return filepath.Join(l.Run, instance) }

// Socket is the unix socket a python, paste or php instance listens on.
func (l Layout) Socket(instance string) string {
	return filepath.Join(l.SocketDir(instance), SocketName)
}

// EtcDir holds the instance's env file and php-fpm config.
func (l Layout) EtcDir(instance string) string { return filepath.Join(l.Etc, instance) }

// EnvFilePath is the instance's environment file.
func (l Layout) EnvFilePath(instance string) string {
	return filepath.Join(l.EtcDir(instance), "env")
}

// FPMConfigPath is the php-fpm configuration of a php instance.
func (l Layout) FPMConfigPath(instance string) string {
	return filepath.Join(l.EtcDir(instance), "php-fpm.conf")
}

// TemplatePath is the template unit's file.
func (l Layout) TemplatePath() string { return filepath.Join(l.Units, TemplateUnitName) }

// DropInPath is the instance's drop-in.
func (l Layout) DropInPath(instance string) string {
	return filepath.Join(l.Units, UnitName(instance)+".d", "instance.conf")
}

// Names and defaults.
const (
	// TemplateUnitName is the systemd template every instance runs from.
	TemplateUnitName = "toppcloud-app@.service"
	// SocketName is the socket's file name in the instance's directory.
	SocketName = "app.sock"
	// UserPrefix starts every app user's name: app-blog. With
	// appconfig.MaxAppNameLen the name fits Linux's 32 characters, and it
	// starts with a letter as Debian's adduser wants.
	UserPrefix = "app-"
	// AppsGroup is the group of all app users; the node secret is
	// readable by it (root:toppcloud-apps 0640).
	AppsGroup = "toppcloud-apps"

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
func CreateUserArgv(l Layout, app string) []string {
	return []string{"useradd", "--system", "--user-group", "--groups", AppsGroup,
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

	Layout Layout
}

var instanceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_.-]+$`)

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
	if !instanceRE.MatchString(i.Name) || !strings.HasPrefix(i.Name, i.App+".") || strings.Contains(i.Name, "..") {
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
