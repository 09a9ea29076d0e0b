// Package setup sets a node up for toppcloud (setup-node): the packages,
// accounts, directories, firewall and front server every node has, over
// the node's system layer (package system). The agent's setup operation
// runs it; deploys do not: what instances need at start (the runtime) is
// package instance's.
//
// Each step reports start, then done (it changed the node) or skipped
// (nothing to do), with elapsed time; a failing step reports failed and
// the operation fails with the cause (an apt error carries apt's output
// tail). Steps compare before they write, so a second run changes nothing,
// and a run that failed half way is finished by the next one. In order:
//
//	check os      /etc/os-release: Debian 12+ or Ubuntu 22.04+, else refuse
//	wait for apt  until no process holds dpkg's or apt's locks (bounded)
//	packages      NodePackages via dpkg-query; apt-get update and install
//	              only what is missing; finish an interrupted dpkg first
//	              (a site's node that runs no apps: without their runtimes)
//	agent         /usr/local/bin/toppcloud root:root 0755 (uploaded by the client)
//	users         group toppcloud-apps; user www-mgr with the client's keys
//	              added to its authorized_keys; /etc/sudoers.d/toppcloud
//	              (checked with visudo -c first) allowing exactly
//	              `/usr/local/bin/toppcloud node *` as root
//	directories   package layout's directories; /run/toppcloud through tmpfiles.d
//	node secret   /var/lib/toppcloud/secret, made once, never shown
//	site role     /etc/toppcloud/site.json: the node's role in a site
//	              (SetupArgs.Site), removed from a node of its own
//	firewall      nftables table inet toppcloud (only ours; policy drop on
//	              input; established, lo, ICMP, DHCP replies and tcp 22, 80,
//	              443 and the SSH port accepted), applied atomically with
//	              nft -f and at boot by toppcloud-firewall.service
//	sysctl        net.ipv4.tcp_migrate_req=1 now and in /etc/sysctl.d
//	app units     toppcloud-app@.service, the runtime assets; the
//	              distribution's php-fpm service stopped and disabled;
//	              skipped on a site's node that runs no apps
//	caddy         the TLS settings (/etc/toppcloud/tls.json, the ACME CA's
//	              root), the certificate storage (/var/lib/toppcloud/caddy,
//	              caddy's, 0700); the router (toppcloud-router.service:
//	              caddy run --config /var/lib/toppcloud/router.json) and the
//	              front server (caddy.service, drop-in: caddy run --config
//	              /var/lib/toppcloud/caddy.json), admin APIs on unix sockets
//	              only; their configs rendered from the route table, written
//	              when missing, loaded through the admin APIs when they
//	              differ; each restarted when needed, the router first
//	logs          logrotate for /var/log/toppcloud/apps/*/*.log and the
//	              setup log; journald persistent, at most 1G
//	node.json     /etc/toppcloud/node.json when something changed; one line
//	              per run appended to /var/log/toppcloud/setup.log
package setup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Setup step names, in order. The client shows each as a line.
const (
	StepOS       = "check os"
	StepAptWait  = "wait for apt"
	StepPackages = "packages"
	StepAgent    = "agent binary"
	StepUsers    = "users"
	StepDirs     = "directories"
	StepSecret   = "node secret"
	// StepSiteRole writes the node's role in a site (SetupArgs.Site).
	StepSiteRole = "site role"
	StepFirewall = "firewall"
	StepSysctl   = "sysctl"
	StepAppUnits = "app units"
	StepCaddy    = "caddy"
	StepLogs     = "logs"
	StepNodeInfo = "node.json"
)

// Bounds of setup-node's waits.
const (
	// DefaultAptWait bounds waiting for another apt or dpkg (unattended
	// upgrades, cloud-init) to finish.
	DefaultAptWait = 10 * time.Minute
	// DefaultCaddyWait bounds waiting for Caddy's admin API after a
	// (re)start.
	DefaultCaddyWait = 30 * time.Second
	// LockWait bounds waiting for another setup-node on the node.
	LockWait = 2 * time.Minute
)

// NodePackages is the node's package set: the front server, the runtimes
// of python and php apps, the firewall, and what setup-node itself uses.
// Services' packages (databases) are installed by deploys that need them.
func NodePackages() []string {
	return []string{
		"caddy",
		"python3", "gunicorn", "python3-pastedeploy",
		"php-fpm",
		"nftables",
		"ca-certificates",
		"sudo",
		"logrotate",
		"procps", // sysctl
	}
}

// Hooks are the parts of setup-node that reach beyond files and
// commands, and its waits; zero values are the real ones, tests replace
// them.
type Hooks struct {
	// AptBusy reports a process holding apt's or dpkg's locks
	// (system.LockHolder).
	AptBusy func(ctx context.Context, h *host.Host) (holder string, busy bool, err error)
	// AptWait bounds waiting for it (DefaultAptWait), AptPoll is how often
	// it asks (a second).
	AptWait time.Duration
	AptPoll time.Duration
	// CaddyWait bounds waiting for Caddy's admin API (DefaultCaddyWait).
	CaddyWait time.Duration
	// HTTPCheck asks the front server for a page once Caddy runs.
	HTTPCheck func(ctx context.Context) error
	// Random fills b with random bytes (the node secret).
	Random func(b []byte) error
}

func (hk Hooks) withDefaults() Hooks {
	if hk.AptBusy == nil {
		hk.AptBusy = system.LockHolder
	}
	if hk.AptWait == 0 {
		hk.AptWait = DefaultAptWait
	}
	if hk.AptPoll == 0 {
		hk.AptPoll = time.Second
	}
	if hk.CaddyWait == 0 {
		hk.CaddyWait = DefaultCaddyWait
	}
	if hk.HTTPCheck == nil {
		hk.HTTPCheck = checkFrontServer
	}
	if hk.Random == nil {
		hk.Random = cryptoRandom
	}
	return hk
}

// Node is the node setup-node sets up, and what it runs with.
type Node struct {
	Host   *host.Host
	Layout layout.Layout
	// Fingerprint returns the sha256 of the agent binary, for node.json.
	Fingerprint func() (string, error)
	// Admin talks to Caddy's admin API at a real socket path.
	Admin func(socket string) *router.Admin
	Hooks Hooks
	// Routing renders the node's two Caddy configs from its route table
	// (the agent's, which knows the instances behind the routes). The
	// settings it reads (TLSSettings) are written before it is called.
	Routing func() (*router.Rendered, error)
}

func (n Node) admin(socket string) *router.Admin {
	if n.Admin != nil {
		return n.Admin(socket)
	}
	return router.NewAdmin(socket)
}

// setupRun is one run of setup-node.
type setupRun struct {
	h     *host.Host
	l     layout.Layout
	n     Node
	out   *protocol.Writer
	req   protocol.Request
	args  protocol.SetupArgs
	hooks Hooks

	systemd  system.Systemd
	os       protocol.OSInfo
	packages map[string]string
	changed  []string
	// reload is set when unit files changed: systemctl daemon-reload is
	// due before units are (re)started.
	reload bool
}

type setupStep struct {
	name string
	run  func(ctx context.Context, st *protocol.Step) (changed bool, detail string, err error)
}

// LockName is the agent lock setup-node runs under.
const LockName = "setup"

// Run sets the node up, step by step, each reported on out; req says who
// asks (its LocalUser goes into node.json) and how much detail they want.
// The caller validated args (Validate) and holds LockName.
func Run(ctx context.Context, n Node, out *protocol.Writer, req protocol.Request, args protocol.SetupArgs) (*protocol.SetupResult, error) {
	s := &setupRun{h: n.Host, l: n.Layout, n: n, out: out, req: req, args: args, hooks: n.Hooks.withDefaults(),
		packages: map[string]string{}, systemd: system.Systemd{Runner: n.Host.Runner}}
	for _, step := range s.steps() {
		st := out.Start(step.name)
		changed, detail, err := step.run(ctx, st)
		if err != nil {
			st.Failed(err)
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		if changed {
			s.changed = append(s.changed, step.name)
			st.Done(true, detail)
		} else {
			st.Skipped(detail)
		}
	}
	ni, err := ReadNodeInfo(n.Host, n.Layout)
	if err != nil || ni == nil {
		return nil, fmt.Errorf("read back %s: %v", n.Layout.NodeInfo, err)
	}
	changed := s.changed
	if changed == nil {
		changed = []string{}
	}
	return &protocol.SetupResult{Changed: changed, Node: *ni}, nil
}

func (s *setupRun) steps() []setupStep {
	return []setupStep{
		{StepOS, s.checkOS},
		{StepAptWait, s.waitForApt},
		{StepPackages, s.installPackages},
		{StepAgent, s.checkAgent},
		{StepUsers, s.ensureUsers},
		{StepDirs, s.ensureDirs},
		{StepSecret, s.ensureSecret},
		{StepSiteRole, s.ensureSiteRole},
		{StepFirewall, s.ensureFirewall},
		{StepSiteServices, s.ensureSiteServices},
		{StepSysctl, s.ensureSysctl},
		{StepAppUnits, s.appUnits},
		{StepCaddy, s.ensureCaddy},
		{StepLogs, s.ensureLogs},
		{StepNodeInfo, s.recordNodeInfo},
	}
}

// Validate checks setup-node's arguments before anything is done.
func Validate(args protocol.SetupArgs) error {
	bad := func(format string, a ...any) error {
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: "setup: " + fmt.Sprintf(format, a...)}
	}
	if len(args.AuthorizedKeys) == 0 {
		return bad("no authorized keys for %s: the deploy user would accept no login", protocol.DeployUser)
	}
	for _, k := range args.AuthorizedKeys {
		if strings.ContainsAny(k, "\n\r") {
			return bad("an authorized key spans several lines")
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return bad("authorized key %.40q: %v", k, err)
		}
	}
	if args.SSHPort < 0 || args.SSHPort > 65535 {
		return bad("ssh port %d out of range", args.SSHPort)
	}
	if t := args.TLS; t != nil {
		if err := validateTLS(*t); err != nil {
			return bad("%v", err)
		}
	}
	if r := args.Site; r != nil {
		if err := ValidateSiteRole(*r); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// warnf sends a warning the client shows even when not verbose.
func (s *setupRun) warnf(format string, args ...any) {
	_ = s.out.Log(protocol.StreamWarning, fmt.Sprintf(format, args...))
}

// commandLine sends a line of a command's output in the stdout stream,
// when the client asked for detail (-v).
func (s *setupRun) commandLine(line string) {
	if s.req.Verbose > 0 {
		_ = s.out.Log(protocol.StreamStdout, line)
	}
}

// run runs a command on the node.
func (s *setupRun) run(ctx context.Context, argv ...string) ([]byte, error) {
	return s.h.Runner.Run(ctx, host.Command{Argv: argv})
}

// daemonReload runs systemctl daemon-reload if unit files changed.
func (s *setupRun) daemonReload(ctx context.Context) error {
	if !s.reload {
		return nil
	}
	if err := s.systemd.DaemonReload(ctx); err != nil {
		return err
	}
	s.reload = false
	return nil
}

// writeFiles writes several files and reports whether any changed.
func (s *setupRun) writeFiles(files []fileSpec) (bool, error) {
	changed := false
	for _, f := range files {
		c, err := s.h.WriteFile(f.path, f.data, f.attr)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

type fileSpec struct {
	path string
	data []byte
	attr host.Attr
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
