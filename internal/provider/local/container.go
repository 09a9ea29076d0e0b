package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// joinCgroupsScript moves the shell itself into each cgroup.procs file
// given, then execs nspawn, so the container is inside the node's cgroups
// from its first fork. (Moving nspawn after it started would race with its
// forks; Go's os/exec cannot join v1 cgroups between fork and exec.) The
// script is constant; paths and arguments arrive as positional parameters,
// never inside the script text: $1 is the number of cgroup.procs files
// that follow, then nspawn's argv.
const joinCgroupsScript = `n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"`

// earlyExitWindow is how long startContainer watches for nspawn failing
// at once (bad directory, namespace gone). Booting continues meanwhile, so
// it costs nothing in time-to-SSH.
const earlyExitWindow = 150 * time.Millisecond

// nspawnArgs is the container's command line.
//
// --register=no --keep-unit: the host has no systemd as PID 1 (no system
// bus), so nspawn must not ask machined or systemd for anything.
// -M: the machine name is made from the short id, because nspawn keeps
// per-machine state under /run/systemd/nspawn by that name, shared by every
// root on the host; the node's name goes to --hostname (and /etc/hostname).
// --resolv-conf=off --timezone=off: the files we wrote at creation stay
// as they are. --link-journal=no: nothing of the node under the host's
// /var/log/journal.
// --capability=CAP_NET_ADMIN: nspawn grants it only with --private-network,
// not with --network-namespace-path, yet the node has its own network
// namespace and setup-node must load its nftables firewall there. With
// nspawnEnv it also lets the node set its net.* sysctls.
func nspawnArgs(nspawn string, m nodeMeta, rootfs string) []string {
	return []string{
		nspawn,
		"--boot",
		"--register=no",
		"--keep-unit",
		"-D", rootfs,
		"-M", machineName(m.ShortID),
		"--hostname=" + m.Name,
		"--network-namespace-path=" + netnsPath(m.ShortID),
		"--console=read-only",
		"--resolv-conf=off",
		"--timezone=off",
		"--link-journal=no",
		"--capability=CAP_NET_ADMIN",
	}
}

// nspawnEnv is nspawn's environment: SYSTEMD_NSPAWN_API_VFS_WRITABLE=network
// mounts /proc/sys/net writable in the container (it is read-only like the
// rest of /proc/sys unless nspawn made the network namespace itself), so
// setup-node can set net.ipv4.tcp_migrate_req and friends for the node's
// own namespace. Nothing outside /proc/sys/net becomes writable.
var nspawnEnv = append(hostCommandEnv[:len(hostCommandEnv):len(hostCommandEnv)], "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")

// containerArgv wraps nspawnArgs in the cgroup-joining shell when there
// are cgroups to join.
func containerArgv(nspawnArgv []string, cgroupDirs []string) []string {
	if len(cgroupDirs) == 0 {
		return nspawnArgv
	}
	argv := []string{"/bin/sh", "-c", joinCgroupsScript, "sh", strconv.Itoa(len(cgroupDirs))}
	for _, d := range cgroupDirs {
		argv = append(argv, filepath.Join(d, "cgroup.procs"))
	}
	return append(argv, nspawnArgv...)
}

// startContainer starts nspawn detached: its own session (Ctrl-C in the
// terminal does not reach it), stdin from /dev/null, output appended to the
// node's console log, and no context (it must outlive this process). It
// records the process in m.
func (d *Driver) startContainer(m *nodeMeta, p nodePaths) error {
	nspawn, err := d.envHost.lookPath("systemd-nspawn")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.console, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open console log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n--- toppcloud: starting node %s at %s ---\n", m.Name, time.Now().UTC().Format(time.RFC3339))

	argv := containerArgv(nspawnArgs(nspawn, *m, p.rootfs), m.Cgroups)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = nspawnEnv
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	start, _, statErr := procStat(cmd.Process.Pid)
	// Reap the process when it ends, in case this process lives longer
	// than the container (tests); otherwise init inherits it.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if statErr != nil {
		return fmt.Errorf("systemd-nspawn exited at once; see %s", p.console)
	}
	select {
	case err := <-exited:
		return fmt.Errorf("systemd-nspawn exited at once (%v): %s (full log: %s)", err, consoleTail(p.console), p.console)
	case <-time.After(earlyExitWindow):
	}
	m.Proc = procRef{PID: cmd.Process.Pid, Start: start}
	m.BootID = bootID()
	return nil
}

// consoleTail returns the last lines of a console log, for error messages.
func consoleTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), 3)
}

// stopContainer stops a node's nspawn: SIGTERM, which nspawn turns into
// a clean shutdown of the container's systemd; after timeout (or once ctx
// is done: a half-stopped node is worse than a hard-stopped one) SIGKILL
// to the container's init, which kills its whole PID namespace, and to
// nspawn, and to anything left in the node's cgroups.
//
// A container whose process was never recorded (its creator was killed
// between starting it and writing the record) is found by its command line.
func stopContainer(ctx context.Context, m nodeMeta, rootfs string, timeout time.Duration) error {
	proc := m.Proc
	if !proc.isNspawnFor(rootfs) {
		var ok bool
		if proc, ok = findNspawn(rootfs); !ok {
			killAll(m.Cgroups)
			return nil
		}
	}
	pid := proc.PID
	wctx, cancel := context.WithTimeout(ctx, timeout)
	dead := false
	// nspawn passes SIGTERM on to the container's systemd as SIGRTMIN+3.
	// A signal to a PID namespace's init that has no handler yet is
	// dropped by the kernel, so a container still early in its boot misses
	// it: repeat it until the container goes or the time is up.
	for !dead && wctx.Err() == nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		rctx, rcancel := context.WithTimeout(wctx, 500*time.Millisecond)
		dead = waitDead(rctx, proc)
		rcancel()
	}
	cancel()
	if dead {
		killAll(m.Cgroups)
		return nil
	}
	for _, c := range childPIDs(pid) {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	killAll(m.Cgroups)
	wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if !waitDead(wctx, proc) {
		return fmt.Errorf("node %s: systemd-nspawn (pid %d) survived SIGKILL", m.Name, pid)
	}
	return nil
}

func killAll(cgroupDirs []string) {
	for _, d := range cgroupDirs {
		if strings.HasPrefix(filepath.Base(d), cgroupPrefix) {
			killCgroup(d)
		}
	}
}

// waitDead polls until p has exited or ctx is done.
func waitDead(ctx context.Context, p procRef) bool {
	for {
		if !p.alive() {
			return true
		}
		select {
		case <-ctx.Done():
			return !p.alive()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// findNspawn looks through /proc for the container process of rootfs.
func findNspawn(rootfs string) (procRef, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return procRef{}, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		start, _, err := procStat(pid)
		if err != nil {
			continue
		}
		if p := (procRef{PID: pid, Start: start}); p.isNspawnFor(rootfs) {
			return p, true
		}
	}
	return procRef{}, false
}
