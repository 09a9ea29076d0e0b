package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// publicKeyCandidates are the public keys FindPublicKey looks for under
// ~/.ssh, in order. The last is the one GenerateKey makes.
var publicKeyCandidates = []string{"id_ed25519.pub", "id_rsa.pub", GeneratedKeyName + ".pub"}

// GeneratedKeyName is the private key first-run creates in ~/.ssh when the
// user has none; its public half is GeneratedKeyName + ".pub".
const GeneratedKeyName = "toppcloud_ed25519"

// FindPublicKey returns the first of id_ed25519.pub, id_rsa.pub and
// GeneratedKeyName.pub present in home/.ssh, and its key lines. When none exists the error satisfies
// errors.Is(err, fs.ErrNotExist); a file that is not a public key is an
// error naming it.
func FindPublicKey(home string) (path string, keys []string, err error) {
	for _, name := range publicKeyCandidates {
		path = filepath.Join(home, ".ssh", name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("read public key: %w", err)
		}
		keys, err := parseAuthorizedKeys(data)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", path, err)
		}
		return path, keys, nil
	}
	return "", nil, fmt.Errorf("no SSH public key in %s (looked for %s): %w",
		filepath.Join(home, ".ssh"), strings.Join(publicKeyCandidates, ", "), fs.ErrNotExist)
}

// ReadAuthorizedKeys reads public keys given on a command line: the path of
// a file (such as ~/.ssh/id_ed25519.pub; a leading ~/ is expanded) or a
// literal authorized_keys line. Every key is checked.
func ReadAuthorizedKeys(arg string) ([]string, error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, errors.New("no public key given")
	}
	path, err := expandPath(arg, ".")
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		keys, err := parseAuthorizedKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return keys, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read public key: %w", err)
	}
	if _, _, _, _, perr := ssh.ParseAuthorizedKey([]byte(arg)); perr != nil {
		if strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".pub") {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		return nil, errors.New("the key is neither a file nor an SSH public key line (such as ssh-ed25519 AAAA... you@host)")
	}
	return []string{arg}, nil
}

// PrivateKeyBeside returns the private half of the public key file
// pubPath (X for X.pub) when it exists beside it, else "". Whatever
// installs X.pub on nodes should log in with X: recording it saves the user
// from a login that offers every other key but that one.
func PrivateKeyBeside(pubPath string) string {
	priv, ok := strings.CutSuffix(pubPath, ".pub")
	if !ok || priv == "" {
		return ""
	}
	if fi, err := os.Stat(priv); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return priv
}

// parseAuthorizedKeys returns the key lines of an authorized_keys-style
// text, each checked, skipping blank and # lines.
func parseAuthorizedKeys(data []byte) ([]string, error) {
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		// Say so without repeating any of it.
		return nil, errors.New("this is a private key; give the public one (.pub)")
	}
	var keys []string
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return nil, fmt.Errorf("line %d is not an SSH public key", i+1)
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in it")
	}
	return keys, nil
}

// GenerateKey creates an ed25519 key pair for toppcloud at
// home/.ssh/GeneratedKeyName (OpenSSH private key format, mode 0600) and
// GeneratedKeyName.pub, creating ~/.ssh (0700) if needed. It never
// overwrites a key. random is the entropy source (crypto/rand when nil).
func GenerateKey(home, comment string, random io.Reader) (privPath, pubLine string, err error) {
	if random == nil {
		random = rand.Reader
	}
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	privPath = filepath.Join(dir, GeneratedKeyName)
	pubPath := privPath + ".pub"
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("generate key: %s already exists: %w", p, fs.ErrExist)
		}
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	pubLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
	if comment != "" {
		pubLine += " " + comment
	}
	if err := atomicfile.Write(privPath, pem.EncodeToMemory(block), atomicfile.Options{Perm: 0o600, Exclusive: true}); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	if err := atomicfile.Write(pubPath, []byte(pubLine+"\n"), atomicfile.Options{Perm: 0o644, Exclusive: true}); err != nil {
		_ = os.Remove(privPath) // leave no half pair behind
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	return privPath, pubLine, nil
}
