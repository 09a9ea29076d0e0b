package nodes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// SetupOptions are what setup-node was asked.
type SetupOptions struct {
	// User logs in as this user (passwordless sudo) instead of the
	// recorded one.
	User string
	// Events show the agent's steps and log lines.
	Events remote.CallOptions
	// Site is the node's role in a site (setup-node --site); nil makes
	// it a node of its own.
	Site *protocol.SiteRole
}

// Setup turns recorded node name into a toppcloud node (the agent's setup
// operation: packages, the deploy user with deployKeys, the firewall,
// Caddy) and records when and with which version. It reuses the session's
// connection to the node, such as the one create-node checked.
func (s *Session) Setup(ctx context.Context, name string, o SetupOptions) error {
	rec, err := s.Record(name)
	if err != nil {
		return err
	}
	keys, err := s.deployKeys(ctx, rec)
	if err != nil {
		return err
	}
	tls, err := s.tlsSettings(ctx, rec)
	if err != nil {
		return err
	}
	n, err := s.connect(ctx, rec, ConnectOptions{User: o.User})
	if err != nil {
		return err
	}
	args := protocol.SetupArgs{Name: rec.Name, AuthorizedKeys: keys, SSHPort: rec.SSHPort, TLS: tls, Site: o.Site}
	var res protocol.SetupResult
	if err := n.Call(ctx, protocol.OpSetup, args, &res, o.Events); err != nil {
		return fmt.Errorf("setup-node %s: %w", name, err)
	}
	if err := s.recordSetup(name, res.Node.Version, keys); err != nil {
		return err
	}
	changed := res.Changed
	if n.Uploaded() {
		changed = append([]string{"agent uploaded"}, changed...)
	}
	if len(changed) == 0 {
		s.o.Report.Printf("node %s was already set up: nothing changed", name)
	} else {
		s.o.Report.Printf("node %s is set up (changed: %s)", name, strings.Join(changed, ", "))
	}
	return nil
}

// tlsSettings are how the node gets certificates: its section's acme_*
// settings (read, with acme_ca_root's file, before anything is sent). A
// node whose section is gone keeps what it has (nil).
func (s *Session) tlsSettings(ctx context.Context, rec state.NodeRecord) (*protocol.TLSSettings, error) {
	sec, err := s.section(ctx, rec.Section, false)
	if err != nil || sec == nil {
		return nil, err
	}
	t, err := sec.TLS()
	if err != nil {
		return nil, usage.Wrap(err)
	}
	return &t, nil
}

// recordSetup notes a finished setup in the node's record, read again
// because another command may have changed it meanwhile.
func (s *Session) recordSetup(name, version string, deployKeys []string) error {
	st, err := s.State()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	err = st.Update(func(n *state.Nodes) error {
		rec, ok := n.Get(name)
		if !ok {
			return fmt.Errorf("node %s was forgotten while it was set up", name)
		}
		rec.SetupAt, rec.SetupVersion, rec.DeployKeys = &now, version, deployKeys
		n.Put(rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record that %s is set up: %w", name, err)
	}
	return nil
}

// deployKeys are the public keys given to the deploy user: the node's
// config section's root_authorized_keys, else the user's own public key.
func (s *Session) deployKeys(ctx context.Context, rec state.NodeRecord) ([]string, error) {
	sec, err := s.section(ctx, rec.Section, false)
	if err != nil {
		return nil, err
	}
	if sec != nil {
		if keys := sec.AuthorizedKeys(); len(keys) > 0 {
			return keys, nil
		}
	}
	_, keys, err := config.FindPublicKey(s.o.Home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usage.Errorf("no public key for %s: set root_authorized_keys in [provider:%s] of %s, or create a key with ssh-keygen -t ed25519", protocol.DeployUser, rec.Section, s.o.ConfigPath)
	}
	if err != nil {
		return nil, usage.Wrap(err)
	}
	return keys, nil
}
