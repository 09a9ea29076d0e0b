// Package sshx is toppcloud's SSH client, built on golang.org/x/crypto/ssh
// rather than the system ssh binary: it dials with retries while a node
// boots, checks host keys against a pinned known_hosts file, runs argv
// lists (quoted for the remote shell) with streamed stdin, stdout and
// stderr, and turns a failed command into *ExitError the way os/exec does.
//
// sshxtest.NewServer is an in-process SSH server for tests.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/backoff"
)

// Defaults for Config fields left zero.
const (
	DefaultDialTimeout = 15 * time.Second
	DefaultKeepAlive   = 30 * time.Second
	DefaultUser        = "root"
)

// Retry delays of Dial: start small so a node that is nearly up is seen
// quickly, grow so a slow one is not hammered.
const (
	firstRetryDelay = 100 * time.Millisecond
	maxRetryDelay   = 2 * time.Second
)

// Config says how to reach and log in to one server.
type Config struct {
	// Addr is host:port; a bare host means port 22.
	Addr string
	// User is the login user; empty means root.
	User string
	Auth Auth
	// HostKeys decides which host keys are accepted. Required.
	HostKeys HostKeyPolicy
	// DialTimeout bounds each attempt (TCP connect and SSH handshake);
	// zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// RetryFor keeps Dial retrying for this long while the server refuses,
	// resets or times out, as a node does while it boots. Authentication
	// and host key failures are returned at once. Zero means one attempt.
	RetryFor time.Duration
	// KeepAlive is the interval of keepalive requests, which detect a dead
	// connection and keep NAT mappings open during long silent commands.
	// Zero means DefaultKeepAlive; negative disables them.
	KeepAlive time.Duration
}

// Runner runs commands on a node; *Client implements it. Code that only
// runs commands (remote.Conn, Output) takes a Runner, not a *Client.
type Runner interface {
	// Run runs argv and waits for it; see (*Client).Run.
	Run(ctx context.Context, argv []string, opts RunOptions) error
}

var _ Runner = (*Client)(nil)

// Client is an open SSH connection to one server. It is safe for
// concurrent use; each Run opens its own session.
type Client struct {
	conn    *ssh.Client
	target  string // user@host for messages
	addr    string
	user    string
	hostKey string
	key     string // which key logged in, for LoginKey

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Dial connects and logs in, retrying for cfg.RetryFor on errors that
// waiting can cure. Errors name the user and host and say what to do;
// authentication failures are *AuthError, host key failures
// *UnknownHostError or *HostKeyMismatchError.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	addr, err := normalizeAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	user := cfg.User
	if user == "" {
		user = DefaultUser
	}
	target := user + "@" + displayAddr(addr)

	checkHostKey, algos, err := cfg.HostKeys.callbackFor(addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	keys, err := cfg.Auth.load()
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	authErr := func() error {
		return &AuthError{User: user, Host: displayAddr(addr), Tried: keys.tried, Notes: keys.notes, Offered: keys.offered}
	}
	if len(keys.signers) == 0 {
		keys.Close()
		return nil, authErr()
	}

	var hostKey string
	ccfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(keys.signers...)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if err := checkHostKey(hostname, remote, key); err != nil {
				return err
			}
			hostKey = KeyLine(key)
			return nil
		},
		HostKeyAlgorithms: algos,
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}

	start := time.Now()
	delay := backoff.Delay{Next: firstRetryDelay, Max: maxRetryDelay}
	for {
		conn, err := dialOnce(ctx, addr, ccfg, timeout)
		if err == nil {
			// The agent is only needed to sign during authentication.
			keys.Close()
			key := keys.used.String()
			if key == "" && len(keys.signers) > 0 {
				// Only ssh-agent's keys are not watched (see usedKey.watch).
				key = "a key of ssh-agent"
			}
			c := &Client{conn: conn, target: target, addr: addr, user: user, hostKey: hostKey, key: key, done: make(chan struct{})}
			if cfg.KeepAlive >= 0 {
				interval := cfg.KeepAlive
				if interval == 0 {
					interval = DefaultKeepAlive
				}
				go c.keepAlive(interval)
			}
			return c, nil
		}

		var unknown *UnknownHostError
		var mismatch *HostKeyMismatchError
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.As(err, &unknown):
			err = unknown
		case errors.As(err, &mismatch):
			err = mismatch
		case isAuthFailure(err):
			keys.Close()
			return nil, authErr()
		case retryable(err) && time.Since(start)+delay.Next < cfg.RetryFor:
			if serr := delay.Wait(ctx); serr == nil {
				continue
			}
			err = ctx.Err()
		case retryable(err) && cfg.RetryFor > 0:
			err = fmt.Errorf("%w (kept trying for %s)%s", err, time.Since(start).Round(100*time.Millisecond), hint(err))
		default:
			err = fmt.Errorf("%w%s", err, hint(err))
		}
		keys.Close()
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
}

// dialOnce makes one TCP connection and SSH handshake, bounded by timeout
// and abandoned when ctx ends.
func dialOnce(ctx context.Context, addr string, ccfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		conn.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, ccfg)
	if !stop() {
		// ctx ended during the handshake and closed conn.
		if err == nil {
			c.Close()
		}
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err // NewClientConn closed conn
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// RTT measures the round trip to the server now: the time one keepalive
// request takes to be answered (through any relay on the way, which a
// TCP connect would not see).
func (c *Client) RTT(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	reply := make(chan error, 1)
	go func() {
		_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		return time.Since(start), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// keepAlive sends a keepalive request every interval and closes the
// connection when replies stop, so commands on a dead connection fail
// instead of hanging.
func (c *Client) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			// OpenSSH answers this unknown request with a failure, which
			// is enough to know the connection is alive.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.done:
			return
		case err := <-reply:
			if err != nil {
				c.Close()
				return
			}
		case <-time.After(3 * interval):
			c.Close()
			return
		}
	}
}

// Close closes the connection and every session on it.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

// LoginKey says which key logged in: its file ("~/.ssh/id_ed25519
// (SHA256:...)"), "ssh-agent (SHA256:...)", or "a key of ssh-agent" when
// the agent's key cannot be told apart.
func (c *Client) LoginKey() string { return c.key }

// Addr returns the host:port the client is connected to.
func (c *Client) Addr() string { return c.addr }

// User returns the login user.
func (c *Client) User() string { return c.user }

// HostKey returns the server's host key (authorized_keys format) as
// accepted during the handshake; with PinOnFirstUse this is what was
// pinned.
func (c *Client) HostKey() string { return c.hostKey }

// normalizeAddr adds port 22 to a bare host.
func normalizeAddr(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("ssh: no address given")
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	host := strings.Trim(addr, "[]")
	if host == "" || strings.ContainsAny(host, " /") {
		return "", fmt.Errorf("ssh: invalid address %q", addr)
	}
	return net.JoinHostPort(host, "22"), nil
}

// displayAddr drops the default port for messages: 1.2.3.4, [::1]:2222.
func displayAddr(addr string) string {
	if h, p, err := net.SplitHostPort(addr); err == nil && p == "22" {
		return h
	}
	return addr
}
