package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Agent runs operations on the node it is installed on.
type Agent struct {
	// Host is the node; host.New() for real.
	Host *host.Host
	// Layout is where things are; layout.Default() for real.
	Layout layout.Layout
	// RequireRoot refuses operations unless the effective user is root
	// (every real run; tests on a temporary root turn it off).
	RequireRoot bool
	// Fingerprint returns the sha256 of the running agent binary
	// (version.Fingerprint for real).
	Fingerprint func() (string, error)
	// SaveFingerprint, if set, is called after an operation run as root,
	// to record the binary's sum beside it when Fingerprint had to hash
	// it (version.SaveFingerprint for real): the next runs, as the
	// deploy user too, then read it instead of hashing ~70 MB.
	SaveFingerprint func() error
	// Ops are extra operations, for tests; they win over built-in ones of
	// the same name.
	Ops []Op

	// Admin connects to Caddy's admin API at a real socket path; nil
	// means router.NewAdmin. Tests point it at a fake.
	Admin func(socket string) *router.Admin
	// Setup are setup-node's waits and checks; the zero value is the
	// real ones.
	Setup setup.Hooks
	// CertificateWait bounds a deploy's wait for an https location's
	// certificate (DefaultCertificateWait when 0).
	CertificateWait time.Duration
	// geteuid is os.Geteuid unless a test says otherwise.
	geteuid func() int
}

// New returns the agent of the real node.
func New() *Agent {
	return &Agent{
		Host:            host.New(),
		Layout:          layout.Default(),
		RequireRoot:     true,
		Fingerprint:     version.Fingerprint,
		SaveFingerprint: version.SaveFingerprint,
	}
}

// Op is one operation, `toppcloud node NAME`.
//
// To add one: write a method fn(ctx, c, args) taking a pointer to the
// operation's args type (a struct in internal/protocol, with JSON tags;
// unknown fields are refused) and returning its result type (also in
// protocol, or nil), and list Handle(name, summary, a.fn) in
// (*Agent).ops. fn reports progress
// through c.Out (c.Out.Start(step) ... Done/Skipped/Failed, c.Log) and
// returns an error to fail: a *protocol.Error is sent as it is; any other
// error is mapped by ToProtocolError (command output tails, a full disk).
// Take a lock (c.Agent.Locks().Acquire) around changes that must not
// interleave.
type Op struct {
	Name    string
	Summary string
	// AnyProtocol accepts requests of every protocol version: only the
	// operations that bring an agent up to date may.
	AnyProtocol bool

	newArgs func() any
	run     func(ctx context.Context, c *Call, args any) (any, error)
}

// Handle makes an Op whose request args decode into A.
func Handle[A any, R any](name, summary string, fn func(ctx context.Context, c *Call, args *A) (R, error)) Op {
	return Op{
		Name:    name,
		Summary: summary,
		newArgs: func() any { return new(A) },
		run: func(ctx context.Context, c *Call, args any) (any, error) {
			return fn(ctx, c, args.(*A))
		},
	}
}

// Call is one running operation.
type Call struct {
	Agent *Agent
	Req   protocol.Request
	// Out is the message stream to the client.
	Out *protocol.Writer
	// Input is stdin after the request line, for operations that stream
	// data.
	Input io.Reader
	// Output is the raw standard output under Out, for an operation that
	// sends data after its result (OpBackupFetch): it sends the result
	// itself with Out.OK, then writes here.
	Output io.Writer
}

// Host is the node.
func (c *Call) Host() *host.Host { return c.Agent.Host }

// Layout is the node layout.
func (c *Call) Layout() layout.Layout { return c.Agent.Layout }

// Logf sends a log line in the agent stream.
func (c *Call) Logf(format string, args ...any) {
	_ = c.Out.Log(protocol.StreamAgent, fmt.Sprintf(format, args...))
}

// Warnf sends a warning the client shows even when not verbose.
func (c *Call) Warnf(format string, args ...any) {
	_ = c.Out.Log(protocol.StreamWarning, fmt.Sprintf(format, args...))
}

// commandLine sends a line of a command's output in the stdout stream,
// when the client asked for detail (-v).
func (c *Call) commandLine(line string) {
	if c.Req.Verbose > 0 {
		_ = c.Out.Log(protocol.StreamStdout, line)
	}
}

// admin connects to the admin API of one of the node's Caddy processes
// (the front server's or the router's socket, a node path).
func (a *Agent) admin(nodeSocket string) *router.Admin {
	socket := a.Host.Path(nodeSocket)
	if a.Admin != nil {
		return a.Admin(socket)
	}
	return router.NewAdmin(socket)
}

// instances are the node's application instances.
func (a *Agent) instances() *instance.Node { return &instance.Node{Host: a.Host, Layout: a.Layout} }

// Locks returns the agent's locks.
func (a *Agent) Locks() Locks { return Locks{Host: a.Host, Dir: a.Layout.Locks} }

// ops lists every operation (besides OpVersion, which speaks no
// protocol) with the summary usage shows.
func (a *Agent) ops() []Op {
	installAgent := Handle(protocol.OpInstallAgent, "replace the agent binary with the one on stdin", a.installAgent)
	installAgent.AnyProtocol = true
	ops := []Op{
		installAgent,
		Handle(protocol.OpInfo, "print the agent version and what setup-node recorded", a.info),
		Handle(protocol.OpSetup, "set the node up (setup-node): packages, users, layout, firewall, Caddy", a.setupNode),
		Handle(protocol.OpNodeCA, "print the root certificate of the node's internal CA", a.nodeCA),
		Handle(protocol.OpUpdate, "an update in one request: the manifests, the contents the node lacks, then what deploy does", a.update),
		Handle(protocol.OpDeploy, "make an instance from an uploaded manifest, start it and switch the location to it", a.deploy),
		Handle(protocol.OpActivate, "make an instance (name, prev or release number) live at a location", a.activate),
		Handle(protocol.OpDeactivate, "remove routes (globs allowed) and stop instances no route serves", a.deactivate),
		Handle(protocol.OpQuery, "list apps, routes, instances and releases", a.query),
		Handle(protocol.OpClean, "remove instances neither live nor prev, unused contents and leftovers of interrupted updates", a.clean),
		Handle(protocol.OpDisable, "serve the disabled page at every location of an app, keeping it deployed", a.disable),
		Handle(protocol.OpEnable, "undo disable", a.enable),
		Handle(protocol.OpLogs, "show (or follow) an app's errors.log and its instances' journal", a.logs),
		Handle(protocol.OpDiff, "compare an application directory's manifest with a deployed instance (read only)", a.diff),
		Handle(protocol.OpRestore, "point every route at its live instance again, start live instances that are down, load the routing configs if needed", a.restore),
		Handle(protocol.OpBackup, "back up every service of the app at a location into a backup kept on the node", a.backup),
		Handle(protocol.OpBackupFetch, "send a kept backup: its description, then a tar stream", a.backupFetch),
		Handle(protocol.OpBackupDelete, "remove a kept backup", a.backupDelete),
		Handle(protocol.OpServicesRestore, "replace the app's data with a backup (kept, or streamed after the request)", a.servicesRestore),
		Handle(protocol.OpClear, "empty every service of the app at a location, then run its update_fetch", a.clearData),
		Handle(protocol.OpBalance, "set the locations and app nodes a balancer proxies for one site (no locations: remove it)", a.balance),
		Handle(protocol.OpBalanceStatus, "list the balanced sites and how their app nodes fare", a.balanceStatus),
		Handle(protocol.OpSiteServices, "on a site's services node: make an app's databases and users, return their CONFIG_* variables", a.siteServices),
		Handle(protocol.OpRunUpload, "keep files for a run in the app's TEMP (a tar stream follows the request)", a.runUpload),
	}
	for _, extra := range a.Ops {
		ops = slices.DeleteFunc(ops, func(o Op) bool { return o.Name == extra.Name })
		ops = append(ops, extra)
	}
	return ops
}

func (a *Agent) op(name string) (Op, bool) {
	for _, o := range a.ops() {
		if o.Name == name {
			return o, true
		}
	}
	return Op{}, false
}

// Main runs `toppcloud node ARGS...`: args[0] is the operation. It reads
// the request from stdin and writes the message stream to stdout; stderr
// gets only what is not for the client program (a usage message). It
// returns the exit status.
func (a *Agent) Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == protocol.OpRun {
		// Not a message stream: the request is the argument, stdin and
		// stdout are the script's (a terminal, with run -i).
		return a.runScript(ctx, args[1], stdin, stdout, stderr)
	}
	if len(args) == 2 && args[0] == protocol.OpPrevSync {
		return a.prevSyncMain(ctx, args[1], stdout, stderr)
	}
	if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, a.usage())
		return protocol.ExitUsage
	}
	name := args[0]
	euid := os.Geteuid
	if a.geteuid != nil {
		euid = a.geteuid
	}
	if a.SaveFingerprint != nil && euid() == 0 {
		// Best effort, after the operation: a failure only costs hashing.
		defer func() { _ = a.SaveFingerprint() }()
	}
	if name == protocol.OpVersion {
		return a.printVersion(stdout, stderr)
	}
	w := protocol.NewWriter(stdout)
	op, ok := a.op(name)
	if !ok {
		_ = w.Fail(&protocol.Error{Code: protocol.CodeUnsupported, Message: fmt.Sprintf("the agent (toppcloud %s) has no operation %q", version.Version, name)})
		fmt.Fprintln(stderr, a.usage())
		return protocol.ExitUsage
	}
	args0 := op.newArgs()
	req, rest, err := protocol.DecodeRequest(stdin, name, args0)
	if err != nil {
		_ = w.Fail(&protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()})
		return protocol.ExitFailed
	}
	if req.Fingerprint != "" {
		// Checked before anything else: the client sends the operation's
		// input without waiting, and another agent must not act on it.
		if fp, err := a.Fingerprint(); err != nil || fp != req.Fingerprint {
			_ = w.Fail(&protocol.Error{Code: protocol.CodeAgentDiffers, Message: fmt.Sprintf(
				"the agent (toppcloud %s, %s) is not the client's (%s): the client replaces it", version.Version, shortFingerprint(fp), shortFingerprint(req.Fingerprint))})
			return protocol.ExitFailed
		}
	}
	if req.Protocol != version.Protocol && !op.AnyProtocol {
		_ = w.Fail(&protocol.Error{Code: protocol.CodeProtocol, Message: fmt.Sprintf(
			"the client speaks protocol %d, this agent (toppcloud %s) protocol %d: connect with the same toppcloud version (the client replaces the agent when they differ)",
			req.Protocol, version.Version, version.Protocol)})
		return protocol.ExitFailed
	}
	if a.RequireRoot && euid() != 0 {
		_ = w.Fail(&protocol.Error{Code: protocol.CodeBadRequest, Message: "the agent must run as root (sudo " + protocol.AgentPath + " node " + name + ")"})
		return protocol.ExitFailed
	}
	c := &Call{Agent: a, Req: req, Out: w, Input: rest, Output: stdout}
	result, err := a.run(ctx, op, c, args0)
	if err != nil {
		if !w.Done() {
			_ = w.Fail(ToProtocolError(ctx, err))
		} else {
			// The result went out before the data that failed: the
			// client sees a cut stream and this status.
			fmt.Fprintln(stderr, "toppcloud node "+name+":", err)
		}
		return protocol.ExitFailed
	}
	if w.Done() {
		return 0
	}
	if err := w.OK(result); err != nil {
		return protocol.ExitFailed
	}
	return 0
}

// run calls op, turning a panic into an error so the client still gets a
// result.
func (a *Agent) run(ctx context.Context, op Op, c *Call, args any) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &protocol.Error{Code: protocol.CodeInternal, Message: fmt.Sprintf("agent %s panicked: %v", op.Name, p),
				Tail: lastLines(string(debug.Stack()), 15)}
		}
	}()
	return op.run(ctx, c, args)
}

func shortFingerprint(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orUnknown(s)
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

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func (a *Agent) usage() string {
	var b strings.Builder
	b.WriteString("usage: toppcloud node OPERATION  (the node agent; the toppcloud client runs it over SSH)\noperations:\n")
	fmt.Fprintf(&b, "  %-14s %s\n", protocol.OpVersion, "print the agent's version as JSON")
	ops := a.ops()
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	for _, o := range ops {
		fmt.Fprintf(&b, "  %-14s %s\n", o.Name, o.Summary)
	}
	return strings.TrimRight(b.String(), "\n")
}

// VersionInfo describes the running agent.
func (a *Agent) VersionInfo() (protocol.VersionInfo, error) {
	fp, err := a.Fingerprint()
	if err != nil {
		return protocol.VersionInfo{}, fmt.Errorf("fingerprint of the agent binary: %w", err)
	}
	return protocol.VersionInfo{Version: version.Version, Protocol: version.Protocol, Fingerprint: fp, GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}, nil
}

func (a *Agent) printVersion(stdout, stderr io.Writer) int {
	v, err := a.VersionInfo()
	if err != nil {
		fmt.Fprintln(stderr, "toppcloud node version:", err)
		return protocol.ExitFailed
	}
	b, _ := json.Marshal(v)
	if _, err := stdout.Write(append(b, '\n')); err != nil {
		return protocol.ExitFailed
	}
	return 0
}

// ToProtocolError turns an operation's error into what the client gets: a
// *protocol.Error as it is; a full disk as CodeDiskFull; a failed command
// as CodeCommandFailed with its output's tail; anything else as
// CodeInternal with its message.
func ToProtocolError(ctx context.Context, err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	var ce *host.CommandError
	hasCmd := errors.As(err, &ce)
	var tail []string
	if hasCmd {
		tail = ce.Tail
	}
	switch {
	case host.IsDiskFull(err):
		return &protocol.Error{Code: protocol.CodeDiskFull, Tail: tail,
			Message: err.Error() + ": the node's disk is full; free space (df -h shows where) and run the command again"}
	case ctx.Err() != nil:
		return &protocol.Error{Code: protocol.CodeInternal, Message: "interrupted: " + err.Error()}
	case hasCmd:
		return &protocol.Error{Code: protocol.CodeCommandFailed, Message: err.Error(), Tail: tail}
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: err.Error()}
}
