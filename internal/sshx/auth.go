package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Auth says which keys to offer when logging in. Keys are offered in this
// order: Signers, KeyFiles, then the agent's keys, skipping duplicates.
// Files come before the agent because the node usually has exactly the key
// toppcloud gave it at creation, and sshd stops after a few refused keys.
type Auth struct {
	// KeyFiles are private key files. Files that do not exist are skipped,
	// so DefaultKeyFiles can list candidates. An encrypted file is used
	// through the agent (which must hold it); toppcloud never asks for a
	// passphrase.
	KeyFiles []string
	// UseAgent offers the keys of the ssh-agent at AgentSocket.
	UseAgent bool
	// AgentSocket is the agent's unix socket; empty means $SSH_AUTH_SOCK.
	AgentSocket string
	// Signers are keys already in memory: generated keys and tests.
	Signers []ssh.Signer
}

// DefaultKeyFiles returns the private key files toppcloud looks for under
// home, in order: its own key first, then OpenSSH's usual names.
func DefaultKeyFiles(home string) []string {
	dir := filepath.Join(home, ".ssh")
	return []string{
		filepath.Join(dir, "toppcloud_ed25519"),
		filepath.Join(dir, "id_ed25519"),
		filepath.Join(dir, "id_ecdsa"),
		filepath.Join(dir, "id_rsa"),
	}
}

// AuthError says login failed, or could not even be tried because no key
// was usable. It names what was offered and anything found wrong on the
// way, never key material.
type AuthError struct {
	User, Host string
	// Tried lists the key sources offered ("~/.ssh/id_ed25519",
	// "ssh-agent (2 keys)").
	Tried []string
	// Notes are problems found while loading keys ("~/.ssh/id_rsa is
	// encrypted: ...").
	Notes []string
	// Offered are the SHA256 fingerprints of the keys offered, in order,
	// so a caller can compare them with the keys the node was given.
	Offered []string
}

func (e *AuthError) Error() string {
	var msg string
	if len(e.Tried) == 0 {
		msg = fmt.Sprintf("no usable SSH key to log in as %s@%s", e.User, e.Host)
		if len(e.Notes) == 0 {
			msg += ": create one with ssh-keygen -t ed25519, or start ssh-agent and add a key"
		}
	} else {
		msg = fmt.Sprintf("authentication as %s@%s failed: the node does not accept your key (tried: %s)",
			e.User, e.Host, strings.Join(e.Tried, ", "))
	}
	if len(e.Notes) > 0 {
		msg += "; " + strings.Join(e.Notes, "; ")
	}
	return msg
}

// Check loads the keys as Dial would and, when none is usable, returns the
// *AuthError Dial would, without connecting anywhere: a command can say so
// before it does anything remote. user and host are for the message.
func (a Auth) Check(user, host string) error {
	ks, err := a.load()
	if err != nil {
		return err
	}
	ks.Close()
	if len(ks.signers) == 0 {
		return &AuthError{User: user, Host: host, Tried: ks.tried, Notes: ks.notes}
	}
	return nil
}

// keySet is the loaded form of Auth for one Dial.
type keySet struct {
	signers []ssh.Signer
	offered []string // fingerprints of signers
	used    usedKey  // which of them logged in
	tried   []string
	notes   []string
	agent   io.Closer // the agent connection, closed with the client
}

func (k *keySet) Close() error {
	if k.agent != nil {
		return k.agent.Close()
	}
	return nil
}

// load reads the key files and connects to the agent. Problems that leave
// other keys usable become notes; only an unreadable existing file (other
// than encrypted) is an error.
func (a Auth) load() (*keySet, error) {
	ks := &keySet{}
	seen := map[string]bool{}
	add := func(s ssh.Signer, source string) bool {
		id := string(s.PublicKey().Marshal())
		if seen[id] {
			return false
		}
		seen[id] = true
		fp := ssh.FingerprintSHA256(s.PublicKey())
		ks.signers = append(ks.signers, ks.used.watch(s, source+" ("+fp+")"))
		ks.offered = append(ks.offered, fp)
		return true
	}

	for _, s := range a.Signers {
		add(s, "a key in memory")
	}
	if len(a.Signers) > 0 {
		ks.tried = append(ks.tried, plural(len(a.Signers), "key", "keys")+" in memory")
	}

	// Ask the agent first, to know which encrypted files it covers.
	var agentSigners []ssh.Signer
	if a.UseAgent {
		sock := a.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			ks.notes = append(ks.notes, "ssh-agent not used: SSH_AUTH_SOCK is not set")
		} else if conn, err := net.Dial("unix", sock); err != nil {
			ks.notes = append(ks.notes, fmt.Sprintf("ssh-agent not reachable at %s: %v", sock, errors.Unwrap(err)))
		} else {
			ks.agent = conn
			agentSigners, err = agent.NewClient(conn).Signers()
			if err != nil {
				ks.notes = append(ks.notes, fmt.Sprintf("ssh-agent: %v", err))
			}
		}
	}
	inAgent := func(pub ssh.PublicKey) bool {
		for _, s := range agentSigners {
			if pub != nil && bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
				return true
			}
		}
		return false
	}

	for _, path := range a.KeyFiles {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			ks.Close()
			return nil, fmt.Errorf("read SSH key %s: %w", path, err)
		}
		s, err := ssh.ParsePrivateKey(data)
		var pme *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pme) && inAgent(pme.PublicKey):
			// The agent holds it; its keys are offered below.
		case errors.As(err, &pme):
			ks.notes = append(ks.notes, fmt.Sprintf("%s is encrypted and toppcloud does not ask for passphrases: add it to ssh-agent (ssh-add %s) and make sure SSH_AUTH_SOCK is set", showPath(path), showPath(path)))
		case err != nil:
			// The parser's message names the format problem, not the key.
			ks.notes = append(ks.notes, fmt.Sprintf("%s is not a usable private key: %v", showPath(path), err))
		default:
			if add(s, showPath(path)) {
				ks.tried = append(ks.tried, showPath(path))
			}
		}
	}

	for _, s := range agentSigners {
		add(s, "ssh-agent")
	}
	if len(agentSigners) > 0 {
		ks.tried = append(ks.tried, "ssh-agent ("+plural(len(agentSigners), "key", "keys")+")")
	} else if ks.agent != nil {
		ks.notes = append(ks.notes, "ssh-agent holds no keys")
	}
	return ks, nil
}

// showPath abbreviates the home directory to ~ for messages.
func showPath(p string) string {
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		if rel, ok := strings.CutPrefix(p, home+string(filepath.Separator)); ok {
			return "~/" + rel
		}
	}
	return p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// usedKey learns which key logged in. x/crypto asks the server whether a
// key is acceptable before it signs with it, so the key that signed last
// is the one the server accepted.
type usedKey struct {
	mu   sync.Mutex
	what string
}

func (u *usedKey) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.what
}

func (u *usedKey) note(what string) {
	u.mu.Lock()
	u.what = what
	u.mu.Unlock()
}

// watch returns s reporting its signatures to u as what. Only plain
// Signers and MultiAlgorithmSigners (key files, keys in memory) are
// wrapped, keeping the signature algorithms they offer; others (ssh-agent
// keys are AlgorithmSigners, for which x/crypto picks the algorithms
// itself) are returned as they are and named by what only when they are
// found to be the one that logged in.
func (u *usedKey) watch(s ssh.Signer, what string) ssh.Signer {
	w := watchedSigner{s, func() { u.note(what) }}
	switch s := s.(type) {
	case ssh.MultiAlgorithmSigner:
		return watchedMultiSigner{w, s}
	case ssh.AlgorithmSigner:
		return s
	default:
		return w
	}
}

type watchedSigner struct {
	ssh.Signer
	note func()
}

func (w watchedSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	w.note()
	return w.Signer.Sign(rand, data)
}

// watchedMultiSigner keeps the algorithms of a MultiAlgorithmSigner.
type watchedMultiSigner struct {
	watchedSigner
	multi ssh.MultiAlgorithmSigner
}

func (w watchedMultiSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	w.note()
	return w.multi.SignWithAlgorithm(rand, data, algorithm)
}

func (w watchedMultiSigner) Algorithms() []string { return w.multi.Algorithms() }
