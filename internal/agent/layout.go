package agent

import (
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/assets"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Layout is where things are on a node (the README's "How it works" lists
// them). Every
// path is absolute on the node; a host.Host resolves it under its root.
type Layout struct {
	Agent    string // the agent binary
	Etc      string // /etc/toppcloud
	NodeInfo string // node.json: what setup-node did
	Firewall string // our nftables rules, loaded by FirewallUnit
	WWW      string // instance directories
	Data     string // /var/lib/toppcloud
	Blobs    string // content store (sha256 -> file)
	Apps     string // per-app data
	Backups  string
	Secret   string // the node secret
	Routes   string // the route table (router.DefaultTablePath)
	// Slots holds one symlink per route, to the live instance's links
	// directory (see slots.go); Instances one links directory per
	// instance: its record and the symlinks a slot leads through.
	Slots     string
	Instances string
	// CaddyConfig is the file Caddy runs with (caddy run --config); the
	// agent keeps it equal to the loaded config (router.Applier).
	CaddyConfig string
	// AdminSocket is Caddy's admin API (router.DefaultAdminSocket).
	AdminSocket string
	Logs        string // /var/log/toppcloud
	AppLogs     string // per-app log directories
	SetupLog    string // setup-node history, appended to
	Run         string // /run/toppcloud: sockets, recreated at boot
	Locks       string // agent lock files (tmpfs)

	// Files of the system's own configuration that setup-node owns.
	Sudoers      string
	Tmpfiles     string
	Sysctl       string
	FirewallUnit string
	CaddyDropIn  string
	Logrotate    string
	Journald     string
	Units        string // systemd unit directory
}

// DefaultLayout is the layout of every node.
func DefaultLayout() Layout {
	return Layout{
		Agent:        protocol.AgentPath,
		Etc:          "/etc/toppcloud",
		NodeInfo:     "/etc/toppcloud/node.json",
		Firewall:     "/etc/toppcloud/firewall.nft",
		WWW:          "/var/www",
		Data:         "/var/lib/toppcloud",
		Blobs:        "/var/lib/toppcloud/blobs",
		Apps:         "/var/lib/toppcloud/apps",
		Backups:      "/var/lib/toppcloud/backups",
		Secret:       "/var/lib/toppcloud/secret",
		Routes:       router.DefaultTablePath,
		Slots:        "/var/lib/toppcloud/slots",
		Instances:    "/var/lib/toppcloud/instances",
		CaddyConfig:  "/var/lib/toppcloud/caddy.json",
		AdminSocket:  router.DefaultAdminSocket,
		Logs:         "/var/log/toppcloud",
		AppLogs:      "/var/log/toppcloud/apps",
		SetupLog:     "/var/log/toppcloud/setup.log",
		Run:          "/run/toppcloud",
		Locks:        "/run/lock/toppcloud",
		Sudoers:      "/etc/sudoers.d/toppcloud",
		Tmpfiles:     "/etc/tmpfiles.d/toppcloud.conf",
		Sysctl:       "/etc/sysctl.d/60-toppcloud.conf",
		FirewallUnit: "/etc/systemd/system/" + FirewallUnit,
		CaddyDropIn:  "/etc/systemd/system/caddy.service.d/toppcloud.conf",
		Logrotate:    "/etc/logrotate.d/toppcloud",
		Journald:     "/etc/systemd/journald.conf.d/toppcloud.conf",
		Units:        "/etc/systemd/system",
	}
}

// Runner returns the runner package's layout for these paths.
func (l Layout) Runner() instance.Layout {
	r := instance.DefaultLayout()
	r.WWW, r.Apps, r.Logs, r.Run = l.WWW, l.Apps, l.AppLogs, l.Run
	r.Etc = l.Etc + "/instances"
	r.Units = l.Units
	r.Secret = l.Secret
	r.DataDir, r.LogDir = l.Data, l.Logs
	r.Assets = assets.InstallDir
	return r
}

// RouterOptions are the node-wide options every rendered Caddy config
// must use (the admin socket above); callers set the rest.
func (l Layout) RouterOptions() router.Options {
	return router.Options{AdminSocket: l.AdminSocket}
}

// Names of accounts and units setup-node creates.
const (
	// AppsGroup holds every app user; it may read the node secret.
	AppsGroup = instance.AppsGroup
	// CaddyUser and CaddyGroup are the Debian package's.
	CaddyUser  = "caddy"
	CaddyGroup = "caddy"
	// FirewallUnit loads Layout.Firewall and the sysctls at boot.
	FirewallUnit = "toppcloud-firewall.service"
	// FirewallTable is the nftables table toppcloud owns; no other table
	// is touched.
	FirewallTable = "toppcloud"
)
