// Package nodes is the client side of a node's life: create it through a
// provider, record it, wait until it answers, pin its host key, check that
// our key logs in, undo a half-made node, set it up, connect to it, stop,
// start and destroy it. The CLI turns flags into calls on a Session and
// prints what the Session reports.
//
// A Session serves one command. It reads the config file and opens the
// state directory once, opens each provider section once, and keeps the
// SSH connections it makes, so create-node --setup-node checks the login
// and sets the node up over one connection.
package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// Reporter shows a session's progress to the user: step lines with their
// time, notes and warnings. The CLI's output implements it.
type Reporter interface {
	Step(format string, args ...any) Step
	Printf(format string, args ...any)
	Warnf(format string, args ...any)
}

// Step is one named piece of a long operation.
type Step interface {
	Update(format string, args ...any)
	Done(format string, args ...any)
	Fail()
}

// Options are what a Session takes from the command line and the
// environment.
type Options struct {
	// ConfigPath is the config file (--config, $TOPPCLOUD_CONFIG or
	// ~/.toppcloud.conf).
	ConfigPath string
	// FirstRun creates a missing config file by asking the user. Nil
	// means there is nobody to ask: a command that needs the file says
	// how to write it instead.
	FirstRun func(ctx context.Context, path string) error
	// StateDir is the client's state directory (state.Dir).
	StateDir string
	// Providers are the provider types config sections may name.
	Providers *provider.Registry
	// Getenv reads the environment: provider options' variables and
	// TOPPCLOUD_SSH_KEY.
	Getenv func(string) string
	// Home is the user's home directory, where ~/.ssh is.
	Home string
	// SSHKey is --ssh-key: the private key to log in to nodes with.
	SSHKey string
	// HTTPClient carries every provider API call; Log receives drivers'
	// diagnostics.
	HTTPClient *http.Client
	Log        io.Writer
	// EtcHosts is the hosts file create-node and update may edit.
	EtcHosts string
	// AgentBinary is $TOPPCLOUD_AGENT_BINARY: the Linux toppcloud
	// installed on nodes; "" means this one.
	AgentBinary string
	// LocalUser ("you@laptop") and Verbose go into every agent request.
	LocalUser string
	Verbose   int
	// Report hears the session's progress.
	Report Reporter
}

// Session is one command's view of the client's nodes. It is not safe
// for concurrent use; Close it when the command ends.
type Session struct {
	o Options

	cfg       *config.File
	cfgLoaded bool
	st        *state.Store

	sections  map[string]*config.ProviderSection
	providers map[string]*Provider
	conns     map[connKey]*sshx.Client
	binary    *remote.Binary
}

// New returns a session; nothing is read until a method needs it.
func New(o Options) *Session {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Providers == nil {
		o.Providers = provider.Registered()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	return &Session{
		o:         o,
		sections:  map[string]*config.ProviderSection{},
		providers: map[string]*Provider{},
		conns:     map[connKey]*sshx.Client{},
	}
}

// Close closes the session's SSH connections.
func (s *Session) Close() error {
	var errs []error
	for k, c := range s.conns {
		errs = append(errs, c.Close())
		delete(s.conns, k)
	}
	return errors.Join(errs...)
}

// State opens the state directory, once.
func (s *Session) State() (*state.Store, error) {
	if s.st != nil {
		return s.st, nil
	}
	st, err := state.Open(s.o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", s.o.StateDir, err)
	}
	s.st = st
	return st, nil
}

// ConfigPath is the config file the session reads.
func (s *Session) ConfigPath() string { return s.o.ConfigPath }

// Config returns the config file, read once; a missing one is created by
// Options.FirstRun, or is a usage error saying how to create it.
func (s *Session) Config(ctx context.Context) (*config.File, error) { return s.config(ctx, true) }

// config reads the config file, once, and shows its warnings. A missing
// file is nil when !need; when need, it is created by FirstRun, or is a
// usage error saying how to create it. A file that cannot be read or
// parsed is a usage error naming the line.
func (s *Session) config(ctx context.Context, need bool) (*config.File, error) {
	if s.cfgLoaded && (s.cfg != nil || !need) {
		return s.cfg, nil
	}
	path := s.o.ConfigPath
	f, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.cfgLoaded = true
		if !need {
			return nil, nil
		}
		if s.o.FirstRun == nil {
			return nil, usage.Errorf("%s does not exist and there is no terminal to ask for its contents; create it with: toppcloud init-config --provider TYPE [--username U] [--secret-file F] [--key PUBKEY]", path)
		}
		s.o.Report.Printf("%s does not exist; let's create it.", path)
		if err := s.o.FirstRun(ctx, path); err != nil {
			return nil, err
		}
		f, err = config.Load(path)
	}
	if err != nil {
		return nil, usage.Wrap(err)
	}
	for _, w := range f.Warnings {
		s.o.Report.Warnf("%s", w)
	}
	s.cfg, s.cfgLoaded = f, true
	return f, nil
}

// section returns [provider:NAME], checked, once, and shows its warnings
// (a secret others can read, keys no one uses). When !need, a missing file
// or section is nil: commands on a recorded node work without them.
func (s *Session) section(ctx context.Context, name string, need bool) (*config.ProviderSection, error) {
	if sec, ok := s.sections[name]; ok && (sec != nil || !need) {
		return sec, nil
	}
	f, err := s.config(ctx, need)
	if err != nil || f == nil {
		return nil, err
	}
	sec, err := f.Provider(name, s.o.Providers)
	var missing *config.MissingProviderError
	if !need && errors.As(err, &missing) {
		s.sections[name] = nil
		return nil, nil
	}
	if err != nil {
		return nil, usage.Wrap(err)
	}
	info, _ := s.o.Providers.Lookup(sec.Type)
	for _, w := range append(sec.Warnings, sec.UnknownKeyWarnings(info)...) {
		s.o.Report.Warnf("%s", w)
	}
	s.sections[name] = sec
	return sec, nil
}

// agentBinary is the binary installed on nodes. Its checksum is kept in
// the state directory's cache, so it is not hashed on every command.
func (s *Session) agentBinary() (*remote.Binary, error) {
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	if s.binary == nil {
		s.binary = remote.LocalBinary(s.o.AgentBinary)
		s.binary.CacheDir = st.CachePath("binaries")
	}
	return s.binary, nil
}

// ManifestCache is where update keeps its hash cache.
func (s *Session) ManifestCache() (string, error) {
	st, err := s.State()
	if err != nil {
		return "", err
	}
	return st.CachePath("manifests"), nil
}

// Known reports whether the client has a record of a node named name
// (deploy.Nodes).
func (s *Session) Known(name string) (bool, error) {
	st, err := s.State()
	if err != nil {
		return false, err
	}
	_, ok, err := st.Node(name)
	return ok, err
}
