package sshx_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
)

type pinFixture struct {
	srv *sshxtest.Server
	key ssh.Signer
	kh  sshx.KnownHosts
}

func newPinFixture(t *testing.T) pinFixture {
	key := sshxtest.NewSigner(t)
	return pinFixture{
		srv: sshxtest.NewServer(t, echoHandler, key.PublicKey()),
		key: key,
		kh:  sshx.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")},
	}
}

func (f pinFixture) dial(t *testing.T, p sshx.HostKeyPolicy) (*sshx.Client, error) {
	cfg := f.srv.Config(f.key)
	cfg.HostKeys = p
	c, err := sshx.Dial(t.Context(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestKnownHosts_StrictRefusesUnknownHost(t *testing.T) {
	f := newPinFixture(t)
	_, err := f.dial(t, f.kh.Strict())
	var ue *sshx.UnknownHostError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want *UnknownHostError", err)
	}
	if ue.Got != f.srv.HostKey || ue.Host != "[127.0.0.1]:"+port(f.srv.Addr) {
		t.Errorf("error = %+v", ue)
	}
	if !strings.Contains(err.Error(), sshx.Fingerprint(f.srv.HostKey)) || !strings.Contains(err.Error(), f.kh.Path) {
		t.Errorf("message lacks fingerprint or file: %v", err)
	}
	if readFile(t, f.kh.Path) != "" {
		t.Error("strict policy wrote the file")
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func TestKnownHosts_PinOnFirstUse(t *testing.T) {
	f := newPinFixture(t)
	c, err := f.dial(t, f.kh.PinOnFirstUse())
	if err != nil {
		t.Fatal(err)
	}
	assertRuns(t, c)
	want := "[127.0.0.1]:" + port(f.srv.Addr) + " " + f.srv.HostKey + "\n"
	if got := readFile(t, f.kh.Path); got != want {
		t.Errorf("known_hosts = %q, want %q", got, want)
	}
	fi, _ := os.Stat(f.kh.Path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode().Perm())
	}
	// Now strict works, and pinning again adds nothing.
	if _, err := f.dial(t, f.kh.Strict()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dial(t, f.kh.PinOnFirstUse()); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, f.kh.Path); got != want {
		t.Errorf("known_hosts after second pin = %q", got)
	}
}

func TestKnownHosts_MismatchRefused(t *testing.T) {
	f := newPinFixture(t)
	old := sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())
	if err := os.WriteFile(f.kh.Path, []byte("# my hosts\nother.example.com "+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.kh.Pin(f.srv.Addr, old); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, f.kh.Path)
	for name, p := range map[string]sshx.HostKeyPolicy{"strict": f.kh.Strict(), "pin on first use": f.kh.PinOnFirstUse()} {
		t.Run(name, func(t *testing.T) {
			_, err := f.dial(t, p)
			var me *sshx.HostKeyMismatchError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want *HostKeyMismatchError", err)
			}
			if me.Got != f.srv.HostKey || len(me.Want) != 1 || me.Want[0] != old || me.Lines[0] != 3 {
				t.Errorf("error = %+v", me)
			}
			msg := err.Error()
			for _, want := range []string{sshx.Fingerprint(old), sshx.Fingerprint(f.srv.HostKey), "line 3 of " + f.kh.Path, "rebuilt", "remove"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if got := readFile(t, f.kh.Path); got != before {
				t.Errorf("file changed: %q", got)
			}
		})
	}
	if n := f.srv.Conns(); n != 2 {
		t.Errorf("%d connections for 2 dials: mismatch was retried", n)
	}
}

// TestKnownHosts_DifferentKeyTypeIsMismatch: a server that no longer has
// the pinned key type must give a mismatch naming both keys, not a
// negotiation failure.
func TestKnownHosts_DifferentKeyTypeIsMismatch(t *testing.T) {
	f := newPinFixture(t)
	rsaLine := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDEaZtpc3LiQKYkFMDXR2eCDF4Og6cTBV9Ev3UOrUcNMthWaOl5rw3kACHs7NGhKOwr5Cti1IYQ/UW3PYRCtc7mF0IwmGLuKyUP7pwydjmIQpE1UhvPRf5w+qyUAOMnRnWPXcm8bL5kw8w3BcAv6FF5fbeJfDgPSCfIWrQ1bqT3tQ=="
	if err := f.kh.Pin(f.srv.Addr, rsaLine); err != nil {
		t.Fatal(err)
	}
	_, err := f.dial(t, f.kh.Strict())
	var me *sshx.HostKeyMismatchError
	if !errors.As(err, &me) || me.Got != f.srv.HostKey {
		t.Fatalf("err = %v", err)
	}
}

func TestKnownHosts_PinForgetLookup(t *testing.T) {
	kh := sshx.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")}
	k1 := sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())
	k2 := sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())
	hashed := knownhosts.HashHostname("10.0.0.5")
	initial := "# comment kept\n" +
		"10.0.0.5,web.example.com " + k1 + "\n" +
		"*.wild.example.com " + k1 + "\n" +
		hashed + " " + k1 + "\n" +
		"@revoked 10.0.0.5 " + k2 + "\n"
	if err := os.WriteFile(kh.Path, []byte(initial), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := kh.Lookup("10.0.0.5")
	if err != nil || len(got) != 2 || got[0] != k1 {
		t.Fatalf("Lookup = %q, %v", got, err)
	}
	n, err := kh.Forget("10.0.0.5:22")
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v", n, err)
	}
	want := "# comment kept\n" +
		"web.example.com " + k1 + "\n" +
		"*.wild.example.com " + k1 + "\n" +
		"@revoked 10.0.0.5 " + k2 + "\n"
	if got := readFile(t, kh.Path); got != want {
		t.Errorf("after Forget:\n%s\nwant:\n%s", got, want)
	}
	if got, _ := kh.Lookup("10.0.0.5"); len(got) != 0 {
		t.Errorf("still pinned: %q", got)
	}

	// Pin replaces; ports are part of the entry.
	if err := kh.Pin("10.0.0.6", k1); err != nil {
		t.Fatal(err)
	}
	if err := kh.Pin("10.0.0.6:2222", k1); err != nil {
		t.Fatal(err)
	}
	if err := kh.Pin("10.0.0.6", k2+" a comment"); err != nil {
		t.Fatal(err)
	}
	if got, _ := kh.Lookup("10.0.0.6:22"); len(got) != 1 || got[0] != k2 {
		t.Errorf("10.0.0.6 = %q, want only %q", got, k2)
	}
	if got, _ := kh.Lookup("10.0.0.6:2222"); len(got) != 1 || got[0] != k1 {
		t.Errorf("[10.0.0.6]:2222 = %q", got)
	}
	if !strings.Contains(readFile(t, kh.Path), "[10.0.0.6]:2222 "+k1+"\n") {
		t.Errorf("no [host]:port entry:\n%s", readFile(t, kh.Path))
	}
	if n, _ := kh.Forget("10.0.0.99"); n != 0 {
		t.Errorf("Forget of unknown host removed %d", n)
	}
	if err := kh.Pin("10.0.0.7", "not a key"); err == nil {
		t.Error("Pin accepted garbage")
	}
}

func TestKnownHosts_ConcurrentPins(t *testing.T) {
	kh := sshx.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")}
	key := sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if err := kh.Pin(fmt.Sprintf("10.0.1.%d", i), key); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 30 {
		if got, _ := kh.Lookup(fmt.Sprintf("10.0.1.%d", i)); len(got) != 1 {
			t.Errorf("10.0.1.%d lost", i)
		}
	}
}

// TestKnownHosts_OpenSSHReadsFile checks the file works with
// `ssh -o UserKnownHostsFile=...` by asking OpenSSH's ssh-keygen.
func TestKnownHosts_OpenSSHReadsFile(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	f := newPinFixture(t)
	if _, err := f.dial(t, f.kh.PinOnFirstUse()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-F", "[127.0.0.1]:"+port(f.srv.Addr), "-f", f.kh.Path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), f.srv.HostKey) {
		t.Fatalf("ssh-keygen -F: %v\n%s", err, out)
	}
}

func TestFingerprint(t *testing.T) {
	s := sshxtest.NewSigner(t)
	line := sshx.KeyLine(s.PublicKey())
	if got, want := sshx.Fingerprint(line+" comment"), ssh.FingerprintSHA256(s.PublicKey()); got != want || !strings.HasPrefix(got, "SHA256:") {
		t.Errorf("Fingerprint = %q, want %q", got, want)
	}
	if got := sshx.Fingerprint("nonsense"); got != "" {
		t.Errorf("Fingerprint(nonsense) = %q", got)
	}
}
