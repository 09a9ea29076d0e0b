package sshx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
)

func echoHandler(e *sshxtest.Exec) int {
	io.WriteString(e.Stdout, "ok:"+e.User+"\n")
	return 0
}

func assertRuns(t *testing.T, c *sshx.Client) {
	t.Helper()
	out, err := c.Output(t.Context(), []string{"x"}, nil)
	if err != nil || string(out) != "ok:"+c.User()+"\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
}

func newKeyPair(t *testing.T) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

func writeKeyFile(t *testing.T, priv ed25519.PrivateKey, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAgent serves an in-process ssh-agent holding keys on a unix socket.
func startAgent(t *testing.T, keys ...ed25519.PrivateKey) string {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				agent.ServeAgent(kr, c)
			})
		}
	})
	return sock
}

func TestDial_KeyFile(t *testing.T) {
	priv, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, signer.PublicKey())
	cfg := srv.Config(nil)
	cfg.User = "deploy"
	cfg.Auth = sshx.Auth{KeyFiles: []string{filepath.Join(t.TempDir(), "missing"), writeKeyFile(t, priv, "")}}
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertRuns(t, c)
	if c.HostKey() != srv.HostKey {
		t.Errorf("HostKey = %q, want %q", c.HostKey(), srv.HostKey)
	}
}

// TestDial_LoginKeySaysWhichKeyLoggedIn: the node accepts only the second
// key offered; the client names that one, not the first.
func TestDial_LoginKeySaysWhichKeyLoggedIn(t *testing.T) {
	refused, _ := newKeyPair(t)
	accepted, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, signer.PublicKey())
	first, second := writeKeyFile(t, refused, ""), writeKeyFile(t, accepted, "")
	cfg := srv.Config(nil)
	cfg.Auth = sshx.Auth{KeyFiles: []string{first, second}}
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := second + " (" + ssh.FingerprintSHA256(signer.PublicKey()) + ")"; c.LoginKey() != want {
		t.Errorf("LoginKey() = %q, want %q", c.LoginKey(), want)
	}

	cfg.Auth = sshx.Auth{KeyFiles: []string{first}, UseAgent: true, AgentSocket: startAgent(t, accepted)}
	ac, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if ac.LoginKey() != "a key of ssh-agent" {
		t.Errorf("through the agent: LoginKey() = %q", ac.LoginKey())
	}
}

func TestDial_Agent(t *testing.T) {
	priv, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, signer.PublicKey())
	cfg := srv.Config(nil)
	cfg.Auth = sshx.Auth{UseAgent: true, AgentSocket: startAgent(t, priv)}
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertRuns(t, c)
}

func TestDial_AgentFromEnvironment(t *testing.T) {
	priv, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, signer.PublicKey())
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, priv))
	cfg := srv.Config(nil)
	cfg.Auth = sshx.Auth{UseAgent: true}
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertRuns(t, c)
}

func TestDial_EncryptedKeyFile(t *testing.T) {
	priv, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, signer.PublicKey())
	path := writeKeyFile(t, priv, "sekrit passphrase")

	t.Run("without agent", func(t *testing.T) {
		cfg := srv.Config(nil)
		cfg.Auth = sshx.Auth{KeyFiles: []string{path}}
		_, err := sshx.Dial(t.Context(), cfg)
		var ae *sshx.AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v, want *AuthError", err)
		}
		msg := err.Error()
		for _, want := range []string{"no usable SSH key", path + " is encrypted", "ssh-add " + path, "SSH_AUTH_SOCK"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		key, _ := os.ReadFile(path)
		for _, secret := range []string{"sekrit", "PRIVATE KEY", strings.Split(string(key), "\n")[1][:20]} {
			if strings.Contains(msg, secret) {
				t.Errorf("message leaks %q", secret)
			}
		}
		if srv.Conns() != 0 {
			t.Errorf("connected %d times although no key was usable", srv.Conns())
		}
	})
	t.Run("agent holds it", func(t *testing.T) {
		cfg := srv.Config(nil)
		cfg.Auth = sshx.Auth{KeyFiles: []string{path}, UseAgent: true, AgentSocket: startAgent(t, priv)}
		c, err := sshx.Dial(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("agent without it", func(t *testing.T) {
		other, _ := newKeyPair(t)
		cfg := srv.Config(nil)
		cfg.Auth = sshx.Auth{KeyFiles: []string{path}, UseAgent: true, AgentSocket: startAgent(t, other)}
		_, err := sshx.Dial(t.Context(), cfg)
		var ae *sshx.AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "add it to ssh-agent") || !strings.Contains(err.Error(), "the node does not accept your key") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDial_AuthFailure(t *testing.T) {
	priv, signer := newKeyPair(t)
	srv := sshxtest.NewServer(t, echoHandler, sshxtest.NewSigner(t).PublicKey())
	path := writeKeyFile(t, priv, "")
	cfg := srv.Config(nil)
	cfg.User = "admin"
	cfg.Auth = sshx.Auth{KeyFiles: []string{path}, UseAgent: true, AgentSocket: startAgent(t, priv)}
	cfg.RetryFor = time.Hour // must not apply to auth failures
	_, err := sshx.Dial(t.Context(), cfg)
	var ae *sshx.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *AuthError", err)
	}
	want := "authentication as admin@" + srv.Addr + " failed: the node does not accept your key (tried: " + path + ", ssh-agent (1 key))"
	if err.Error() != want {
		t.Errorf("message:\n %s\nwant:\n %s", err, want)
	}
	// The file and the agent hold the same key: offered once.
	if fp := ssh.FingerprintSHA256(signer.PublicKey()); len(ae.Offered) != 1 || ae.Offered[0] != fp {
		t.Errorf("Offered = %q, want [%s]", ae.Offered, fp)
	}
	if srv.Conns() != 1 {
		t.Errorf("%d connections: an auth failure was retried", srv.Conns())
	}
}

func TestDial_NoKeys(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := sshx.Dial(t.Context(), sshx.Config{
		Addr:     "127.0.0.1:1",
		Auth:     sshx.Auth{KeyFiles: sshx.DefaultKeyFiles(t.TempDir()), UseAgent: true},
		HostKeys: sshx.KnownHosts{Path: filepath.Join(t.TempDir(), "kh")}.Strict(),
	})
	var ae *sshx.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "no usable SSH key to log in as root@127.0.0.1:1") ||
		!strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuth_Check(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	home := t.TempDir()
	err := sshx.Auth{KeyFiles: sshx.DefaultKeyFiles(home), UseAgent: true}.Check("root", "node1")
	var ae *sshx.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "no usable SSH key to log in as root@node1") || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Errorf("Check without keys = %v", err)
	}
	priv, _ := newKeyPair(t)
	if err := (sshx.Auth{KeyFiles: []string{writeKeyFile(t, priv, "")}}).Check("root", "node1"); err != nil {
		t.Errorf("Check with a key = %v", err)
	}
}

func TestDial_RequiresHostKeyPolicy(t *testing.T) {
	key := sshxtest.NewSigner(t)
	srv := sshxtest.NewServer(t, echoHandler, key.PublicKey())
	cfg := srv.Config(key)
	cfg.HostKeys = sshx.HostKeyPolicy{}
	if _, err := sshx.Dial(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "no host key policy") {
		t.Fatalf("err = %v", err)
	}
	cfg.HostKeys = sshx.FixedHostKey("garbage")
	if _, err := sshx.Dial(t.Context(), cfg); err == nil {
		t.Fatal("bad fixed key accepted")
	}
	if srv.Conns() != 0 {
		t.Error("connected without a usable policy")
	}
}

func TestDial_FixedHostKeyMismatch(t *testing.T) {
	key := sshxtest.NewSigner(t)
	srv := sshxtest.NewServer(t, echoHandler, key.PublicKey())
	cfg := srv.Config(key)
	other := sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())
	cfg.HostKeys = sshx.FixedHostKey(other)
	_, err := sshx.Dial(t.Context(), cfg)
	var me *sshx.HostKeyMismatchError
	if !errors.As(err, &me) || me.Got != srv.HostKey || me.Want[0] != other {
		t.Fatalf("err = %v", err)
	}
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDial_RetriesWhileRefused(t *testing.T) {
	key := sshxtest.NewSigner(t)
	hostKey := sshxtest.NewSigner(t)
	addr := freeAddr(t)
	cfg := sshx.Config{
		Addr:     addr,
		Auth:     sshx.Auth{Signers: []ssh.Signer{key}},
		HostKeys: sshx.FixedHostKey(sshx.KeyLine(hostKey.PublicKey())),
		RetryFor: time.Minute,
	}
	type result struct {
		c   *sshx.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := sshx.Dial(t.Context(), cfg)
		done <- result{c, err}
	}()
	// Let Dial meet a refused port a few times, then "boot" the node.
	time.Sleep(400 * time.Millisecond)
	sshxtest.StartServer(t, sshxtest.ServerConfig{
		Handler: echoHandler, AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		HostKeys: []ssh.Signer{hostKey}, Addr: addr,
	})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	assertRuns(t, r.c)
}

func TestDial_RefusedWithoutRetry(t *testing.T) {
	addr := freeAddr(t)
	for _, tc := range []struct {
		retry time.Duration
		want  string
	}{
		{0, "connection refused"},
		{300 * time.Millisecond, "kept trying for"},
	} {
		_, err := sshx.Dial(t.Context(), sshx.Config{
			Addr:     addr,
			Auth:     sshx.Auth{Signers: []ssh.Signer{sshxtest.NewSigner(t)}},
			HostKeys: sshx.FixedHostKey(sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())),
			RetryFor: tc.retry,
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "connect to root@"+addr) {
			t.Errorf("RetryFor %v: err = %v, want %q", tc.retry, err, tc.want)
		}
	}
}

func TestDial_CancelWhileRetrying(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	_, err := sshx.Dial(ctx, sshx.Config{
		Addr:     freeAddr(t),
		Auth:     sshx.Auth{Signers: []ssh.Signer{sshxtest.NewSigner(t)}},
		HostKeys: sshx.FixedHostKey(sshx.KeyLine(sshxtest.NewSigner(t).PublicKey())),
		RetryFor: time.Hour,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultKeyFiles(t *testing.T) {
	got := sshx.DefaultKeyFiles("/home/u")
	want := []string{"/home/u/.ssh/toppcloud_ed25519", "/home/u/.ssh/id_ed25519", "/home/u/.ssh/id_ecdsa", "/home/u/.ssh/id_rsa"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("DefaultKeyFiles = %v", got)
	}
}

func TestProbeHostKey(t *testing.T) {
	// A server with an ECDSA key listed first and an ed25519 key: the
	// probe must get the ed25519 one, which Dial also prefers.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, _ := ssh.NewSignerFromKey(ecKey)
	edSigner := sshxtest.NewSigner(t)
	key := sshxtest.NewSigner(t)
	srv := sshxtest.StartServer(t, sshxtest.ServerConfig{
		Handler: echoHandler, AuthorizedKeys: []ssh.PublicKey{key.PublicKey()},
		HostKeys: []ssh.Signer{ecSigner, edSigner},
	})
	got, err := sshx.ProbeHostKey(t.Context(), srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := sshx.KeyLine(edSigner.PublicKey()); got != want {
		t.Fatalf("probe = %q, want the ed25519 key %q", got, want)
	}

	// Pin on first use with Dial pins that same key.
	kh := sshx.KnownHosts{Path: filepath.Join(t.TempDir(), "known_hosts")}
	cfg := srv.Config(key)
	cfg.HostKeys = kh.PinOnFirstUse()
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if pinned, _ := kh.Lookup(srv.Addr); len(pinned) != 1 || pinned[0] != got {
		t.Errorf("pinned %q, probed %q", pinned, got)
	}

	if _, err := sshx.ProbeHostKey(t.Context(), freeAddr(t)); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("probe of closed port: %v", err)
	}
}

// blackHole forwards TCP to target until frozen, then silently stops
// forwarding while keeping the connection open, like a dead peer behind
// NAT.
type blackHole struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen chan struct{}
}

func newBlackHole(t *testing.T, target string) *blackHole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln, frozen: make(chan struct{})}
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			b.mu.Lock()
			conns = append(conns, in, out)
			b.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32*1024)
				for {
					n, err := src.Read(buf)
					select {
					case <-b.frozen:
						return
					default:
					}
					if err != nil {
						return
					}
					dst.Write(buf[:n])
				}
			}
			wg.Go(func() { pipe(out, in) })
			wg.Go(func() { pipe(in, out) })
		}
	})
	return b
}

func (b *blackHole) freeze() { close(b.frozen) }

func TestClient_KeepAliveDetectsDeadConnection(t *testing.T) {
	key := sshxtest.NewSigner(t)
	started := make(chan struct{}, 1)
	srv := sshxtest.NewServer(t, func(e *sshxtest.Exec) int {
		started <- struct{}{}
		<-e.Ctx.Done()
		return 0
	}, key.PublicKey())
	bh := newBlackHole(t, srv.Addr)
	cfg := srv.Config(key)
	cfg.Addr = bh.ln.Addr().String()
	cfg.KeepAlive = 50 * time.Millisecond
	c, err := sshx.Dial(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Run(t.Context(), []string{"long", "silent", "command"}, sshx.RunOptions{}) }()
	<-started
	bh.freeze()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run on a dead connection returned nil")
		}
	case <-time.After(hangGuard):
		t.Fatal("Run hangs on a dead connection")
	}
}
