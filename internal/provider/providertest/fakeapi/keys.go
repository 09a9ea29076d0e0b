package fakeapi

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key is an SSH public key registered through a provider's key API.
type Key struct {
	ID        string
	Name      string
	PublicKey string // the authorized_keys line as received
	// Fingerprint is the MD5 fingerprint in colon-separated hex, the form
	// DigitalOcean and Hetzner report.
	Fingerprint string
}

// ErrDuplicateKey is returned by AddKey for a key already registered.
var ErrDuplicateKey = errors.New("key already registered")

// AddKey registers a public key. A line that does not parse is an error;
// a key whose fingerprint is already registered returns that key and
// ErrDuplicateKey, as the APIs refuse duplicates.
func (s *Server) AddKey(name, publicKey string) (Key, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(publicKey))
	if err != nil {
		return Key{}, fmt.Errorf("invalid public key: %w", err)
	}
	fp := strings.TrimPrefix(ssh.FingerprintLegacyMD5(pub), "MD5:")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.Fingerprint == fp {
			return k, ErrDuplicateKey
		}
	}
	s.nextKey++
	k := Key{ID: s.dialect.FormatID(s.nextKey), Name: name, PublicKey: strings.TrimSpace(publicKey), Fingerprint: fp}
	s.keys = append(s.keys, k)
	return k, nil
}

// Keys returns the registered keys, oldest first.
func (s *Server) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Key(nil), s.keys...)
}

// FindKey returns the first registered key for which match is true.
func (s *Server) FindKey(match func(Key) bool) (Key, bool) {
	for _, k := range s.Keys() {
		if match(k) {
			return k, true
		}
	}
	return Key{}, false
}
