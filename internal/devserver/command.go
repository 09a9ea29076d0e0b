package devserver

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// commandStartTimeout bounds how long a command app may take to listen
// on $PORT.
const commandStartTimeout = 60 * time.Second

// startCommand runs a command app with PORT (and HOST=127.0.0.1) and
// reports ready once it accepts connections there.
func (s *Server) startCommand(inst *instance) (backend, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("command app: %w", err)
	}
	p := s.process(inst.cfg, s.token)
	p.Port = port
	cmd := exec.Command(filepath.Join(s.appDir, filepath.FromSlash(inst.cfg.Runner.Path)))
	cmd.Dir = s.appDir
	cmd.Env = s.processEnv(inst, p)
	pr, err := startProc("the application ("+inst.cfg.Runner.Path+")", cmd, s.o.Log)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	b := newProcessBackend(pr, addr)
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, commandStartTimeout)
		defer cancel()
		err := pr.waitPort(ctx, func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil && ctx.Err() != nil && s.ctx.Err() == nil {
			err = &appError{Title: fmt.Sprintf("the application (%s) did not listen on $PORT (%d) within %s", inst.cfg.Runner.Path, port, commandStartTimeout),
				Output: pr.tail.String(), Printed: true}
		}
		b.err = err
		close(b.ready)
	}()
	return b, nil
}

// freePort asks the system for a free port on 127.0.0.1. Another program
// could take it before the app binds it; on a developer's machine that
// is rare, and the app's own error then says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
