package agent

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
	StepOS        = "check os"
	StepAptWait   = "wait for apt"
	StepPackages  = "packages"
	StepAgent     = "agent binary"
	StepUsers     = "users"
	StepDirs      = "directories"
	StepSecret    = "node secret"
	StepFirewall  = "firewall"
	StepSysctl    = "sysctl"
	StepAppUnits  = "app units"
	StepCaddy     = "caddy"
	StepLogs      = "logs"
	StepNodeInfo  = "node.json"
	setupLockName = "setup"
)

// Bounds of setup-node's waits.
const (
	// DefaultAptWait bounds waiting for another apt or dpkg (unattended
	// upgrades, cloud-init) to finish.
	DefaultAptWait = 10 * time.Minute
	// DefaultCaddyWait bounds waiting for Caddy's admin API after a
	// (re)start.
	DefaultCaddyWait = 30 * time.Second
	// setupLockWait bounds waiting for another setup-node on the node.
	setupLockWait = 2 * time.Minute
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

// setupHooks are the parts of setup-node that reach beyond files and
// commands; tests replace them.
type setupHooks struct {
	// aptBusy reports a process holding apt's or dpkg's locks.
	aptBusy func(ctx context.Context, h *host.Host) (holder string, busy bool, err error)
	aptWait time.Duration
	aptPoll time.Duration
	// admin talks to Caddy's admin API at a real socket path.
	admin func(socket string) *router.Admin
	// caddyWait bounds waiting for the admin API.
	caddyWait time.Duration
	// httpCheck asks the front server for a page once Caddy runs.
	httpCheck func(ctx context.Context) error
	// random fills b with random bytes (the node secret).
	random func(b []byte) error
}

func (a *Agent) hooks() setupHooks {
	hk := a.setup
	if hk.aptBusy == nil {
		hk.aptBusy = system.LockHolder
	}
	if hk.aptWait == 0 {
		hk.aptWait = DefaultAptWait
	}
	if hk.aptPoll == 0 {
		hk.aptPoll = time.Second
	}
	if hk.admin == nil {
		hk.admin = router.NewAdmin
	}
	if hk.caddyWait == 0 {
		hk.caddyWait = DefaultCaddyWait
	}
	if hk.httpCheck == nil {
		hk.httpCheck = checkFrontServer
	}
	if hk.random == nil {
		hk.random = cryptoRandom
	}
	return hk
}

// setupRun is one run of setup-node.
type setupRun struct {
	a     *Agent
	h     *host.Host
	l     layout.Layout
	c     *Call
	args  protocol.SetupArgs
	hooks setupHooks

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

func (a *Agent) setupOp() Op {
	return Handle(protocol.OpSetup, "set the node up (setup-node): packages, users, layout, firewall, Caddy",
		func(ctx context.Context, c *Call, args *protocol.SetupArgs) (*protocol.SetupResult, error) {
			return a.runSetup(ctx, c, *args)
		})
}

func (a *Agent) runSetup(ctx context.Context, c *Call, args protocol.SetupArgs) (*protocol.SetupResult, error) {
	if err := validateSetupArgs(args); err != nil {
		return nil, err
	}
	release, err := a.Locks().Acquire(ctx, setupLockName, "setup-node by "+orUnknown(c.Req.LocalUser), setupLockWait,
		func(s string) { c.Logf("%s", s) })
	if err != nil {
		return nil, err
	}
	defer release()

	s := &setupRun{a: a, h: a.Host, l: a.Layout, c: c, args: args, hooks: a.hooks(), packages: map[string]string{},
		systemd: system.Systemd{Runner: a.Host.Runner}}
	for _, step := range s.steps() {
		st := c.Out.Start(step.name)
		changed, detail, err := step.run(ctx, st)
		if err != nil {
			st.Failed(firstLine(err.Error()))
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		if changed {
			s.changed = append(s.changed, step.name)
			st.Done(true, detail)
		} else {
			st.Skipped(detail)
		}
	}
	ni, err := a.readNodeInfo()
	if err != nil || ni == nil {
		return nil, fmt.Errorf("read back %s: %v", a.Layout.NodeInfo, err)
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
		{StepFirewall, s.ensureFirewall},
		{StepSysctl, s.ensureSysctl},
		{StepAppUnits, s.ensureAppUnits},
		{StepCaddy, s.ensureCaddy},
		{StepLogs, s.ensureLogs},
		{StepNodeInfo, s.recordNodeInfo},
	}
}

func validateSetupArgs(args protocol.SetupArgs) error {
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
			return bad("authorized key %q: %v", shorten(k, 40), err)
		}
	}
	if args.SSHPort < 0 || args.SSHPort > 65535 {
		return bad("ssh port %d out of range", args.SSHPort)
	}
	return nil
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

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
