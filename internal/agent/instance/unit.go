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
	w(fmt.Sprintf("TemporaryFileSystem=%s:ro %s:ro %s:ro", l.WWW, l.Data, l.Logs))
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
		// Root makes Run/INSTANCE owned by the app user and Caddy's group,
		// 0750: Caddy and the app reach the socket, other apps cannot.
		// (RuntimeDirectory= would be simpler, but systemd chowns it back to
		// the unit's user and group before every command it starts.)
		dir := l.SocketDir(i.Name)
		w(fmt.Sprintf("ExecStartPre=+%s -d -o %s -g %s -m 0750 %s", l.Install, user, layout.CaddyGroup, dir))
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
// sandbox, what this instance's processes may use.
func (i *Instance) appPaths(w func(string)) {
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
	ro := []string{i.Dir(), l.Secret, "-" + l.ConfigDir(i.App)}
	if i.Kind == appconfig.KindPHP {
		ro = append(ro, i.Dir()+":"+SandboxInstanceDir)
	}
	w("BindReadOnlyPaths=" + strings.Join(ro, " "))
	w("BindPaths=" + strings.Join(rw, " "))
	w("ReadWritePaths=" + strings.Join(rw, " "))
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
