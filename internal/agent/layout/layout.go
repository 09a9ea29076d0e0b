// Package layout says where toppcloud keeps things on a node: every path
// the agent, setup-node and the instances' units use, and the accounts
// and units those paths belong to. Paths are absolute node paths; a
// host.Host resolves them under its root (a temporary directory in
// tests), and tests point single fields elsewhere.
//
// On a node (owner root unless said):
//
//	/etc/toppcloud                0755   node.json, firewall.nft
//	/etc/toppcloud/instances      0711   per-instance env files
//	/var/www                      0755   instance directories
//	/var/lib/toppcloud            0755   routes.json, caddy.json
//	/var/lib/toppcloud/blobs      0700
//	/var/lib/toppcloud/slots      0755   one symlink per route
//	/var/lib/toppcloud/instances  0755   per instance: record, www and sock links
//	/var/lib/toppcloud/apps       0711   per-app data (see AppDir)
//	/var/lib/toppcloud/backups    0700
//	/var/lib/toppcloud/services   0700   node-wide service state (admin credentials)
//	/var/lib/toppcloud/secret     0600   the node secret, root only
//	/var/log/toppcloud            0755   setup.log (0640 root:adm)
//	/var/log/toppcloud/apps       0755   per-app logs
//	/run/toppcloud                0755   instances' socket directories (tmpfiles.d)
//	/run/toppcloud/caddy          0750 caddy:caddy  the Caddy processes' admin sockets
//	/run/toppcloud/router         0750 caddy:caddy  the router's sockets
//	/run/lock/toppcloud           0700   agent locks
package layout

import (
	"path"

	"github.com/toppcloud/toppcloud/internal/assets"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Layout is where things are on a node.
type Layout struct {
	Agent    string // the agent binary
	Etc      string // /etc/toppcloud
	NodeInfo string // node.json: what setup-node did
	Firewall string // our nftables rules, loaded by FirewallUnit
	// InstanceEtc holds one directory per instance: its env file (root
	// only), php-fpm configuration, its proxy's port.
	InstanceEtc string
	WWW         string // instance directories
	Data        string // /var/lib/toppcloud
	Blobs       string // content store (sha256 -> file)
	Apps        string // per-app data
	// Served is the read-only, nosymfollow view of Apps that Caddy
	// reads writable roots through (service/writableroot says why).
	Served  string
	Backups string
	// Services keeps node-wide service state (a server's admin
	// credentials), root only; service.Node.StateDir.
	Services string
	Secret   string // the node secret
	Routes   string // the route table
	// Slots holds one symlink per route, to the live instance's links
	// directory; Instances one links directory per instance: its record
	// and the symlinks a slot leads through.
	Slots     string
	Instances string
	// CaddyConfig is the file Caddy runs with (caddy run --config); the
	// agent keeps it equal to the loaded config (router.Applier).
	CaddyConfig string
	// AdminSocket is Caddy's admin API, in CaddyRun.
	AdminSocket string
	// CaddyRun is the Caddy processes' own runtime directory (their
	// admin sockets): Run itself is root's, so that nobody but root makes
	// anything where instances' socket directories are made.
	CaddyRun string
	// RouterConfig, RouterAdminSocket: the same for the router, the
	// second Caddy (RouterUnit) behind the front server; it listens on
	// unix sockets in RouterDir.
	RouterConfig      string
	RouterAdminSocket string
	RouterDir         string
	// CaddyStorage is the front server's storage: certificates, ACME
	// account keys, the internal CA (owner caddy, 0700).
	CaddyStorage string
	// TLSSettings is how the node gets certificates (setup-node writes
	// it from protocol.TLSSettings), ACMECARoot the PEM file of the roots
	// it trusts for a private ACME CA.
	TLSSettings string
	// SiteRole is the node's part in a site (protocol.SiteRole, JSON),
	// written by setup-node; absent on a node of its own.
	SiteRole   string
	ACMECARoot string
	Logs       string // /var/log/toppcloud
	AppLogs    string // per-app log directories
	SetupLog   string // setup-node history, appended to
	Run        string // /run/toppcloud: sockets, recreated at boot
	Locks      string // agent and service lock files (tmpfs)
	Assets     string // what instances run with besides the app (assets.Install)

	// Files of the system's own configuration that setup-node owns.
	Sudoers      string
	Tmpfiles     string
	Sysctl       string
	FirewallUnit string
	CaddyDropIn  string
	Logrotate    string
	// LogrotateDir holds each app's logrotate rules (AppLogrotate);
	// LogrotateTimer is our drop-in making logrotate run hourly.
	LogrotateDir   string
	LogrotateTimer string
	Journald       string
	Units          string // systemd unit directory

	// Programs instances run, from Debian's packages.
	Gunicorn string
	PHPFPM   string
	Python   string
	// SystemdRun and Systemctl run and stop the transient units the
	// app's other commands run in (update_fetch scripts, config.checker).
	SystemdRun string
	Systemctl  string
	// SocketProxyd passes a previous instance's prev. host connections
	// on to its socket, started on demand (see instance/prev.go).
	SocketProxyd string
}

// Accounts and units the layout belongs to.
const (
	// AppsGroup holds every app user.
	AppsGroup = "toppcloud-apps"
	// CaddyUser and CaddyGroup are the Debian package's; the group may
	// reach instance sockets.
	CaddyUser  = "caddy"
	CaddyGroup = "caddy"
	// FirewallUnit loads Layout.Firewall and the sysctls at boot.
	FirewallUnit = "toppcloud-firewall.service"
	// SocketName is an instance's socket in its directory under Run.
	SocketName = "app.sock"
)

// Default is the layout of every node.
func Default() Layout {
	const units = "/etc/systemd/system"
	return Layout{
		Agent:             protocol.AgentPath,
		Etc:               "/etc/toppcloud",
		NodeInfo:          "/etc/toppcloud/node.json",
		Firewall:          "/etc/toppcloud/firewall.nft",
		InstanceEtc:       "/etc/toppcloud/instances",
		WWW:               "/var/www",
		Data:              "/var/lib/toppcloud",
		Blobs:             "/var/lib/toppcloud/blobs",
		Apps:              "/var/lib/toppcloud/apps",
		Served:            "/var/lib/toppcloud/served",
		Backups:           "/var/lib/toppcloud/backups",
		Services:          "/var/lib/toppcloud/services",
		Secret:            "/var/lib/toppcloud/secret",
		Routes:            "/var/lib/toppcloud/routes.json",
		Slots:             "/var/lib/toppcloud/slots",
		Instances:         "/var/lib/toppcloud/instances",
		CaddyConfig:       "/var/lib/toppcloud/caddy.json",
		AdminSocket:       "/run/toppcloud/caddy/admin.sock",
		CaddyRun:          "/run/toppcloud/caddy",
		RouterConfig:      "/var/lib/toppcloud/router.json",
		RouterAdminSocket: "/run/toppcloud/caddy/router-admin.sock",
		RouterDir:         "/run/toppcloud/router",
		CaddyStorage:      "/var/lib/toppcloud/caddy",
		TLSSettings:       "/etc/toppcloud/tls.json",
		SiteRole:          "/etc/toppcloud/site.json",
		ACMECARoot:        "/etc/toppcloud/acme-ca-root.pem",
		Logs:              "/var/log/toppcloud",
		AppLogs:           "/var/log/toppcloud/apps",
		SetupLog:          "/var/log/toppcloud/setup.log",
		Run:               "/run/toppcloud",
		Locks:             "/run/lock/toppcloud",
		Assets:            assets.InstallDir,
		Sudoers:           "/etc/sudoers.d/toppcloud",
		Tmpfiles:          "/etc/tmpfiles.d/toppcloud.conf",
		Sysctl:            "/etc/sysctl.d/60-toppcloud.conf",
		FirewallUnit:      units + "/" + FirewallUnit,
		CaddyDropIn:       units + "/caddy.service.d/toppcloud.conf",
		Logrotate:         "/etc/logrotate.d/toppcloud",
		LogrotateDir:      "/etc/logrotate.d",
		LogrotateTimer:    units + "/logrotate.timer.d/toppcloud.conf",
		Journald:          "/etc/systemd/journald.conf.d/toppcloud.conf",
		Units:             units,
		Gunicorn:          "/usr/bin/gunicorn",
		PHPFPM:            "/usr/sbin/php-fpm8.2",
		Python:            "/usr/bin/python3",
		SystemdRun:        "/usr/bin/systemd-run",
		Systemctl:         "/usr/bin/systemctl",
		SocketProxyd:      "/lib/systemd/systemd-socket-proxyd",
	}
}

// AppDir is the app's data directory, /var/lib/toppcloud/apps/APP.
func (l Layout) AppDir(app string) string { return path.Join(l.Apps, app) }

// AppSecret is the app's own secret (AppDir/secret, root:app-APP 0440):
// derived from the node secret and the app's name, so no app can know
// another's.
func (l Layout) AppSecret(app string) string { return path.Join(l.AppDir(app), "secret") }

// AppLogrotate is the logrotate rule of the app's logs.
func (l Layout) AppLogrotate(app string) string {
	return path.Join(l.LogrotateDir, "toppcloud-app-"+app)
}

// AppLogDir is the app's log directory, $SILVER_LOGS.
func (l Layout) AppLogDir(app string) string { return path.Join(l.AppLogs, app) }

// TempDir is the app's $TEMP, a new one for every update.
func (l Layout) TempDir(app string) string { return path.Join(l.AppDir(app), "tmp") }

// ConfigDir is where an uploaded --config directory is kept.
func (l Layout) ConfigDir(app string) string { return path.Join(l.AppDir(app), "config") }

// InstanceDir is /var/www/INSTANCE.
func (l Layout) InstanceDir(instance string) string { return path.Join(l.WWW, instance) }

// LinksDir is the instance's links directory: its record and the
// symlinks a slot leads through.
func (l Layout) LinksDir(instance string) string { return path.Join(l.Instances, instance) }

// SlotPath is the slot symlink named slot.
func (l Layout) SlotPath(slot string) string { return path.Join(l.Slots, slot) }

// SocketDir is the instance's own directory for its socket.
func (l Layout) SocketDir(instance string) string { return path.Join(l.Run, instance) }

// Socket is the unix socket the router reaches the instance on.
func (l Layout) Socket(instance string) string {
	return path.Join(l.SocketDir(instance), SocketName)
}

// InstanceEtcDir holds the instance's env file and php-fpm config.
func (l Layout) InstanceEtcDir(instance string) string { return path.Join(l.InstanceEtc, instance) }
