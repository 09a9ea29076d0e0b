package instance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// ErrExited is wrapped by Systemctl.Exited when the unit's process is no
// longer running.
var ErrExited = errors.New("process exited")

// Exec runs a command and returns its standard output; a failed command
// returns an error that includes its standard error. ExecCommand is the
// real one; tests pass a fake.
type Exec func(ctx context.Context, argv ...string) ([]byte, error)

// ExecCommand runs argv[0] with the remaining arguments.
func ExecCommand(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return out, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out, nil
}

// Systemctl drives instance units through systemctl and journalctl.
type Systemctl struct {
	Exec Exec
}

// DaemonReload makes systemd read changed unit files.
func (s Systemctl) DaemonReload(ctx context.Context) error {
	_, err := s.Exec(ctx, "systemctl", "daemon-reload")
	return err
}

// Start enables the instance (so it comes back after a reboot) and
// starts it. For python and php units it returns once the server has
// booted or failed; the application itself may still be loading, so wait
// with a HealthCheck.
func (s Systemctl) Start(ctx context.Context, instance string) error {
	_, err := s.Exec(ctx, "systemctl", "enable", "--now", UnitName(instance))
	if err != nil {
		return fmt.Errorf("start %s: %w", instance, err)
	}
	return nil
}

// Stop stops and disables the instance. Requests in flight get the
// graceful timeout; a unit that does not exist is not an error.
func (s Systemctl) Stop(ctx context.Context, instance string) error {
	_, err := s.Exec(ctx, "systemctl", "disable", "--now", UnitName(instance))
	if err != nil && !strings.Contains(err.Error(), "not loaded") && !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("stop %s: %w", instance, err)
	}
	return nil
}

// Exited returns a non-nil error wrapping ErrExited once the instance's
// process has stopped or is waiting to be restarted, nil while it is
// starting or running. It fits HealthCheck.Exited.
func (s Systemctl) Exited(instance string) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := s.Exec(ctx, "systemctl", "show", "--property=ActiveState,SubState,Result,ExecMainStatus", UnitName(instance))
		if err != nil {
			return nil // unknown: let the probe and the timeout decide
		}
		props := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				props[k] = v
			}
		}
		active, sub := props["ActiveState"], props["SubState"]
		if active == "active" && sub != "auto-restart" || active == "activating" && sub != "auto-restart" || active == "reloading" {
			return nil
		}
		detail := fmt.Sprintf("unit %s/%s, result %s", active, sub, props["Result"])
		if st, err := strconv.Atoi(props["ExecMainStatus"]); err == nil && st != 0 {
			detail = fmt.Sprintf("exit status %d (unit %s/%s)", st, active, sub)
		}
		return fmt.Errorf("%w: %s", ErrExited, detail)
	}
}

// Tail returns the last n lines the instance wrote to the journal. It
// fits HealthCheck.Output.
func (s Systemctl) Tail(instance string, n int) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		out, err := s.Exec(ctx, "journalctl", "--unit", UnitName(instance), "--lines", strconv.Itoa(n), "--no-pager", "--output", "cat")
		if err != nil {
			return nil, err
		}
		text := strings.TrimRight(string(out), "\n")
		if text == "" {
			return nil, nil
		}
		return strings.Split(text, "\n"), nil
	}
}
