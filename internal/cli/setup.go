package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/state"
)

// setupDialRetry is how long setup-node and node-info keep trying to
// reach a node that refuses connections (still booting).
const setupDialRetry = 10 * time.Second

// setupOptions are setup-node's flags.
type setupOptions struct {
	user string
}

func (a *App) setupNodeCmd() *cobra.Command {
	var o setupOptions
	cmd := &cobra.Command{
		Use:   "setup-node HOSTNAME",
		Short: "Set a node up: packages, deploy user, firewall, Caddy",
		Long: `Turn a recorded node (create-node made or registered it) running Debian 12+
or Ubuntu 22.04+ into a toppcloud node: install the package set (Caddy,
Python, gunicorn, PHP-FPM, nftables, ...), install this toppcloud as the node
agent at /usr/local/bin/toppcloud, create the deploy user www-mgr with your
public keys, lay out /var/www and /var/lib/toppcloud, make the node secret,
load the firewall (SSH, HTTP and HTTPS only), and start Caddy serving the
"not found" page until something is deployed.

Each step is shown with its time. Running setup-node again changes nothing on
a node that is set up, and finishes one where an earlier run failed.

The node is reached as the user recorded for it (root), or as --user, which
must be able to run sudo without a password. The keys given to www-mgr are
the section's root_authorized_keys, else your ~/.ssh public key.

A client that is not linux/amd64 (or the node's architecture) installs the
Linux binary named by $TOPPCLOUD_AGENT_BINARY instead of itself.`,
		GroupID: "nodes",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.setupNode(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().StringVar(&o.user, "user", "", "log in as `USER` (with passwordless sudo) instead of the recorded user")
	return cmd
}

// agentBinary is the binary installed on nodes. Its checksum is kept in
// ~/.toppcloud/cache, so it is not hashed on every command.
func (a *App) agentBinary() *remote.Binary {
	b := remote.LocalBinary(a.getenv(remote.EnvAgentBinary))
	b.CacheDir = filepath.Join(state.Dir(a.getenv, a.home), "cache", "binaries")
	return b
}

// recordedNode returns the record of a node, or a usage error naming
// what to do.
func (a *App) recordedNode(name string) (*state.Store, state.NodeRecord, error) {
	if err := provider.ValidateHostname(name); err != nil {
		return nil, state.NodeRecord{}, asUsage(err)
	}
	st, err := a.state()
	if err != nil {
		return nil, state.NodeRecord{}, err
	}
	rec, ok, err := st.Node(name)
	if err != nil {
		return nil, rec, err
	}
	if !ok {
		return nil, rec, usagef("no node named %s in %s: create it with create-node, or register a server you have with create-node --provider SECTION --address IP (a section with provider = existing)", name, st.NodesPath())
	}
	if rec.Address() == "" {
		return nil, rec, fmt.Errorf("node %s has no address recorded (created with --no-wait?): run create-node %s --if-not-exists to wait for it", name, name)
	}
	return st, rec, nil
}

// deployKeys are the public keys given to the deploy user: the node's
// config section's root_authorized_keys, else the user's own public key.
func (a *App) deployKeys(ctx context.Context, rec state.NodeRecord) ([]string, error) {
	if f, err := config.Load(a.configFile()); err == nil {
		if sec, err := f.Provider(rec.Section, provider.Registered()); err == nil {
			if keys := sec.AuthorizedKeys(); len(keys) > 0 {
				return keys, nil
			}
		}
	}
	_, keys, err := config.FindPublicKey(a.home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no public key for %s: set root_authorized_keys in [provider:%s] of %s, or create a key with ssh-keygen -t ed25519", protocol.DeployUser, rec.Section, a.configFile())
	}
	if err != nil {
		return nil, asUsage(err)
	}
	return keys, nil
}

// openNode connects to a recorded node as user (the recorded one when
// empty) and brings its agent to this client's version.
func (a *App) openNode(ctx context.Context, rec state.NodeRecord, user string, noInstall bool) (*remote.Node, func(), error) {
	if user != "" {
		rec.SSHUser = user
	}
	step := a.out.Step("connect to %s as %s", rec.Name, userOr(rec.SSHUser))
	c, err := a.dialNode(ctx, rec, setupDialRetry)
	if err != nil {
		step.Fail()
		return nil, nil, err
	}
	step.Done("%s", rec.SSHAddr())
	step = a.out.Step("check agent")
	info, _ := provider.Lookup(rec.ProviderType)
	n, err := remote.Open(ctx, c, remote.Options{
		Binary:    a.agentBinary(),
		LocalUser: localUser(),
		Verbose:   a.verbose,
		NoInstall: noInstall,
		// A node on this machine is reached faster than it decompresses.
		NoCompress: info.Local,
		Progress:   func(s string) { step.Update("%s", s) },
	})
	if err != nil {
		step.Fail()
		c.Close()
		return nil, nil, err
	}
	v := n.Agent()
	if n.Uploaded() {
		step.Done("installed %s (sha256 %s)", v.Version, v.Fingerprint[:12])
	} else {
		step.Done("%s, up to date", v.Version)
	}
	return n, func() { c.Close() }, nil
}

func (a *App) setupNode(ctx context.Context, name string, o setupOptions) error {
	st, rec, err := a.recordedNode(name)
	if err != nil {
		return err
	}
	keys, err := a.deployKeys(ctx, rec)
	if err != nil {
		return err
	}
	n, closeConn, err := a.openNode(ctx, rec, o.user, false)
	if err != nil {
		return err
	}
	defer closeConn()

	args := protocol.SetupArgs{Name: rec.Name, AuthorizedKeys: keys, SSHPort: rec.SSHPort}
	var res protocol.SetupResult
	err = n.Call(ctx, protocol.OpSetup, args, &res, a.streamSteps())
	if err != nil {
		return withTail(fmt.Errorf("setup-node %s: %w", name, err))
	}
	now := time.Now().UTC()
	rec, _, err = st.Node(name) // re-read: another command may have changed it
	if err != nil {
		return err
	}
	rec.SetupAt = &now
	rec.SetupVersion = res.Node.Version
	if err := st.PutNode(rec); err != nil {
		return fmt.Errorf("record that %s is set up: %w", name, err)
	}
	changed := res.Changed
	if n.Uploaded() {
		changed = append([]string{"agent uploaded"}, changed...)
	}
	if len(changed) == 0 {
		a.out.Printf("node %s was already set up: nothing changed", name)
	} else {
		a.out.Printf("node %s is set up (changed: %s)", name, strings.Join(changed, ", "))
	}
	return nil
}

// streamSteps shows an operation's events as step lines and its log
// lines as output: warnings always, the rest with -v.
func (a *App) streamSteps() remote.CallOptions {
	steps := map[string]*Step{}
	return remote.CallOptions{
		Event: func(e protocol.Event) {
			s := steps[e.Step]
			switch e.Status {
			case protocol.StepStart:
				steps[e.Step] = a.out.Step("%s", e.Step)
			case protocol.StepProgress:
				if s != nil {
					s.Update("%s", e.Detail)
				}
			case protocol.StepDone:
				if s != nil {
					s.Done("%s", e.Detail)
				}
			case protocol.StepSkipped:
				if s != nil {
					if e.Detail == "" {
						s.Done("no change")
					} else {
						s.Done("%s; no change", e.Detail)
					}
				}
			case protocol.StepFailed:
				if s != nil {
					s.Fail()
				}
			}
		},
		Log: func(l protocol.Log) {
			switch l.Stream {
			case protocol.StreamWarning:
				a.out.Warnf("%s", l.Text)
				return
			case protocol.StreamApp:
				// The application's own output (update_fetch): always
				// shown, as the original streamed it.
				a.out.Printf("  | %s", l.Text)
				return
			}
			a.out.Debugf("  %s", l.Text)
		},
	}
}

// withTail appends the output tail an agent error carries, so the user
// sees apt's own words.
func withTail(err error) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) || len(pe.Tail) == 0 {
		return err
	}
	var b strings.Builder
	b.WriteString(err.Error())
	b.WriteString("\noutput (last lines):")
	for _, l := range pe.Tail {
		b.WriteString("\n  | ")
		b.WriteString(l)
	}
	return &tailError{msg: b.String(), err: err}
}

type tailError struct {
	msg string
	err error
}

func (e *tailError) Error() string { return e.msg }
func (e *tailError) Unwrap() error { return e.err }
