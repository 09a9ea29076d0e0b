package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// EnvSSHKey names the environment variable that names the private key to
// log in to nodes with, below --ssh-key and above ssh_key in the config.
const EnvSSHKey = "TOPPCLOUD_SSH_KEY"

// LoginKey is the private key named for logging in to the nodes of a
// section, and the setting that named it.
type LoginKey struct {
	// Path is the private key file; "" when no setting names one, and
	// the usual keys are offered (sshx.DefaultKeyFiles, then ssh-agent).
	Path string `json:"path,omitempty"`
	// From says which setting named it: "--ssh-key", "$TOPPCLOUD_SSH_KEY"
	// or "ssh_key of [provider:NAME] at FILE:LINE" (or of [DEFAULT]),
	// with " (the private half of X.pub)" when the setting named the
	// public half.
	From string `json:"from,omitempty"`
}

// String describes the key for people.
func (k LoginKey) String() string {
	if k.Path == "" {
		return "no key named (--ssh-key, $" + EnvSSHKey + ", ssh_key): the first of ~/.ssh/{toppcloud_ed25519,id_ed25519,id_ecdsa,id_rsa} and ssh-agent's keys the node accepts"
	}
	return k.Path + " (from " + k.From + ")"
}

// LoginKey returns the key toppcloud logs in to the nodes of section
// with. The first setting that names one wins:
//
//  1. --ssh-key (Options.SSHKey)
//  2. $TOPPCLOUD_SSH_KEY
//  3. ssh_key in [provider:section] of the config file
//  4. ssh_key in its [DEFAULT] section
//
// init-config and the first-run questions write ssh_key when the public
// key they install has its private half beside it. A setting that names
// X.pub means X. The named key is offered first; the usual keys follow.
// A named file that does not exist is a usage error.
func (s *Session) LoginKey(ctx context.Context, section string) (LoginKey, error) {
	// The section is read even when a flag decides, so that a broken
	// config file stops the command before it connects anywhere.
	sec, err := s.section(ctx, section, false)
	if err != nil {
		return LoginKey{}, err
	}
	var k LoginKey
	switch {
	case s.o.SSHKey != "":
		k = LoginKey{Path: config.ExpandHome(s.o.SSHKey, s.o.Home), From: "--ssh-key"}
	case s.o.Getenv(EnvSSHKey) != "":
		// A ~ the shell did not expand (the config expands its own).
		k = LoginKey{Path: config.ExpandHome(s.o.Getenv(EnvSSHKey), s.o.Home), From: "$" + EnvSSHKey}
	case sec != nil:
		path, where, err := sec.SSHKey()
		if err != nil {
			return LoginKey{}, usage.Wrap(err)
		}
		k = LoginKey{Path: path, From: where}
	}
	if k.Path == "" {
		return k, nil
	}
	if strings.HasSuffix(k.Path, ".pub") {
		priv := config.PrivateKeyBeside(k.Path)
		if priv == "" {
			return LoginKey{}, usage.Errorf("%s names %s, a public key, and its private half is not beside it: name the private key", k.From, k.Path)
		}
		k.From += " (the private half of " + filepath.Base(k.Path) + ")"
		k.Path = priv
	}
	fi, err := os.Stat(k.Path)
	switch {
	case err != nil:
		return LoginKey{}, usage.Errorf("%s names the SSH key %s: %v", k.From, k.Path, errors.Unwrap(err))
	case !fi.Mode().IsRegular():
		return LoginKey{}, usage.Errorf("%s names %s, which is not a file", k.From, k.Path)
	}
	return k, nil
}

// auth is what toppcloud offers when it logs in: the named key first, then
// the usual key files, then ssh-agent's keys.
func (s *Session) auth(k LoginKey) sshx.Auth {
	files := sshx.DefaultKeyFiles(s.o.Home)
	if k.Path != "" {
		files = append([]string{k.Path}, files...)
	}
	return sshx.Auth{KeyFiles: files, UseAgent: true}
}

// checkLogin makes sure some key can be offered to log in to new nodes of
// p, before create-node makes one that nothing could log in to.
func (s *Session) checkLogin(ctx context.Context, p *Provider, name, user string, registers bool) error {
	k, err := s.LoginKey(ctx, p.Section)
	if err != nil {
		return err
	}
	var ae *sshx.AuthError
	if err := s.auth(k).Check(user, name); errors.As(err, &ae) {
		le := &LoginError{
			Node: name, Auth: ae, Key: k, Expected: p.AuthorizedKeys,
			ExpectedFrom: "would be given (root_authorized_keys of [provider:" + p.Section + "])",
			Section:      p.Section, ConfigPath: s.o.ConfigPath,
		}
		if registers {
			le.Expected, le.ExpectedFrom = nil, "accepts what its own authorized_keys holds for "+user
		}
		return usage.Wrap(le)
	} else if err != nil {
		return err
	}
	return nil
}

// LoginError is a login to a node that failed for want of the right key.
// Besides what was offered, it names the keys the node expects, which key
// setting was in force, and how to name another.
type LoginError struct {
	// Node is the node's name.
	Node string
	Auth *sshx.AuthError
	// Key is the key named by a setting, if any.
	Key LoginKey
	// Expected are the public keys (authorized_keys lines) the node was
	// given for the login user, as far as the client knows, and
	// ExpectedFrom says where they come from.
	Expected     []string
	ExpectedFrom string
	// Section and ConfigPath are for the advice.
	Section, ConfigPath string
}

func (e *LoginError) Error() string {
	var b strings.Builder
	b.WriteString(e.Auth.Error())
	if len(e.Auth.Offered) > 0 {
		fmt.Fprintf(&b, "\n  offered: %s", strings.Join(e.Auth.Offered, ", "))
	}
	if len(e.Expected) == 0 {
		fmt.Fprintf(&b, "\n  %s %s", e.Node, e.ExpectedFrom)
	} else {
		descs := make([]string, len(e.Expected))
		matched := false
		for i, line := range e.Expected {
			descs[i] = describeKey(line)
			for _, fp := range e.Auth.Offered {
				matched = matched || fp == sshx.Fingerprint(line)
			}
		}
		fmt.Fprintf(&b, "\n  %s %s: %s", e.Node, e.ExpectedFrom, strings.Join(descs, ", "))
		if matched {
			b.WriteString("\n  one of them was offered and refused: the node's authorized_keys no longer holds it, or the login user differs")
		}
	}
	if e.Key.Path != "" {
		fmt.Fprintf(&b, "\n  the key named by %s is %s", e.Key.From, e.Key.Path)
	}
	fmt.Fprintf(&b, "\n  to log in with another private key, name it: --ssh-key PATH, %s=PATH, or ssh_key = PATH in [provider:%s] of %s",
		EnvSSHKey, e.Section, e.ConfigPath)
	return b.String()
}

// Unwrap gives the *sshx.AuthError.
func (e *LoginError) Unwrap() error { return e.Auth }

// describeKey shows a public key line as its fingerprint and comment.
func describeKey(line string) string {
	fp := sshx.Fingerprint(line)
	if fp == "" {
		return "(not a public key)"
	}
	if f := strings.Fields(line); len(f) > 2 {
		return fp + " (" + strings.Join(f[2:], " ") + ")"
	}
	return fp
}

// expectedKeys are the public keys a node was given for user, and where
// they come from, for a LoginError.
func (s *Session) expectedKeys(ctx context.Context, rec state.NodeRecord, user string) ([]string, string) {
	switch {
	case user == protocol.DeployUser && len(rec.DeployKeys) > 0:
		return rec.DeployKeys, "was given for " + user + " by setup-node"
	case user == rec.User() && len(rec.AuthorizedKeys) > 0:
		return rec.AuthorizedKeys, "was given at creation"
	case user != protocol.DeployUser && user != rec.User():
		return nil, fmt.Sprintf("was given keys for %s, not %s; this client knows nothing of %s's keys", rec.User(), user, user)
	}
	why := "has no record here of the keys it was given (registered with create-node --address, set up from another machine, or by an older toppcloud)"
	if sec, err := s.section(ctx, rec.Section, false); err == nil && sec != nil && len(sec.AuthorizedKeys()) > 0 {
		return sec.AuthorizedKeys(), why + "; [provider:" + rec.Section + "] gives new nodes"
	}
	return nil, why
}
