package instance

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/assets"
)

// Why a template plus drop-ins rather than one unit file per instance:
// every instance is `toppcloud-app@INSTANCE`, one name to find in systemctl
// and journalctl; the
// sandboxing lives once, in the template, so setup-node can tighten it for
// every app on the node by rewriting one file; and the drop-in holds only
// what differs (user, command, paths), removed with the instance.

// sandbox is what every unit of an instance runs inside (the app's own
// processes, a command app's proxy): one list, so the units cannot drift
// apart. What a unit may see of the file system is its own business.
var sandbox = []string{
	"NoNewPrivileges=yes",
	"CapabilityBoundingSet=",
	"ProtectSystem=strict",
	"ProtectHome=yes",
	"PrivateTmp=yes",
	"PrivateDevices=yes",
	"ProtectKernelTunables=yes",
	"ProtectKernelModules=yes",
	"ProtectKernelLogs=yes",
	"ProtectControlGroups=yes",
	"ProtectClock=yes",
	"ProtectHostname=yes",
	"RestrictSUIDSGID=yes",
	"RestrictRealtime=yes",
	"RestrictNamespaces=yes",
	"LockPersonality=yes",
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
	// No FIFOs (nor device nodes): Caddy serves the writable root, and
	// opening a FIFO an app planted there blocks a Caddy thread until a
	// writer comes; enough requests for it would take every app's front
	// down. Apps make pipes with pipe(2), which this leaves alone.
	"SystemCallFilter=~mknod mknodat",
	"SystemCallErrorNumber=EPERM",
	// The filter is per architecture: 32-bit calls would get round it.
	"SystemCallArchitectures=native",
}

// TemplateUnit renders toppcloud-app@.service. It has no ExecStart: an
// instance without its drop-in cannot start.
func TemplateUnit(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud application instance; written by the agent, do not edit.")
	w("# Each instance's drop-in (toppcloud-app@INSTANCE.service.d/instance.conf)")
	w("# sets its user, command and the directories it may use.")
	w("[Unit]")
	w("Description=toppcloud application instance %i")
	w("After=network.target")
	w("# A crash loop stops after 5 starts in 60s instead of spinning.")
	w("StartLimitIntervalSec=60")
	w("StartLimitBurst=5")
	w("")
	w("[Service]")
	w("Restart=on-failure")
	w("RestartSec=1")
	w("StandardOutput=journal")
	w("StandardError=journal")
	w("# The main process stops the others gracefully; whatever is left when")
	w("# TimeoutStopSec runs out is killed.")
	w("KillMode=mixed")
	appSandbox(w, l)
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return []byte(b.String())
}

// appSandbox writes the [Service] lines of every template whose units
// run the app's own code (the web process, workers, cron runs): its
// umask, the sandbox, and the node's files it must not see. One place,
// so that they cannot drift apart.
func appSandbox(w func(string), l layout.Layout) {
	w("UMask=0027")
	for _, d := range sandbox {
		w(d)
	}
	w("# Other apps' instances, data and logs, the node's state and backups are")
	w("# hidden; the drop-in binds back this instance's own parts.")
	w(hidden(l))
}

// hidden is what the template's TemporaryFileSystem= hides: other apps'
// instances, data and logs, the node's state and backups. Each unit binds
// back its own instance's parts (view).
func hidden(l layout.Layout) string {
	return fmt.Sprintf("TemporaryFileSystem=%s:ro %s:ro %s:ro", l.WWW, l.Data, l.Logs)
}

// view is what of the node's files the instance's processes see besides
// the system: its directory, its app's secret, config, TEMP, logs and
// service data.
func (i *Instance) view() []string {
	l := i.Layout
	app := l.AppDir(i.App)
	// files/ and writable-root/ exist only for apps with those services
	// ("-": skipped when missing); tmp/ and the log directory always do.
	rw := []string{
		"-" + filepath.Join(app, "files"),
		"-" + filepath.Join(app, "writable-root"),
		l.TempDir(i.App),
		l.AppLogDir(i.App),
	}
	ro := []string{i.Dir(), l.AppSecret(i.App), "-" + l.ConfigDir(i.App)}
	if i.Kind == appconfig.KindPHP {
		ro = append(ro, i.Dir()+":"+SandboxInstanceDir)
	}
	return []string{
		"BindReadOnlyPaths=" + strings.Join(ro, " "),
		"BindPaths=" + strings.Join(rw, " "),
		"ReadWritePaths=" + strings.Join(rw, " "),
	}
}

// limits are the instance's resource limits (Limits, with the node's
// defaults filled in by Node.Prepare).
func (i *Instance) limits() []string {
	lim := ResolveLimits(i.Limits, 0)
	return []string{
		fmt.Sprintf("MemoryMax=%d", lim.MemoryMax),
		// Swap would let a leaking app slow the whole node down instead
		// of being stopped at its limit.
		"MemorySwapMax=0",
		fmt.Sprintf("TasksMax=%d", lim.TasksMax),
		fmt.Sprintf("CPUWeight=%d", lim.CPUWeight),
		fmt.Sprintf("LimitFSIZE=%d", lim.FileSizeMax),
	}
}

// Properties are every setting a unit that runs the instance's code
// needs besides its command: the sandbox, the file system view and the
// resource limits, as systemd unit lines. The instance's own service gets
// them from the template and its drop-in; any other unit that runs the
// app's code (update_fetch scripts and config.checker in transient units,
// scheduled jobs, workers) must use these, so that nothing the app runs
// has more than its web processes.
func (i *Instance) Properties() []string {
	out := append([]string{"User=" + i.user(), "Group=" + i.user(), "UMask=0027"}, sandbox...)
	out = append(out, hidden(i.Layout))
	out = append(out, i.view()...)
	return append(out, i.limits()...)
}

// DropIn renders the instance's drop-in for the template unit.
func (i *Instance) DropIn() ([]byte, error) {
	if err := i.Validate(); err != nil {
		return nil, err
	}
	if !i.HasProcess() {
		return nil, fmt.Errorf("instance %s: a static app runs no process", i.Name)
	}
	l := i.Layout
	user := i.user()
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud instance " + i.Name + " (" + i.Kind.String() + "); written by the agent, do not edit.")
	w("[Service]")
	switch i.Kind {
	case appconfig.KindCommand:
		w("Type=exec")
	default:
		// gunicorn and php-fpm both tell systemd when they are up.
		w("Type=notify")
	}
	i.appUser(w)
	if i.Kind != appconfig.KindCommand {
		// Root makes Run/INSTANCE the app user's, group Caddy's, 0750:
		// Caddy and the app reach the socket, other apps cannot; made
		// without following a symlink anyone planted there
		// (appsocket.Prepare). Once the app listens, the directory
		// becomes root's (appsocket.Lock): the app can no longer swap
		// the socket Caddy dials for a link to another socket.
		// (RuntimeDirectory= would be simpler, but systemd chowns it back to
		// the unit's user and group before every command it starts.)
		dir := l.SocketDir(i.Name)
		w(fmt.Sprintf("ExecStartPre=+%s app-socket prepare %s %s %s %s", l.Agent, l.Run, i.Name, user, layout.CaddyGroup))
		w(fmt.Sprintf("ExecStartPost=+%s app-socket lock %s %s %s %s", l.Agent, l.Run, i.Name, user, layout.CaddyGroup))
		// Unlocked again before the stop signal: gunicorn removes its
		// socket when it stops, and fails before it lets its workers
		// finish their requests when it cannot. (The instance is out of
		// the routes by then.)
		w(fmt.Sprintf("ExecStop=+%s app-socket prepare %s %s %s %s", l.Agent, l.Run, i.Name, user, layout.CaddyGroup))
		// And root's again once it has stopped, whether asked to or on its
		// own while still routed, with nothing left at the socket's name
		// (appsocket.Seal): no process of the app can leave a link there.
		w(fmt.Sprintf("ExecStopPost=+%s app-socket seal %s %s %s %s", l.Agent, l.Run, i.Name, user, layout.CaddyGroup))
		// "-": the directory does not exist yet when ExecStartPre's own
		// namespace is set up; ExecStart's finds it. It is a mount point
		// inside the sandbox, so no ExecStopPost can remove it:
		// RemoveFiles does, and /run is empty after a reboot.
		w("ReadWritePaths=-" + dir)
	}
	w("ExecStart=" + strings.Join(i.Command(), " "))
	switch i.Kind {
	case appconfig.KindPHP:
		// SIGQUIT is php-fpm's graceful stop; SIGTERM would cut requests.
		w("KillSignal=SIGQUIT")
		w("ExecReload=/bin/kill -USR2 $MAINPID")
	default:
		w("KillSignal=SIGTERM")
	}
	w(fmt.Sprintf("TimeoutStopSec=%d", int((DefaultGracefulTimeout + DefaultStopSlack).Seconds())))
	i.appPaths(w)
	return []byte(b.String()), nil
}

// appUser writes the drop-in lines of every unit that runs the app's own
// code as this instance: who runs it, with which environment, where.
func (i *Instance) appUser(w func(string)) {
	user := i.user()
	w("User=" + user)
	w("Group=" + user)
	w("EnvironmentFile=" + EnvFilePath(i.Layout, i.Name))
	w("WorkingDirectory=" + i.Dir())
}

// appPaths writes the drop-in lines that bind back, into the template's
// sandbox, what this instance's processes may use (view), and the app's
// resource limits.
func (i *Instance) appPaths(w func(string)) {
	for _, p := range i.view() {
		w(p)
	}
	for _, p := range i.limits() {
		w(p)
	}
}

// Command is the instance's ExecStart argv. Paths in it are validated not
// to need quoting in a unit file.
func (i *Instance) Command() []string {
	l := i.Layout
	switch i.Kind {
	case appconfig.KindPython, appconfig.KindPaste:
		return []string{
			l.Gunicorn,
			// Our config file, so that a gunicorn.conf.py in the app
			// directory (gunicorn's default) cannot rebind the socket.
			"--config", assets.Path(l.Assets, assets.GunicornConfig),
			"--pythonpath", assets.Path(l.Assets, assets.PythonDir),
			"--bind", "unix:" + l.Socket(i.Name),
			"--worker-class", "gthread",
			"--workers", strconv.Itoa(i.workers()),
			"--threads", strconv.Itoa(i.threads()),
			"--graceful-timeout", strconv.Itoa(int(DefaultGracefulTimeout.Seconds())),
			// Only Caddy and the agent reach the socket, so their
			// X-Forwarded-Proto is believed (https URLs for the app).
			"--forwarded-allow-ips=*",
			assets.PythonModule + ":" + assets.PythonApp,
		}
	case appconfig.KindPHP:
		return []string{l.PHPFPM, "--nodaemonize", "--force-stderr", "--fpm-config", FPMConfigPath(l, i.Name)}
	case appconfig.KindCommand:
		return []string{filepath.Join(i.Dir(), filepath.FromSlash(i.Runner))}
	}
	return nil
}

// FPMConfig renders the php-fpm configuration of a php instance: one
// master, run as the app user, with one pool on the instance's socket.
// The environment reaches PHP as env[NAME] = $NAME entries, which php-fpm
// fills from its own environment (the unit's EnvironmentFile), so this
// file holds no secret values.
func (i *Instance) FPMConfig() ([]byte, error) {
	if err := i.Validate(); err != nil {
		return nil, err
	}
	if i.Kind != appconfig.KindPHP {
		return nil, fmt.Errorf("instance %s: php-fpm configuration for a %v app", i.Name, i.Kind)
	}
	l := i.Layout
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("; php-fpm for toppcloud instance " + i.Name + "; written by the agent, do not edit.")
	w("[global]")
	w("; --force-stderr sends the log to stderr (the journal); the file is unused.")
	w("error_log = /dev/null")
	w("daemonize = no")
	w(fmt.Sprintf("process_control_timeout = %ds", int(DefaultGracefulTimeout.Seconds())))
	w("")
	w("[app]")
	w("; The unit starts the master as this user already, and php-fpm then")
	w("; ignores it; were it ever started as root, its workers would still run")
	w("; as the app user (and the user's own group).")
	w("user = " + i.user())
	w("listen = " + l.Socket(i.Name))
	w("; The socket's directory admits only the app user and Caddy's group.")
	w("listen.mode = 0666")
	w("pm = ondemand")
	w(fmt.Sprintf("pm.max_children = %d", i.workers()))
	w("pm.process_idle_timeout = 60s")
	w("pm.max_requests = 1000")
	w(fmt.Sprintf("request_terminate_timeout = %ds", int(FPMRequestTimeout.Seconds())))
	w("ping.path = " + FPMPingPath)
	w("chdir = " + i.Dir())
	w("catch_workers_output = yes")
	w("decorate_workers_output = no")
	w("security.limit_extensions = .php")
	w("clear_env = yes")
	env := i.ProcessEnv()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w(fmt.Sprintf("env[%s] = $%s", k, k))
	}
	tmp := l.TempDir(i.App)
	w("php_admin_value[auto_prepend_file] = " + assets.Path(l.Assets, assets.PHPPrepend))
	w("php_admin_value[sys_temp_dir] = " + tmp)
	w("php_admin_value[upload_tmp_dir] = " + tmp)
	w("php_admin_value[session.save_path] = " + tmp)
	return []byte(b.String()), nil
}
