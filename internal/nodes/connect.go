package nodes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// connectRetry is how long Connect keeps trying to reach a node that
// refuses connections (still booting).
const connectRetry = 10 * time.Second

// verifyRetry is how long create-node keeps trying to log in to a node
// whose sshd has just answered.
const verifyRetry = 30 * time.Second

// connKey names a connection a session keeps.
type connKey struct{ node, user string }

// Record returns the record of node name: a usage error when the name is
// invalid or unknown, an error naming what to do when it has no address.
func (s *Session) Record(name string) (state.NodeRecord, error) {
	if err := provider.ValidateHostname(name); err != nil {
		return state.NodeRecord{}, usage.Wrap(err)
	}
	st, err := s.State()
	if err != nil {
		return state.NodeRecord{}, err
	}
	rec, ok, err := st.Node(name)
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, usage.Errorf("no node named %s in %s: create it with create-node, or register a server you have with create-node --provider SECTION --address IP (a section with provider = existing)", name, st.NodesPath())
	}
	if rec.Address() == "" {
		return rec, fmt.Errorf("node %s has no address recorded (created with --no-wait?): run create-node %s --if-not-exists to wait for it", name, name)
	}
	return rec, nil
}

// dial connects to a recorded node as user (the recorded user when ""),
// offering the section's login key and refusing any host key but the
// pinned one. A connection the session has to the node as that user is
// reused. A refused login is a *LoginError.
func (s *Session) dial(ctx context.Context, rec state.NodeRecord, user string, retryFor time.Duration) (*sshx.Client, error) {
	if user == "" {
		user = rec.User()
	}
	key := connKey{rec.Name, user}
	if c, ok := s.conns[key]; ok {
		return c, nil
	}
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	lk, err := s.LoginKey(ctx, rec.Section)
	if err != nil {
		return nil, err
	}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	policy := kh.Strict()
	if rec.HostKey == "" {
		// Created with --no-wait, or recorded by an older toppcloud:
		// pin what the node shows the first time.
		policy = kh.PinOnFirstUse()
	}
	c, err := sshx.Dial(ctx, sshx.Config{
		Addr:     rec.SSHAddr(),
		User:     user,
		Auth:     s.auth(lk),
		HostKeys: policy,
		RetryFor: retryFor,
	})
	var ae *sshx.AuthError
	if errors.As(err, &ae) {
		expected, from := s.expectedKeys(ctx, rec, user)
		return nil, &LoginError{Node: rec.Name, Auth: ae, Key: lk, Expected: expected, ExpectedFrom: from, Section: rec.Section, ConfigPath: s.o.ConfigPath}
	}
	if err != nil {
		return nil, err
	}
	s.conns[key] = c
	return c, nil
}

// ConnectOptions say how Connect logs in.
type ConnectOptions struct {
	// User logs in as this user (passwordless sudo) instead of the
	// recorded one.
	User string
	// NoInstall makes a node without an agent an error instead of
	// installing one (node-info).
	NoInstall bool
	// Deferred leaves the agent unchecked until an operation called with
	// CallCurrent is refused (see remote.Deferred): for update, whose one
	// operation names the client's agent itself.
	Deferred bool
}

// Connect connects to node name and brings its agent to this client's
// version, reporting both as steps.
func (s *Session) Connect(ctx context.Context, name string, o ConnectOptions) (*remote.Node, state.NodeRecord, error) {
	rec, err := s.Record(name)
	if err != nil {
		return nil, rec, err
	}
	n, err := s.connect(ctx, rec, o)
	return n, rec, err
}

func (s *Session) connect(ctx context.Context, rec state.NodeRecord, o ConnectOptions) (*remote.Node, error) {
	user := o.User
	if user == "" {
		user = rec.User()
	}
	step := s.o.Report.Step("connect to %s as %s", rec.Name, user)
	reused := s.conns[connKey{rec.Name, user}] != nil
	c, err := s.dial(ctx, rec, user, connectRetry)
	if err != nil {
		step.Fail()
		return nil, err
	}
	if reused {
		step.Done("%s, already connected", rec.SSHAddr())
	} else {
		step.Done("%s", rec.SSHAddr())
	}
	bin, err := s.agentBinary()
	if err != nil {
		return nil, err
	}
	info, _ := s.o.Providers.Lookup(rec.ProviderType)
	opts := remote.Options{
		Binary:    bin,
		LocalUser: s.o.LocalUser,
		Verbose:   s.o.Verbose,
		NoInstall: o.NoInstall,
		// A node on this machine is reached faster than it decompresses,
		// unless its link is made slower (bench/linkshape does).
		NoCompress: info.Local && fastLink(ctx, c),
	}
	if o.Deferred {
		// The step appears only if the agent has to be checked.
		var step Step
		opts.Progress = func(p string) {
			if step == nil {
				step = s.o.Report.Step("check agent")
			}
			step.Update("%s", p)
		}
		opts.Checked = func(n *remote.Node, err error) {
			switch {
			case step == nil:
			case err != nil:
				step.Fail()
			case n.Uploaded():
				step.Done("installed %s (sha256 %s)", n.Agent().Version, n.Agent().Fingerprint[:12])
			default:
				step.Done("%s, up to date", n.Agent().Version)
			}
		}
		return remote.Deferred(c, opts), nil
	}
	step = s.o.Report.Step("check agent")
	opts.Progress = func(p string) { step.Update("%s", p) }
	n, err := remote.Open(ctx, c, opts)
	if err != nil {
		step.Fail()
		return nil, err
	}
	v := n.Agent()
	if n.Uploaded() {
		step.Done("installed %s (sha256 %s)", v.Version, v.Fingerprint[:12])
	} else {
		step.Done("%s, up to date", v.Version)
	}
	return n, nil
}

// ConnectDeploy connects to node name as the deploy user, as every app
// command does, and brings its agent up to date.
func (s *Session) ConnectDeploy(ctx context.Context, name string) (*remote.Node, state.NodeRecord, error) {
	return s.connectDeploy(ctx, name, false)
}

// ConnectDeployDeferred is ConnectDeploy leaving the agent's check to the
// first CallCurrent (ConnectOptions.Deferred).
func (s *Session) ConnectDeployDeferred(ctx context.Context, name string) (*remote.Node, state.NodeRecord, error) {
	return s.connectDeploy(ctx, name, true)
}

func (s *Session) connectDeploy(ctx context.Context, name string, deferred bool) (*remote.Node, state.NodeRecord, error) {
	rec, err := s.Record(name)
	if err != nil {
		return nil, rec, err
	}
	n, err := s.connect(ctx, rec, ConnectOptions{User: protocol.DeployUser, Deferred: deferred})
	if err != nil && rec.SetupAt == nil && !usage.Is(err) {
		err = fmt.Errorf("%w (deploys log in as %s, which setup-node creates: has %s been set up? run toppcloud setup-node %s)", err, protocol.DeployUser, name, name)
	}
	return n, rec, err
}

// Login says how toppcloud logs in to a recorded node as user (the
// recorded user when ""): the user, the address, and the named key.
type Login struct {
	User string   `json:"user"`
	Addr string   `json:"addr"`
	Key  LoginKey `json:"key"`
	// Used is the key that logged in on this session's connection, if
	// there is one ("~/keys/deploy (SHA256:...)").
	Used string `json:"used,omitempty"`
}

// LoginOf returns how toppcloud logs in to rec as user.
func (s *Session) LoginOf(ctx context.Context, rec state.NodeRecord, user string) (Login, error) {
	if user == "" {
		user = rec.User()
	}
	k, err := s.LoginKey(ctx, rec.Section)
	if err != nil {
		return Login{}, err
	}
	l := Login{User: user, Addr: rec.SSHAddr(), Key: k}
	if c := s.conns[connKey{rec.Name, user}]; c != nil {
		l.Used = c.LoginKey()
	}
	return l, nil
}

// localRTT is the round-trip time under which a node's link counts as one
// on this machine: the agent goes up raw, as compressing it (~56 MB,
// 0.3 s at zstd's fastest) costs more than the bytes it saves there.
const localRTT = 5 * time.Millisecond

// fastLink measures c's round trip: the shortest of three SSH
// keepalives, as one may wait for a busy machine's scheduler.
func fastLink(ctx context.Context, c *sshx.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for range 3 {
		d, err := c.RTT(ctx)
		if err != nil {
			return false
		}
		if d < localRTT {
			return true
		}
	}
	return false
}
