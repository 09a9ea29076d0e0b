package appsocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// Proxy passes the connections its listener (the instance's unix socket,
// handed over by systemd) accepts on to a command app at 127.0.0.1:Port,
// and only when what listens there belongs to the app's user UID. While
// the app is down, any local user could bind its port; a listener of
// another user gets nothing from the proxy, so it never sees the app's
// visitors, their cookies or its health checks. (systemd-socket-proxyd,
// which this replaces, connects to whatever listens.)
type Proxy struct {
	Port int
	UID  int
	// DialTimeout bounds connecting to the app (DefaultDialTimeout).
	DialTimeout time.Duration
	// Log reports refused and failed connections (nil: log.Printf).
	Log func(format string, args ...any)
}

// DefaultDialTimeout is how long the proxy waits for the app to accept.
const DefaultDialTimeout = 10 * time.Second

// ErrNotTheApp is returned by Connect when another user listens on the
// app's port.
var ErrNotTheApp = errors.New("the listener on the app's port is not the app's")

// Connect connects to the app and checks who listens (PeerUID).
func (p *Proxy) Connect(ctx context.Context) (*net.TCPConn, error) {
	timeout := p.DialTimeout
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)))
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	uid, err := PeerUID(tc)
	if err != nil {
		tc.Close()
		return nil, err
	}
	if uid != p.UID {
		tc.Close()
		return nil, fmt.Errorf("%w: 127.0.0.1:%d is user %d's, the app is user %d", ErrNotTheApp, p.Port, uid, p.UID)
	}
	return tc, nil
}

// Serve accepts connections until ctx ends or the listener fails.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	logf := p.Log
	if logf == nil {
		logf = log.Printf
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			app, err := p.Connect(ctx)
			if err != nil {
				logf("refused a connection: %v", err)
				return
			}
			defer app.Close()
			splice(c, app)
		})
	}
}

// splice copies both ways until both sides are done, passing each half
// close on.
func splice(a net.Conn, b *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(b, a)
		_ = b.CloseWrite()
	})
	_, _ = io.Copy(a, b)
	if uc, ok := a.(interface{ CloseWrite() error }); ok {
		_ = uc.CloseWrite()
	}
	wg.Wait()
}

// Activated returns the listener systemd handed over (socket activation:
// LISTEN_PID, LISTEN_FDS, the first descriptor being 3).
func Activated() (net.Listener, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || os.Getenv("LISTEN_FDS") != "1" {
		return nil, errors.New("no socket from systemd (LISTEN_PID/LISTEN_FDS): run me from a .socket unit")
	}
	f := os.NewFile(3, "listen")
	defer f.Close()
	return net.FileListener(f)
}
