package config

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Two provider types in a registry of the tests' own (testProviders), so
// that File.Provider, which checks types against a registry, can be tested.
var (
	fakeCloud = provider.Info{
		Name:        "fakecloud",
		Description: "a cloud for tests",
		Options: []provider.Option{
			provider.OptUsername.With(func(o *provider.Option) { o.Required, o.Prompt = true, true }),
			provider.OptSecret.With(func(o *provider.Option) { o.Required, o.Prompt = true, true }),
			provider.OptRegion.With(func(o *provider.Option) {
				o.Prompt, o.Default, o.EnvVars = true, "ord", []string{"FAKE_REGION"}
			}),
			provider.OptEndpoint,
		},
		New: func(provider.Env) (provider.Driver, error) { return nil, errors.New("not for use") },
	}
	fakeLocal = provider.Info{
		Name:        "fakelocal",
		Description: "nodes on this machine",
		Local:       true,
		New:         func(provider.Env) (provider.Driver, error) { return nil, errors.New("not for use") },
	}
)

var testProviders = provider.NewRegistry(fakeCloud, fakeLocal)

// testKey returns an authorized_keys line for a fixed key.
func testKey(t *testing.T, seed byte, comment string) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune('a'+seed)), ed25519.SeedSize)))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // despite the umask
		t.Fatal(err)
	}
}

// script is a Prompter that answers from queues and records what it was
// asked and told.
type script struct {
	answers  []string // for Ask, in order; "" takes the default
	secrets  []string
	confirms []bool
	log      []string
}

func (s *script) Ask(q, def string) (string, error) {
	s.log = append(s.log, fmt.Sprintf("ask %s [%s]", q, def))
	if len(s.answers) == 0 {
		return "", io.EOF
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	if a == "" {
		a = def
	}
	return a, nil
}

func (s *script) AskSecret(q string) (string, error) {
	s.log = append(s.log, "secret "+q)
	if len(s.secrets) == 0 {
		return "", io.EOF
	}
	a := s.secrets[0]
	s.secrets = s.secrets[1:]
	return a, nil
}

func (s *script) Confirm(q string, def bool) (bool, error) {
	s.log = append(s.log, fmt.Sprintf("confirm %s [%v]", q, def))
	if len(s.confirms) == 0 {
		return false, io.EOF
	}
	a := s.confirms[0]
	s.confirms = s.confirms[1:]
	return a, nil
}

func (s *script) Say(format string, args ...any) {
	s.log = append(s.log, "say "+fmt.Sprintf(format, args...))
}

var _ Prompter = (*script)(nil)

var bg = context.Background()
