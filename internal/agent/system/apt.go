package system

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// LockTimeout is how long apt-get waits for another apt or dpkg (an
// unattended upgrade, cloud-init) to let go of dpkg's lock. Such a run
// commonly takes a few minutes, and a deploy has no wait of its own
// before it installs an app's packages: failing it for a lock that frees
// itself would be worse than waiting. setup-node waits for apt to be free
// before its packages step, so this only matters there when another run
// starts in between.
const LockTimeout = 5 * time.Minute

// Apt installs Debian packages with apt-get and asks dpkg which are
// installed.
type Apt struct {
	Host *host.Host
	// Line hears every line apt-get and dpkg write (for the client's
	// verbose log); nil drops them.
	Line func(string)
	// Again says what the user runs once apt's problem is fixed ("run
	// setup-node again"); it ends the error message.
	Again string
	// Hint, if set, may give a better hint than "fix the cause" for a
	// failure, from its output; "" keeps the general one.
	Hint func(tail []string) string
}

// dpkgQueryFormat lists name, status abbreviation and version.
const dpkgQueryFormat = "${Package}\\t${db:Status-Abbrev}\\t${Version}\\n"

// Query returns the installed version of each package in pkgs that is
// installed ("ii"); the others are missing.
func (a Apt) Query(ctx context.Context, pkgs []string) (installed map[string]string, missing []string, err error) {
	argv := append([]string{"dpkg-query", "-W", "-f=" + dpkgQueryFormat}, pkgs...)
	out, err := a.Host.Runner.Run(ctx, host.Command{Argv: argv})
	// Status 1 means some package is unknown to dpkg; the known ones are
	// still listed.
	if err != nil && host.ExitStatus(err) != 1 {
		return nil, nil, err
	}
	installed = map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		if strings.HasPrefix(f[1], "ii") {
			installed[f[0]] = f[2]
		}
	}
	for _, p := range pkgs {
		if _, ok := installed[p]; !ok {
			missing = append(missing, p)
		}
	}
	return installed, missing, nil
}

// Install installs the packages of pkgs that are missing (apt-get update,
// then apt-get install of those only; nothing runs when none is), telling
// progress what it does. It returns what it installed and the installed
// version of every package in pkgs.
func (a Apt) Install(ctx context.Context, pkgs []string, progress func(string)) (did []string, versions map[string]string, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	versions, missing, err := a.Query(ctx, pkgs)
	if err != nil || len(missing) == 0 {
		return nil, versions, err
	}
	lockWait := fmt.Sprintf("DPkg::Lock::Timeout=%d", int(LockTimeout.Seconds()))
	progress("apt-get update")
	if err := a.run(ctx, "apt-get update", []string{"apt-get", "update", "-q", "-o", lockWait}, nil); err != nil {
		return nil, nil, err
	}
	progress("installing " + strings.Join(missing, " "))
	argv := append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
		"-o", lockWait}, missing...)
	err = a.run(ctx, "apt-get install", argv, func(line string) {
		if strings.HasPrefix(line, "Setting up ") || strings.HasPrefix(line, "Unpacking ") {
			progress(line)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	versions, still, err := a.Query(ctx, pkgs)
	if err != nil {
		return missing, nil, err
	}
	if len(still) > 0 {
		return missing, versions, fmt.Errorf("apt-get install succeeded but %s still not installed", strings.Join(still, ", "))
	}
	return missing, versions, nil
}

// Interrupted reports whether a dpkg run was cut short (an earlier run
// interrupted, a full disk) and left work pending in its journal: apt
// refuses to do anything until it is finished.
func (a Apt) Interrupted() (bool, error) {
	entries, err := os.ReadDir(a.Host.Path("/var/lib/dpkg/updates"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// FinishInterrupted finishes what an interrupted dpkg run left
// (dpkg --configure -a).
func (a Apt) FinishInterrupted(ctx context.Context) error {
	return a.run(ctx, "dpkg --configure -a", []string{"dpkg", "--configure", "-a", "--force-confdef", "--force-confold"}, nil)
}

// run runs an apt or dpkg command, its lines to Line (and line, if set).
func (a Apt) run(ctx context.Context, what string, argv []string, line func(string)) error {
	_, err := a.Host.Runner.Run(ctx, host.Command{Argv: argv, Line: func(l string) {
		if a.Line != nil {
			a.Line(l)
		}
		if line != nil {
			line(l)
		}
	}})
	if err != nil {
		return a.error(what, err)
	}
	return nil
}

// error says what apt's failure means for the user; the output's tail
// rides along in the error.
func (a Apt) error(what string, err error) error {
	var ce *host.CommandError
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: %w", what, err)
	}
	again := a.Again
	if again == "" {
		again = "try again"
	}
	hint := "fix the cause (apt's output is below) and " + again
	if host.IsDiskFull(err) {
		hint = "the node's disk is full: free space (df -h shows where) and " + again
	} else if a.Hint != nil {
		if h := a.Hint(ce.Tail); h != "" {
			hint = h
		}
	}
	code := protocol.CodeCommandFailed
	if host.IsDiskFull(err) {
		code = protocol.CodeDiskFull
	}
	return &protocol.Error{Code: code, Tail: ce.Tail,
		Message: fmt.Sprintf("%s failed (exit status %d): %s; %s", what, ce.Status, aptErrorLine(ce), hint)}
}

// aptErrorLine picks apt's own error from its output: the last "E:" line
// (apt writes errors to stderr unbuffered, so they may come before the
// last lines of stdout), else the last line.
func aptErrorLine(ce *host.CommandError) string {
	for i := len(ce.Tail) - 1; i >= 0; i-- {
		l := strings.TrimSpace(ce.Tail[i])
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "dpkg: error") {
			return l
		}
	}
	return ce.LastLine()
}

// aptLocks are the files apt and dpkg hold fcntl locks on while they run.
var aptLocks = []string{
	"/var/lib/dpkg/lock-frontend",
	"/var/lib/dpkg/lock",
	"/var/lib/apt/lists/lock",
	"/var/cache/apt/archives/lock",
}

// LockHolder asks the kernel whether a process holds one of apt's locks
// (F_GETLK names it), without taking any, and says who.
func LockHolder(ctx context.Context, h *host.Host) (holder string, busy bool, err error) {
	for _, p := range aptLocks {
		f, err := os.Open(h.Path(p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		err = unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk)
		f.Close()
		if err != nil {
			return "", false, fmt.Errorf("check lock %s: %w", p, err)
		}
		if lk.Type != unix.F_UNLCK {
			name := "?"
			if b, err := os.ReadFile(h.Path(fmt.Sprintf("/proc/%d/comm", lk.Pid))); err == nil {
				name = strings.TrimSpace(string(b))
			}
			return fmt.Sprintf("%s (pid %d) holds %s", name, lk.Pid, p), true, nil
		}
	}
	return "", false, nil
}
