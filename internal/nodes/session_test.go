package nodes

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
	"github.com/toppcloud/toppcloud/internal/sshx/sshxtest"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// recorder is a Reporter that keeps every line.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) Step(format string, args ...any) Step {
	name := fmt.Sprintf(format, args...)
	r.add("step %s", name)
	return recStep{r, name}
}
func (r *recorder) Printf(format string, args ...any) { r.add(format, args...) }
func (r *recorder) Warnf(format string, args ...any)  { r.add("warning: "+format, args...) }

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

type recStep struct {
	r    *recorder
	name string
}

func (s recStep) Update(format string, args ...any) {}
func (s recStep) Done(format string, args ...any) {
	s.r.add("%s: done (%s)", s.name, fmt.Sprintf(format, args...))
}
func (s recStep) Fail() { s.r.add("%s: failed", s.name) }

// keyPair is a private key file with its .pub beside it.
type keyPair struct {
	path   string // the private key
	line   string // the public key, authorized_keys format
	signer ssh.Signer
}

func newKey(t *testing.T, dir, name string) keyPair {
	t.Helper()
	path := filepath.Join(dir, name)
	signer, line := sshxtest.WriteKey(t, path, name+"@test")
	return keyPair{path: path, line: line, signer: signer}
}

func (k keyPair) fingerprint() string { return ssh.FingerprintSHA256(k.signer.PublicKey()) }

// world is a home directory, a config file, an in-memory provider whose
// nodes are one in-process SSH server, and the keys that server accepts.
type world struct {
	t    *testing.T
	home string
	mem  *providertest.Memory
	// driver is what the memtest provider opens; mem when nil.
	driver provider.Driver
	srv    *sshxtest.Server
	rep    *recorder
	env    map[string]string
	conf   string
}

// newWorld makes a world whose server accepts accepted; serve starts
// another that accepts other keys.
func newWorld(t *testing.T, accepted ...keyPair) *world {
	t.Helper()
	// A developer's own ssh-agent must not log in for the test.
	t.Setenv("SSH_AUTH_SOCK", "")
	w := &world{t: t, home: t.TempDir(), rep: &recorder{}, env: map[string]string{}, mem: providertest.NewMemory()}
	w.conf = filepath.Join(w.home, ".toppcloud.conf")
	w.serve(accepted...)
	return w
}

// serve starts the SSH server the provider's nodes are, accepting keys.
func (w *world) serve(keys ...keyPair) {
	w.t.Helper()
	var pubs []ssh.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.signer.PublicKey())
	}
	w.srv = sshxtest.NewServer(w.t, func(e *sshxtest.Exec) int { return 0 }, pubs...)
	host, port, _ := net.SplitHostPort(w.srv.Addr)
	w.mem.Address = host
	w.mem.SSHPort, _ = strconv.Atoi(port)
}

// mine gives the world's user a key in ~/.ssh that its nodes accept.
func (w *world) mine() keyPair {
	w.t.Helper()
	k := newKey(w.t, filepath.Join(w.home, ".ssh"), "id_ed25519")
	w.serve(k)
	return k
}

// config writes the config file: a [provider:default] of type memtest
// that gives new nodes authorized, then extra.
func (w *world) config(authorized keyPair, extra string) {
	w.t.Helper()
	text := "[provider:default]\nprovider = memtest\nroot_authorized_keys = " + authorized.line + "\n" + extra
	if err := os.WriteFile(w.conf, []byte(text), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) session(sshKey string) *Session {
	s := New(Options{
		ConfigPath: w.conf,
		StateDir:   filepath.Join(w.home, ".toppcloud"),
		Providers: provider.NewRegistry(provider.Info{
			Name: "memtest", DefaultImage: "name debian-12", DefaultSize: "ram 512",
			New: func(provider.Env) (provider.Driver, error) {
				if w.driver != nil {
					return w.driver, nil
				}
				return w.mem, nil
			},
		}),
		Getenv:   func(k string) string { return w.env[k] },
		Home:     w.home,
		SSHKey:   sshKey,
		EtcHosts: filepath.Join(w.home, "hosts"),
		Report:   w.rep,
	})
	w.t.Cleanup(func() { s.Close() })
	return s
}

func (w *world) record(name string) (state.NodeRecord, bool) {
	w.t.Helper()
	st, err := state.Open(filepath.Join(w.home, ".toppcloud"))
	if err != nil {
		w.t.Fatal(err)
	}
	rec, ok, err := st.Node(name)
	if err != nil {
		w.t.Fatal(err)
	}
	return rec, ok
}

var bg = context.Background()

// TestSession_CachesInTheStateDir: the caches move with the state
// directory ($TOPPCLOUD_STATE), not stay in ~/.toppcloud.
func TestSession_CachesInTheStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	s := New(Options{StateDir: dir, Home: t.TempDir(), Report: &recorder{}})
	if got, err := s.ManifestCache(); err != nil || got != filepath.Join(dir, "cache", "manifests") {
		t.Errorf("ManifestCache = %q, %v", got, err)
	}
	b, err := s.agentBinary()
	if err != nil || b.CacheDir != filepath.Join(dir, "cache", "binaries") {
		t.Errorf("agent binary cache = %+v, %v", b, err)
	}
}

// TestSession_Config: a missing config file is written by FirstRun when
// there is someone to ask, else a usage error naming init-config.
func TestSession_Config(t *testing.T) {
	w := newWorld(t)
	s := w.session("")
	if _, err := s.Config(bg); !usage.Is(err) || !strings.Contains(err.Error(), "toppcloud init-config --provider TYPE") {
		t.Errorf("Config without a file = %v", err)
	}
	s = w.session("")
	asked := 0
	s.o.FirstRun = func(ctx context.Context, path string) error {
		asked++
		return os.WriteFile(path, []byte("[provider:default]\nprovider = memtest\n"), 0o600)
	}
	f, err := s.Config(bg)
	if err != nil || asked != 1 || len(f.ProviderNames()) != 1 {
		t.Fatalf("Config with FirstRun = %v, %v (asked %d)", f, err, asked)
	}
	if _, err := s.Config(bg); err != nil || asked != 1 {
		t.Errorf("second Config: %v, asked %d times", err, asked)
	}
	if !strings.Contains(w.rep.String(), "does not exist; let's create it.") {
		t.Errorf("output:\n%s", w.rep)
	}
}
