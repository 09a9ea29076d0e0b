// Package localtest gives integration tests real local nodes: a driver on
// a fresh temporary root that shares the machine's image cache (so
// debootstrap runs once per machine, not once per test), unique node
// names, and nodes with a fresh SSH key that are destroyed when the test
// ends.
//
// Tests using it run only with TOPPCLOUD_INTEGRATION=1 as root; otherwise
// they are skipped with the reason.
package localtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/integration"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local"
)

// EnvCache overrides the shared cache directory (images, apt packages).
const EnvCache = "TOPPCLOUD_LOCAL_CACHE"

// Skip skips t unless integration tests run and we are root.
func Skip(t testing.TB) {
	t.Helper()
	integration.SkipUnlessRoot(t)
}

// CacheDir is the image and apt cache tests share: $TOPPCLOUD_LOCAL_CACHE,
// else the default root's, which a developer's own create-node also fills.
func CacheDir() string {
	if c := os.Getenv(EnvCache); c != "" {
		return c
	}
	return local.DefaultRoot
}

// NewDriver skips t unless integration tests run, and returns a local
// driver on a fresh temporary root with the shared cache. Extra settings
// (subnet, dns, ...) may be given.
func NewDriver(t testing.TB, extra provider.Settings) *local.Driver {
	t.Helper()
	Skip(t)
	s := provider.Settings{"root": t.TempDir(), "cache_dir": CacheDir()}
	for k, v := range extra {
		s[k] = v
	}
	d, err := local.New(provider.Env{Section: "test", Settings: s, Log: logWriter{t}})
	if err != nil {
		t.Fatalf("local.New: %v", err)
	}
	return d
}

// logWriter sends driver diagnostics to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// UniqueName returns prefix-XXXXXX with a random suffix, so concurrent
// test runs on one machine never pick the same node name.
func UniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Node is a running local node reachable over SSH as root.
type Node struct {
	provider.Node
	// Signer is the private key whose public half was authorized.
	Signer ssh.Signer
	// HostKey is sshd's host key as first seen (authorized_keys format).
	HostKey string
}

// Addr is host:22.
func (n Node) Addr() string { return net.JoinHostPort(n.Address(), "22") }

// NewKey returns a fresh ed25519 signer and its authorized_keys line.
func NewKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// CreateNode creates a node named name (UniqueName if empty) with a fresh
// key, destroys it when the test ends, and waits until sshd answers.
func CreateNode(t testing.TB, d provider.Driver, name string, req provider.CreateRequest) Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n, err := Create(ctx, d, name, req)
	if n.ID != "" {
		t.Cleanup(func() { destroy(t, d, n.ID) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func destroy(t testing.TB, d provider.Driver, id string) {
	err := d.DestroyNode(context.Background(), id)
	if err != nil && !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("destroy node %s: %v", id, err)
	}
}

// Create is CreateNode for use outside the test goroutine: it returns
// errors instead of failing the test, and the caller destroys the node.
// When the node was created but did not become ready, the returned Node
// has its ID set alongside the error.
func Create(ctx context.Context, d provider.Driver, name string, req provider.CreateRequest) (Node, error) {
	if name == "" {
		name = UniqueName("lt")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Node{}, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return Node{}, err
	}
	req.Name = name
	req.AuthorizedKeys = append(req.AuthorizedKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))))
	if req.Size.ID == "" {
		req.Size = provider.Size{ID: "small"}
	}
	n, err := d.CreateNode(ctx, req)
	if err != nil {
		return Node{}, fmt.Errorf("create node %s: %w", name, err)
	}
	ready, key, err := provider.WaitUntilReady(ctx, d, n.ID, provider.WaitOptions{
		RunningTimeout: time.Minute, AddressTimeout: time.Minute, SSHTimeout: time.Minute,
		ProbeHostKey: ProbeHostKey,
	})
	if err != nil {
		return Node{Node: n, Signer: signer}, fmt.Errorf("wait for node %s: %w", name, err)
	}
	return Node{Node: ready, Signer: signer, HostKey: key}, nil
}

// errGotKey ends a handshake once the host key is known.
var errGotKey = errors.New("host key received")

// ProbeHostKey connects to sshd at addr and returns its host key as an
// authorized_keys line, without authenticating.
func ProbeHostKey(ctx context.Context, addr string) (string, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: "probe",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errGotKey
		},
	}
	_, _, _, err = ssh.NewClientConn(conn, addr, cfg)
	if key != nil {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), nil
	}
	if err == nil {
		err = errors.New("no host key received")
	}
	return "", err
}

// Dial logs in as root, accepting only the host key seen when the node
// became ready. The client is closed when the test ends.
func (n Node) Dial(t testing.TB) *ssh.Client {
	t.Helper()
	c, err := n.TryDial(10 * time.Second)
	if err != nil {
		t.Fatalf("ssh root@%s: %v", n.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TryDial is Dial returning the error.
func (n Node) TryDial(timeout time.Duration) (*ssh.Client, error) {
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(n.HostKey))
	if err != nil {
		return nil, fmt.Errorf("pinned host key: %w", err)
	}
	return ssh.Dial("tcp", n.Addr(), &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(n.Signer)},
		HostKeyCallback: ssh.FixedHostKey(want),
		Timeout:         timeout,
	})
}

// Run runs cmd on the node as root and returns its output (stdout and
// stderr); a failure fails the test with that output.
func (n Node) Run(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("ssh session: %v", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s on %s: %v\n%s", cmd, n.Name, err, out)
	}
	return string(out)
}
