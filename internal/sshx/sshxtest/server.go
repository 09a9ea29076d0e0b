// Package sshxtest helps test code that uses internal/sshx: Server is an
// in-process SSH server on 127.0.0.1 with exec handlers written in Go.
package sshxtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/sshx"
)

// Handler runs one exec request and returns its exit status.
type Handler func(e *Exec) int

// Exec is one command a client asked the server to run.
type Exec struct {
	// Command is the exec string as received (argv quoted by the client).
	Command string
	// User is the login user.
	User   string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Ctx ends when the client closes the session or the server stops.
	Ctx context.Context
	// Signals delivers the names of signals the client sends ("TERM").
	Signals <-chan string
	// KilledBy, set by the handler before returning, makes the server
	// report death by that signal ("KILL") instead of an exit status, as
	// sshd does for a killed process.
	KilledBy string
}

// ServerConfig configures StartServer.
type ServerConfig struct {
	Handler Handler
	// AuthorizedKeys may log in as any user. Empty means no one can.
	AuthorizedKeys []ssh.PublicKey
	// HostKeys are the server's host keys; default one new ed25519 key.
	HostKeys []ssh.Signer
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
}

// Server is a running in-process SSH server.
type Server struct {
	// Addr is the host:port it listens on.
	Addr string
	// HostKey is the first host key as an authorized_keys line.
	HostKey string

	ln     net.Listener
	cfg    *ssh.ServerConfig
	h      Handler
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	accepted int
	execs    []string
}

// NewServer starts a server on 127.0.0.1:0 that runs h for each exec
// request and lets the authorized keys log in. It stops at the end of the
// test.
func NewServer(t testing.TB, h Handler, authorized ...ssh.PublicKey) *Server {
	t.Helper()
	return StartServer(t, ServerConfig{Handler: h, AuthorizedKeys: authorized})
}

// StartServer starts a server as configured; it stops at the end of the
// test.
func StartServer(t testing.TB, c ServerConfig) *Server {
	t.Helper()
	if c.Handler == nil {
		t.Fatal("sshxtest: no Handler")
	}
	if len(c.HostKeys) == 0 {
		c.HostKeys = []ssh.Signer{NewSigner(t)}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	authorized := map[string]bool{}
	for _, k := range c.AuthorizedKeys {
		authorized[string(k.Marshal())] = true
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if authorized[string(k.Marshal())] {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	for _, k := range c.HostKeys {
		cfg.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		t.Fatalf("sshxtest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		Addr:    ln.Addr().String(),
		HostKey: sshx.KeyLine(c.HostKeys[0].PublicKey()),
		ln:      ln, cfg: cfg, h: c.Handler, ctx: ctx, cancel: cancel,
		conns: map[net.Conn]bool{},
	}
	s.wg.Go(s.serve)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Execs returns the commands run so far, in order.
func (s *Server) Execs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// Conns returns how many TCP connections the server has accepted, so
// tests can tell whether a client retried.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Config returns a client configuration for this server that logs in with
// signer and accepts exactly the server's host key.
func (s *Server) Config(signer ssh.Signer) sshx.Config {
	return sshx.Config{
		Addr:     s.Addr,
		User:     "root",
		Auth:     sshx.Auth{Signers: []ssh.Signer{signer}},
		HostKeys: sshx.FixedHostKey(s.HostKey),
	}
}

// Dial connects to the server as Config(signer) says; the client is closed
// at the end of the test.
func (s *Server) Dial(t testing.TB, signer ssh.Signer) *sshx.Client {
	t.Helper()
	c, err := sshx.Dial(t.Context(), s.Config(signer))
	if err != nil {
		t.Fatalf("sshxtest: dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewSigner returns a new ed25519 key.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	s, _ := newKey(t)
	return s
}

// WriteKey writes a new ed25519 key pair as ssh-keygen would: the private
// key at path (OpenSSH format, mode 0600) and the public one at path.pub,
// creating the directory. It returns the key and its authorized_keys line
// (with comment, when not empty).
func WriteKey(t testing.TB, path, comment string) (ssh.Signer, string) {
	t.Helper()
	s, priv := newKey(t)
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	if comment != "" {
		line += " " + comment
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, line
}

func newKey(t testing.TB) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func (s *Server) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = true
		s.accepted++
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				conn.Close()
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
			}()
			s.serveConn(conn)
		})
	}
}

func (s *Server) serveConn(conn net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	// Global requests (keepalives) are answered "not supported", like
	// OpenSSH does.
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.wg.Go(func() { s.serveSession(sc.User(), ch, chReqs) })
	}
}

func (s *Server) serveSession(user string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	signals := make(chan string, 8)
	started := make(chan *Exec, 1)
	go func() {
		// Requests end when the client closes the channel.
		defer cancel()
		for req := range reqs {
			switch req.Type {
			case "exec":
				var msg struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &msg); err != nil || len(started) > 0 {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, nil)
				started <- &Exec{Command: msg.Command, User: user, Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Ctx: ctx, Signals: signals}
			case "signal":
				var msg struct{ Signal string }
				if ssh.Unmarshal(req.Payload, &msg) == nil {
					select {
					case signals <- msg.Signal:
					default:
					}
				}
				req.Reply(false, nil)
			default:
				req.Reply(false, nil)
			}
		}
	}()
	var e *Exec
	select {
	case e = <-started:
	case <-ctx.Done():
		return
	}
	s.mu.Lock()
	s.execs = append(s.execs, e.Command)
	s.mu.Unlock()

	status := s.h(e)
	if e.KilledBy != "" {
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: e.KilledBy}))
	} else {
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(status)))
	}
}

// ShellHandler runs the command with /bin/sh -c on this machine, as sshd
// would with a POSIX login shell, streaming stdin, stdout and stderr.
// Signals from the client go to the command's process group; when the
// session closes, the group is killed.
func ShellHandler(e *Exec) int {
	cmd := exec.Command("/bin/sh", "-c", e.Command)
	cmd.Stdout = e.Stdout
	cmd.Stderr = e.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		io.WriteString(e.Stderr, err.Error()+"\n")
		return 127
	}
	if err := cmd.Start(); err != nil {
		io.WriteString(e.Stderr, err.Error()+"\n")
		return 127
	}
	// Not waited for: a command that exits without reading all of stdin
	// must not hang the session.
	go func() {
		io.Copy(stdin, e.Stdin)
		stdin.Close()
	}()
	done := make(chan struct{})
	defer close(done)
	go func() {
		pgid := -cmd.Process.Pid
		for {
			select {
			case <-done:
				return
			case name := <-e.Signals:
				if sig, ok := signalNumber(name); ok {
					syscall.Kill(pgid, sig)
				}
			case <-e.Ctx.Done():
				syscall.Kill(pgid, syscall.SIGKILL)
				return
			}
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.KilledBy = signalName(ws.Signal())
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		io.WriteString(e.Stderr, err.Error()+"\n")
		return 127
	}
}

// sshSignals lists the signal names of RFC 4254 and this system's numbers.
func sshSignals() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
		"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
		"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
		"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
		"USR2": syscall.SIGUSR2,
	}
}

func signalNumber(name string) (syscall.Signal, bool) {
	sig, ok := sshSignals()[name]
	return sig, ok
}

// signalName returns the SSH name of sig, or "" for one SSH has no name for.
func signalName(sig syscall.Signal) string {
	for name, n := range sshSignals() {
		if n == sig {
			return name
		}
	}
	return ""
}
