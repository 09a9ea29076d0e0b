package sshx

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// TerminalOptions say how RunTerminal connects a remote command to the
// local terminal.
type TerminalOptions struct {
	// Stdin, Stdout, Stderr are the local streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Pty asks the server for a terminal (ssh -t): the command sees one,
	// and the local terminal (Stdin must be it) is put in raw mode for the
	// command's lifetime and its size follows the local one.
	Pty bool
}

// RunTerminal runs argv with the local streams connected directly (an
// interactive program: a shell, manage.py createsuperuser) and returns
// its exit status. A failure to run it at all is an error.
func (c *Client) RunTerminal(ctx context.Context, argv []string, o TerminalOptions) (int, error) {
	cmd, err := Command(argv)
	if err != nil {
		return -1, err
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return -1, fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = o.Stdout, o.Stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return -1, err
	}
	if o.Pty {
		f, ok := o.Stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return -1, fmt.Errorf("-i needs a terminal as standard input")
		}
		fd := int(f.Fd())
		w, h, err := term.GetSize(fd)
		if err != nil {
			w, h = 80, 24
		}
		name := os.Getenv("TERM")
		if name == "" {
			name = "xterm"
		}
		if err := sess.RequestPty(name, h, w, ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}); err != nil {
			return -1, fmt.Errorf("terminal on %s: %w", c.target, err)
		}
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, err
		}
		defer term.Restore(fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					_ = sess.WindowChange(h, w)
				}
			}
		}()
	}
	if err := sess.Start(cmd); err != nil {
		return -1, fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
	}
	if o.Stdin != nil {
		// As with os/exec, a terminal that never reaches EOF keeps this
		// goroutine in Read after the command ended.
		go func() {
			_, _ = io.Copy(stdin, o.Stdin)
			stdin.Close()
		}()
	} else {
		stdin.Close()
	}
	stop := context.AfterFunc(ctx, func() {
		sess.Signal(ssh.SIGTERM)
		sess.Close()
	})
	defer stop()
	err = sess.Wait()
	if err == nil {
		return 0, nil
	}
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if ee, ok := err.(*ssh.ExitError); ok {
		if ee.Signal() != "" && ee.ExitStatus() == 0 {
			return 128 + 15, nil
		}
		return ee.ExitStatus(), nil
	}
	return -1, fmt.Errorf("run %s on %s: %w", truncate(cmd, 120), c.target, err)
}
