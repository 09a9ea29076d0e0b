// Package benchuser is the throwaway user the bench programs run toppcloud
// as: a home directory with an SSH key and a config whose default
// provider makes local nodes under the bench's work directory.
package benchuser

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// User is a home directory and the toppcloud binary run with it.
type User struct {
	// Home is $HOME; Key its SSH private key.
	Home, Key string
	// Bin is the toppcloud binary.
	Bin string
	// Verbose copies each command's stderr (its step lines) to ours.
	Verbose bool
	// Stderr is the last command's.
	Stderr string
	// Ctx, if set, stops a running command when it ends (the bench was
	// interrupted).
	Ctx context.Context
}

// New makes the home directory under work; local nodes go to work/nodes,
// and cache is the local provider's image cache.
func New(work, cache, bin string) (*User, error) {
	u := &User{Home: filepath.Join(work, "home"), Bin: bin}
	if err := os.MkdirAll(filepath.Join(u.Home, ".ssh"), 0o700); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "bench")
	if err != nil {
		return nil, err
	}
	u.Key = filepath.Join(u.Home, ".ssh", "id_ed25519")
	if err := os.WriteFile(u.Key, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if err := os.WriteFile(u.Key+".pub", []byte(line+" bench\n"), 0o644); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("[provider:default]\nprovider = local\nroot = %s\ncache_dir = %s\nroot_authorized_keys = %s\n",
		filepath.Join(work, "nodes"), cache, line)
	if err := os.WriteFile(filepath.Join(u.Home, ".toppcloud.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return u, nil
}

// Run runs toppcloud with args and returns its stdout; an error carries
// its stderr.
func (u *User) Run(args ...string) ([]byte, error) {
	ctx := u.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	cmd := exec.CommandContext(ctx, u.Bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+u.Home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	u.Stderr = stderr.String()
	if u.Verbose {
		os.Stderr.Write(stderr.Bytes())
	}
	if err != nil {
		return nil, fmt.Errorf("toppcloud %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
