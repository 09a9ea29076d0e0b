package nodes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// CreateOptions are what create-node was asked.
type CreateOptions struct {
	// Image and Size are matchers; "" takes the section's or provider's
	// default.
	Image, Size string
	// IfNotExists accepts a node of that name that exists already (and
	// goes on waiting for one created with NoWait).
	IfNotExists bool
	// NoWait returns once the provider accepted the request.
	NoWait bool
	// Setup runs Setup on the node once it answers, with SetupOptions.
	Setup        bool
	SetupOptions SetupOptions
	// EtcHosts adds the node's name to the hosts file (also: the
	// section's set_etc_hosts).
	EtcHosts bool
	// Address and User are the existing provider's server and login.
	Address, User string
	// Timeout bounds each phase of waiting; 0 takes the defaults.
	Timeout time.Duration
}

// Create makes node name with the provider of section, records it at once
// (so a crash leaves nothing destroy-node cannot find), waits until sshd
// answers, pins its host key, and checks that our key logs in and, for a
// user other than root, that sudo needs no password. A node that never
// becomes ready, or an interrupted wait, is destroyed and forgotten. The
// connection that checked the login stays open for Setup.
//
// Everything that can be checked here is checked before the provider is
// asked for anything: the name, the matchers, the section, its keys, and
// that some key could log in.
func (s *Session) Create(ctx context.Context, section, name string, o CreateOptions) error {
	if err := provider.ValidateHostname(name); err != nil {
		return usage.Wrap(err)
	}
	for flag, m := range map[string]string{"--image": o.Image, "--size": o.Size} {
		if m != "" {
			if _, err := provider.ParseMatcher(m); err != nil {
				return usage.Errorf("%s: %v", flag, err)
			}
		}
	}
	if o.Setup && o.NoWait {
		return usage.Errorf("--setup-node needs the node to answer; drop --no-wait")
	}
	p, err := s.OpenProvider(ctx, section)
	if err != nil {
		return err
	}
	forgetsOnly := provider.ForgetsOnly(p.Driver)
	if len(p.AuthorizedKeys) == 0 {
		return usage.Errorf("[provider:%s] in %s has no root_authorized_keys: new nodes would accept no key; add your public key there (toppcloud init-config writes it)", p.Section, s.o.ConfigPath)
	}
	st, err := s.State()
	if err != nil {
		return err
	}

	// Does a node of that name exist already? Ask both our records and
	// the provider (the account may have one we did not make).
	if rec, ok, err := st.Node(name); err != nil {
		return err
	} else if ok {
		if !o.IfNotExists {
			return fmt.Errorf("node %s already exists (provider section %s, id %s); use --if-not-exists to accept that, or destroy-node it first", name, rec.Section, rec.ID)
		}
		s.o.Report.Printf("node %s exists (provider %s, id %s); not creating it", name, rec.Section, rec.ID)
		return s.resume(ctx, rec, o)
	}
	if forgetsOnly {
		if o.Address == "" {
			return usage.Errorf("the existing provider needs --address IP_OR_HOST")
		}
	} else if o.Address != "" || o.User != "" {
		return usage.Errorf("--address and --user are for the existing provider only")
	}
	if err := s.checkLogin(ctx, p, name, userOr(o.User), forgetsOnly); err != nil {
		return err
	}
	existing, err := p.Driver.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range existing {
		if n.Name != name || n.State == provider.StateTerminated {
			continue
		}
		switch {
		case o.IfNotExists && o.Setup:
			// Setting it up needs its host key pinned, which only a
			// node we create (or register by address) gets.
			return fmt.Errorf("node %s exists at the provider (id %s, %s) but this client has no record of it (made from another machine?), so --setup-node cannot set it up: register it with create-node %s --provider SECTION --address IP (a section with provider = existing), then setup-node %s",
				name, n.ID, n.State, name, name)
		case o.IfNotExists:
			s.o.Report.Printf("node %s exists at the provider (id %s, %s); not creating it", name, n.ID, n.State)
			return nil
		}
		return fmt.Errorf("the provider already has a node named %s (id %s, %s); use --if-not-exists, or choose another name", name, n.ID, n.State)
	}

	req := provider.CreateRequest{Name: name, AuthorizedKeys: p.AuthorizedKeys, Address: o.Address, User: o.User}
	if !forgetsOnly {
		imgM, sizeM := p.DefaultImage, p.DefaultSize
		if o.Image != "" {
			imgM = o.Image
		}
		if o.Size != "" {
			sizeM = o.Size
		}
		step := s.o.Report.Step("choose image and size")
		if req.Image, req.Size, err = chooseImageSize(ctx, p.Driver, imgM, sizeM); err != nil {
			step.Fail()
			return err
		}
		step.Done("%s, %s", req.Image.Name, req.Size.Name)
	}

	step := s.o.Report.Step("create node %s", name)
	node, err := p.Driver.CreateNode(ctx, req)
	if err != nil {
		step.Fail()
		return fmt.Errorf("create node %s: %w", name, err)
	}
	// Record at once, so a crash from here on leaves a node that
	// destroy-node can find rather than an orphan.
	rec := state.NodeRecord{
		Name: name, Section: p.Section, ProviderType: p.Info.Name, ID: node.ID,
		PublicIPs: node.PublicIPs, PrivateIPs: node.PrivateIPs,
		SSHUser: node.SSHUser, SSHPort: node.SSHPort, CreatedAt: time.Now().UTC(),
	}
	if !forgetsOnly {
		// What a failed login later names as the keys the node expects.
		rec.AuthorizedKeys = p.AuthorizedKeys
	}
	if err := st.PutNode(rec); err != nil {
		step.Fail()
		s.removeHalfCreated(p, node, name)
		return fmt.Errorf("record node %s: %w", name, err)
	}
	step.Done("id %s", node.ID)

	if o.NoWait {
		s.o.Report.Printf("node %s requested (id %s); its host key will be pinned on first connection", name, node.ID)
		return nil
	}
	rec, err = s.waitAndPin(ctx, p, rec, o.Timeout)
	if err != nil {
		// Ctrl-C or a node that never came up: remove what we made so the
		// account is not left with a half-created node.
		switch {
		case errors.Is(err, context.Canceled):
			s.o.Report.Warnf("interrupted; removing node %s so nothing is left half-created", name)
		case forgetsOnly:
			s.o.Report.Warnf("cannot use %s at %s as user %s; not registering it (check the address, add your key to the server, or pass --user)", name, o.Address, userOr(o.User))
		default:
			s.o.Report.Warnf("node %s did not become ready; destroying it", name)
		}
		s.removeHalfCreated(p, node, name)
		return err
	}
	return s.ready(ctx, p, rec, o)
}

// resume finishes create-node for a node that is recorded already: one
// created with --no-wait is waited for now, and --setup-node sets it up.
func (s *Session) resume(ctx context.Context, rec state.NodeRecord, o CreateOptions) error {
	if rec.Address() != "" || o.NoWait {
		return s.afterCreate(ctx, rec.Name, o)
	}
	p, err := s.OpenProvider(ctx, rec.Section)
	if err != nil {
		return err
	}
	rec, err = s.waitAndPin(ctx, p, rec, o.Timeout)
	if err != nil {
		// The node was made by an earlier command; leave it for the
		// user to retry or destroy.
		return fmt.Errorf("%w (the node stays; run create-node %s --if-not-exists again, or destroy-node %s)", err, rec.Name, rec.Name)
	}
	return s.ready(ctx, p, rec, o)
}

// ready ends a create-node whose node answers: /etc/hosts, the message,
// and --setup-node.
func (s *Session) ready(ctx context.Context, p *Provider, rec state.NodeRecord, o CreateOptions) error {
	if err := s.applyEtcHosts(p, o.EtcHosts, rec); err != nil {
		return err
	}
	st, err := s.State()
	if err != nil {
		return err
	}
	s.o.Report.Printf("node %s is ready: ssh %s@%s (known_hosts: %s)", rec.Name, rec.User(), rec.Address(), st.KnownHostsPath())
	return s.afterCreate(ctx, rec.Name, o)
}

// afterCreate runs what create-node chains to.
func (s *Session) afterCreate(ctx context.Context, name string, o CreateOptions) error {
	if o.Setup {
		return s.Setup(ctx, name, o.SetupOptions)
	}
	return nil
}

func userOr(u string) string {
	if u == "" {
		return "root"
	}
	return u
}

// removeHalfCreated destroys a node whose creation did not finish and
// forgets it. It uses a fresh context: the command's may be cancelled
// (Ctrl-C), and cleaning up is exactly what must still happen then.
func (s *Session) removeHalfCreated(p *Provider, node provider.Node, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Driver.DestroyNode(ctx, node.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
		s.o.Report.Warnf("could not destroy half-created node %s (id %s): %v; destroy it by hand or run: toppcloud destroy-node -p %s %s", name, node.ID, err, p.Section, name)
		return
	}
	st, err := s.State()
	if err == nil {
		_, err = st.DeleteNode(name)
	}
	if err != nil {
		s.o.Report.Warnf("forget node %s: %v", name, err)
	}
}

// waitAndPin waits for the node to answer over SSH, pins its host key and
// updates the record. It also checks that our key logs in, so problems
// with keys show up now and not at setup-node.
func (s *Session) waitAndPin(ctx context.Context, p *Provider, rec state.NodeRecord, timeout time.Duration) (state.NodeRecord, error) {
	step := s.o.Report.Step("wait for node %s", rec.Name)
	wo := provider.WaitOptions{
		ProbeHostKey: sshx.ProbeHostKey,
		Progress: func(pr provider.Progress) {
			if pr.Detail != "" {
				step.Update("%s: %s", pr.Phase, pr.Detail)
			} else {
				step.Update("%s", pr.Phase)
			}
		},
	}
	if timeout > 0 {
		wo.RunningTimeout, wo.AddressTimeout, wo.SSHTimeout = timeout, timeout, timeout
	}
	node, hostKey, err := provider.WaitUntilReady(ctx, p.Driver, rec.ID, wo)
	if err != nil {
		step.Fail()
		return rec, fmt.Errorf("wait for node %s: %w", rec.Name, err)
	}
	rec.PublicIPs, rec.PrivateIPs = node.PublicIPs, node.PrivateIPs
	if node.SSHUser != "" {
		rec.SSHUser = node.SSHUser
	}
	if node.SSHPort != 0 {
		rec.SSHPort = node.SSHPort
	}
	rec.HostKey = hostKey
	st, err := s.State()
	if err != nil {
		step.Fail()
		return rec, err
	}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	if err := kh.Pin(rec.SSHAddr(), hostKey); err != nil {
		step.Fail()
		return rec, fmt.Errorf("pin host key of %s: %w", rec.Name, err)
	}
	if err := st.PutNode(rec); err != nil {
		step.Fail()
		return rec, fmt.Errorf("record node %s: %w", rec.Name, err)
	}
	step.Done("%s, host key %s", rec.Address(), sshx.Fingerprint(hostKey))
	return rec, s.verifyLogin(ctx, rec)
}

// verifyLogin logs in to a node that just answered and runs a command;
// a user other than root must have passwordless sudo, which setup-node
// needs. The connection is kept for the rest of the command.
func (s *Session) verifyLogin(ctx context.Context, rec state.NodeRecord) error {
	step := s.o.Report.Step("log in to %s as %s", rec.Name, rec.User())
	c, err := s.dial(ctx, rec, "", verifyRetry)
	if err != nil {
		step.Fail()
		return err
	}
	if _, err := c.Output(ctx, []string{"true"}, nil); err != nil {
		step.Fail()
		return fmt.Errorf("run a command on %s: %w", rec.Name, err)
	}
	if rec.User() != "root" {
		// setup-node needs root; a non-root login must have passwordless
		// sudo, and it is kinder to say so now than halfway through setup.
		if _, err := c.Output(ctx, []string{"sudo", "-n", "true"}, nil); err != nil {
			step.Fail()
			return fmt.Errorf("%s can log in to %s but cannot run sudo without a password (%v); give it passwordless sudo or use root", rec.SSHUser, rec.Name, err)
		}
	}
	step.Done("%s", c.LoginKey())
	return nil
}

// applyEtcHosts adds the node's name to the hosts file when asked to.
func (s *Session) applyEtcHosts(p *Provider, flag bool, rec state.NodeRecord) error {
	want := flag || p.SetEtcHosts
	if !want || rec.Address() == "" {
		return nil
	}
	if _, err := state.SetHost(s.o.EtcHosts, rec.Address(), rec.Name); err != nil {
		return fmt.Errorf("add %s to %s: %w (run as root, or drop --etc-hosts / set_etc_hosts)", rec.Name, s.o.EtcHosts, err)
	}
	rec.EtcHosts = true
	st, err := s.State()
	if err != nil {
		return err
	}
	if err := st.PutNode(rec); err != nil {
		return err
	}
	s.o.Report.Printf("added %s %s to %s", rec.Address(), rec.Name, s.o.EtcHosts)
	return nil
}
