package sshx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// KnownHosts is a known_hosts file in OpenSSH format holding pinned host
// keys, one line per host: "1.2.3.4 ssh-ed25519 AAAA..." for port 22,
// "[1.2.3.4]:2222 ssh-ed25519 AAAA..." otherwise. Users can point ssh at it
// with `ssh -o UserKnownHostsFile=PATH`. Lines toppcloud did not write
// (comments, hashed or wildcard entries, markers) are kept as they are.
//
// Changes are locked read-modify-writes with atomic replacement, so
// concurrent toppcloud processes never lose each other's entries.
type KnownHosts struct {
	Path string
}

// HostKeyPolicy decides whether a server's host key is accepted. Make one
// with KnownHosts.Strict, KnownHosts.PinOnFirstUse or FixedHostKey; the zero
// value accepts nothing.
type HostKeyPolicy struct {
	known         *KnownHosts
	pinOnFirstUse bool
	fixed         ssh.PublicKey
	err           error // from FixedHostKey with a bad key line
}

// Strict accepts only a key already pinned for the host; an unknown host is
// refused with *UnknownHostError.
func (k KnownHosts) Strict() HostKeyPolicy {
	return HostKeyPolicy{known: &k}
}

// PinOnFirstUse accepts a pinned key, and pins the key of a host that has
// none yet. Use it for a server reached for the first time (an existing
// server being registered), not for routine connections.
func (k KnownHosts) PinOnFirstUse() HostKeyPolicy {
	return HostKeyPolicy{known: &k, pinOnFirstUse: true}
}

// FixedHostKey accepts exactly the key in keyLine (authorized_keys format),
// for any host: for a key probed moments ago and not stored yet, and for
// tests. With an unparsable keyLine, Dial fails before connecting.
func FixedHostKey(keyLine string) HostKeyPolicy {
	k, err := parseKeyLine(keyLine)
	if err != nil {
		return HostKeyPolicy{err: fmt.Errorf("fixed host key: %w", err)}
	}
	return HostKeyPolicy{fixed: k}
}

// UnknownHostError is returned under a strict policy for a host with no
// pinned key.
type UnknownHostError struct {
	Host string // as in known_hosts: "1.2.3.4" or "[1.2.3.4]:2222"
	Got  string // the key the server presented, authorized_keys format
	File string
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("host key of %s is not pinned in %s (the server presents %s %s); "+
		"toppcloud pins a node's key when it creates or registers the node: register the server again, "+
		"or check the fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it",
		e.Host, e.File, keyType(e.Got), Fingerprint(e.Got))
}

// HostKeyMismatchError is returned when a server presents a key different
// from the one pinned for it: either the server was rebuilt or someone is
// intercepting the connection.
type HostKeyMismatchError struct {
	Host string   // as in known_hosts: "1.2.3.4" or "[1.2.3.4]:2222"
	Want []string // the pinned keys, authorized_keys format
	Got  string   // the key the server presented
	// File and Lines locate the pinned entries, for the message.
	File  string
	Lines []int
}

func (e *HostKeyMismatchError) Error() string {
	var want []string
	for _, w := range e.Want {
		want = append(want, keyType(w)+" "+Fingerprint(w))
	}
	where := e.File
	if len(e.Lines) > 0 {
		var ls []string
		for _, l := range e.Lines {
			ls = append(ls, fmt.Sprint(l))
		}
		where = fmt.Sprintf("line %s of %s", strings.Join(ls, ", "), e.File)
	}
	return fmt.Sprintf("HOST KEY MISMATCH for %s: pinned %s, but the server presents %s %s. "+
		"Someone may be intercepting the connection. If the server was really rebuilt, remove %s and connect again",
		e.Host, strings.Join(want, ", "), keyType(e.Got), Fingerprint(e.Got), where)
}

// Fingerprint returns the SHA256 fingerprint of an authorized_keys line as
// OpenSSH shows it ("SHA256:..."), or "" if the line is not a public key.
func Fingerprint(keyLine string) string {
	k, err := parseKeyLine(keyLine)
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}

// KeyLine returns k as an authorized_keys line without comment or newline
// ("ssh-ed25519 AAAA...").
func KeyLine(k ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n")
}

func parseKeyLine(line string) (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("parse public key %q: %w", truncate(line, 40), err)
	}
	return k, nil
}

func keyType(line string) string {
	t, _, _ := strings.Cut(line, " ")
	return t
}

// hostEntry is the known_hosts form of an address: "host" for port 22,
// "[host]:port" otherwise. A bare host means port 22.
func hostEntry(host string) string {
	return knownhosts.Normalize(host)
}

// Pin records keyLine as the one host key of host ("1.2.3.4",
// "1.2.3.4:2222", "[::1]:2222"), replacing whatever was pinned for it.
// Call it only with a key obtained in a trustworthy way, e.g. probed from a
// node that was just created, whose address may be a reused one with a
// stale entry.
func (k KnownHosts) Pin(host, keyLine string) error {
	key, err := parseKeyLine(keyLine)
	if err != nil {
		return fmt.Errorf("pin host key of %s: %w", host, err)
	}
	return k.edit(func(lines []string) ([]string, error) {
		lines, _ = removeHost(lines, hostEntry(host))
		return append(lines, knownhosts.Line([]string{host}, key)), nil
	})
}

// Forget removes every key pinned for host and returns how many entries
// it removed. Entries listing several hosts lose only this one.
func (k KnownHosts) Forget(host string) (int, error) {
	var n int
	err := k.edit(func(lines []string) ([]string, error) {
		lines, n = removeHost(lines, hostEntry(host))
		return lines, nil
	})
	return n, err
}

// Lookup returns the keys pinned for host, authorized_keys format.
func (k KnownHosts) Lookup(host string) ([]string, error) {
	known, err := k.lookup(host)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kk := range known {
		out = append(out, KeyLine(kk.Key))
	}
	return out, nil
}

// lookup returns the pinned keys for host using x/crypto's own matching
// rules: it checks a throwaway key, and a mismatch lists what is pinned.
func (k KnownHosts) lookup(host string) ([]knownhosts.KnownKey, error) {
	cb, err := k.callback()
	if err != nil || cb == nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	probe, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	addr, remote := dialTarget(host)
	err = cb(addr, remote, probe.PublicKey())
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path, err)
	}
	return nil, nil
}

// callback returns x/crypto's checker for the file, or nil if the file
// does not exist yet.
func (k KnownHosts) callback() (ssh.HostKeyCallback, error) {
	if k.Path == "" {
		return nil, errors.New("known_hosts: no file path set")
	}
	cb, err := knownhosts.New(k.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path, err)
	}
	return cb, nil
}

// dialTarget turns "host", "host:port" or "[v6]:port" into the arguments a
// HostKeyCallback receives.
func dialTarget(host string) (string, net.Addr) {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = strings.Trim(host, "[]"), "22"
	}
	addr := net.JoinHostPort(h, port)
	return addr, &net.TCPAddr{IP: net.ParseIP(h)}
}

// edit is the locked read-modify-write of the file.
func (k KnownHosts) edit(fn func(lines []string) ([]string, error)) error {
	if k.Path == "" {
		return errors.New("known_hosts: no file path set")
	}
	unlock, err := atomicfile.Lock(k.Path)
	if err != nil {
		return err
	}
	defer unlock()
	data, err := os.ReadFile(k.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", k.Path, err)
	}
	var lines []string
	if len(data) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	lines, err = fn(lines)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for _, l := range lines {
		out.WriteString(l + "\n")
	}
	if bytes.Equal(out.Bytes(), data) {
		return nil
	}
	return atomicfile.WriteFile(k.Path, out.Bytes(), 0o600)
}

// removeHost drops entry (normalized) from the host lists of plain
// known_hosts lines, dropping lines left with no host. Marker lines
// (@cert-authority, @revoked), wildcard and negated patterns are left
// alone: they are not pins of one host.
func removeHost(lines []string, entry string) ([]string, int) {
	removed := 0
	out := lines[:0:0]
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == '@' {
			out = append(out, line)
			continue
		}
		hosts, rest, ok := strings.Cut(trimmed, " ")
		if !ok {
			hosts, rest, ok = strings.Cut(trimmed, "\t")
		}
		if !ok {
			out = append(out, line)
			continue
		}
		patterns := strings.Split(hosts, ",")
		kept := slices.DeleteFunc(slices.Clone(patterns), func(p string) bool { return hostPatternIs(p, entry) })
		if len(kept) == len(patterns) {
			out = append(out, line)
			continue
		}
		removed++
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ",")+" "+rest)
		}
	}
	return out, removed
}

// hostPatternIs reports whether a known_hosts host pattern names exactly
// entry, in plain form or hashed (|1|salt|hash, as `ssh-keygen -H` writes).
func hostPatternIs(pattern, entry string) bool {
	if !strings.HasPrefix(pattern, "|1|") {
		return pattern == entry
	}
	salt64, hash64, ok := strings.Cut(pattern[len("|1|"):], "|")
	if !ok {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(salt64)
	want, err2 := base64.StdEncoding.DecodeString(hash64)
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(entry))
	return hmac.Equal(mac.Sum(nil), want)
}

// callbackFor returns the HostKeyCallback for one dial under policy p, and
// the host key algorithms to offer, pinned key types first so a server with
// several keys shows the one we know.
func (p HostKeyPolicy) callbackFor(addr string) (ssh.HostKeyCallback, []string, error) {
	switch {
	case p.err != nil:
		return nil, nil, p.err
	case p.fixed != nil:
		want := p.fixed
		cb := func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if bytes.Equal(got.Marshal(), want.Marshal()) {
				return nil
			}
			return &HostKeyMismatchError{Host: hostEntry(addr), Want: []string{KeyLine(want)}, Got: KeyLine(got), File: "the key given to toppcloud"}
		}
		return cb, hostKeyAlgorithms(want.Type()), nil
	case p.known == nil:
		return nil, nil, errors.New("no host key policy: refusing to connect without checking the server's host key")
	}
	k := *p.known
	pinned, err := k.lookup(addr)
	if err != nil {
		return nil, nil, err
	}
	var types []string
	for _, kk := range pinned {
		types = append(types, kk.Key.Type())
	}
	cb := func(hostname string, remote net.Addr, got ssh.PublicKey) error {
		return k.check(hostname, remote, got, p.pinOnFirstUse)
	}
	return cb, hostKeyAlgorithms(types...), nil
}

// check verifies got for hostname against the file, pinning it when
// pin is set and the host is unknown.
func (k KnownHosts) check(hostname string, remote net.Addr, got ssh.PublicKey, pin bool) error {
	cb, err := k.callback()
	if err != nil {
		return err
	}
	if cb != nil {
		err = cb(hostname, remote, got)
		if err == nil {
			return nil
		}
	} else {
		err = &knownhosts.KeyError{} // no file: every host is unknown
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("host key of %s (%s) is marked @revoked in %s: refusing to connect", hostEntry(hostname), ssh.FingerprintSHA256(got), re.Revoked.Filename)
	case !errors.As(err, &ke):
		return fmt.Errorf("check host key of %s: %w", hostEntry(hostname), err)
	case len(ke.Want) > 0:
		return k.mismatch(hostname, ke.Want, got)
	case !pin:
		return &UnknownHostError{Host: hostEntry(hostname), Got: KeyLine(got), File: k.Path}
	}
	// Pin on first use. Another process may have pinned a key in the
	// meantime: decide again under the lock.
	return k.edit(func(lines []string) ([]string, error) {
		known, err := k.lookup(hostname)
		if err != nil {
			return nil, err
		}
		for _, kk := range known {
			if bytes.Equal(kk.Key.Marshal(), got.Marshal()) {
				return lines, nil
			}
		}
		if len(known) > 0 {
			return nil, k.mismatch(hostname, known, got)
		}
		return append(lines, knownhosts.Line([]string{hostname}, got)), nil
	})
}

func (k KnownHosts) mismatch(hostname string, want []knownhosts.KnownKey, got ssh.PublicKey) error {
	e := &HostKeyMismatchError{Host: hostEntry(hostname), Got: KeyLine(got), File: k.Path}
	for _, w := range want {
		e.Want = append(e.Want, KeyLine(w.Key))
		e.Lines = append(e.Lines, w.Line)
	}
	return e
}

// preferredHostKeyAlgorithms is the order we ask servers for host keys:
// ed25519 first, so the key pinned at creation (probed with the same
// order) is the one presented on every later connection.
func preferredHostKeyAlgorithms() []string {
	return []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
	}
}

// hostKeyAlgorithms returns the algorithms for the pinned key types first,
// then the rest of the preferred list. Offering the rest too means a server
// that dropped the pinned key type still completes the key exchange, and
// the user gets a mismatch error with both fingerprints instead of "no
// common algorithm".
func hostKeyAlgorithms(keyTypes ...string) []string {
	var algos []string
	for _, t := range keyTypes {
		switch t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		default:
			algos = append(algos, t)
		}
	}
	for _, a := range preferredHostKeyAlgorithms() {
		if !slices.Contains(algos, a) {
			algos = append(algos, a)
		}
	}
	return algos
}
