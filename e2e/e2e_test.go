// Package e2e runs the built toppcloud binary as a user would, against
// real local nodes (systemd-nspawn) and the fake provider APIs backed by
// them. Every test needs TOPPCLOUD_INTEGRATION=1 and root.
package e2e

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
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/integration"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// binary is the toppcloud binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	code := func() int {
		if integration.Unavailable(true) != "" {
			// Every test skips itself with the reason; don't build.
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "toppcloud-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "toppcloud")
		cmd := exec.Command("go", "build", "-o", binary, "../cmd/toppcloud")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build toppcloud:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// user is a person with a home directory, an SSH key and a config file,
// running the toppcloud binary.
type user struct {
	t      *testing.T
	home   string
	pubKey string
	signer ssh.Signer
}

func newUser(t *testing.T) *user {
	t.Helper()
	localtest.Skip(t)
	u := &user{t: t, home: t.TempDir()}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(u.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(u.home, ".ssh", "id_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	u.pubKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if err := os.WriteFile(filepath.Join(u.home, ".ssh", "id_ed25519.pub"), []byte(u.pubKey+" e2e\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.signer, _ = ssh.NewSignerFromKey(priv)
	return u
}

// config writes ~/.toppcloud.conf with the given sections; every section
// gets the user's key as root_authorized_keys.
func (u *user) config(sections ...string) {
	u.t.Helper()
	var b strings.Builder
	for _, s := range sections {
		b.WriteString(strings.TrimSpace(s))
		b.WriteString("\nroot_authorized_keys =\n    " + u.pubKey + "\n\n")
	}
	if err := os.WriteFile(filepath.Join(u.home, ".toppcloud.conf"), []byte(b.String()), 0o600); err != nil {
		u.t.Fatal(err)
	}
}

// run runs toppcloud and returns its exit status and output.
func (u *user) run(args ...string) (code int, stdout, stderr string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = []string{"HOME=" + u.home, "PATH=" + os.Getenv("PATH"), "LANG=C"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			u.t.Fatalf("run toppcloud %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	u.t.Logf("$ toppcloud %s  (exit %d)\n%s%s", strings.Join(args, " "), code, errb.String(), out.String())
	return code, out.String(), errb.String()
}

// mustRun runs toppcloud and fails the test on a non-zero exit.
func (u *user) mustRun(args ...string) string {
	u.t.Helper()
	code, out, errOut := u.run(args...)
	if code != 0 {
		u.t.Fatalf("toppcloud %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// ssh runs a command on addr as root with the user's key, trusting the
// host key toppcloud pinned.
func (u *user) ssh(addr, command string) (string, error) {
	u.t.Helper()
	kh := filepath.Join(u.home, ".toppcloud", "known_hosts")
	cmd := exec.Command("ssh", "-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
		"-i", filepath.Join(u.home, ".ssh", "id_ed25519"), "root@"+addr, command)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
