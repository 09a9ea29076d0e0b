package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Memory and CPU limits. systemd-nspawn's --property needs systemd as the
// host's PID 1 (it asks systemd for a scope), which this kind of host does
// not have. On a cgroup v1 host we make one child cgroup per node in the
// memory and cpu hierarchies, under the cgroup the toppcloud process is in,
// set the limits there, and start nspawn inside it (see container.go): the
// container and everything in it inherit the cgroup. Checked on the
// development host (cgroup v1 hybrid, systemd not PID 1): the container's
// processes land in the child and memory.usage_in_bytes counts them.
//
// On a cgroup v2-only host no limit is applied; ListSizes says so.

const cfsPeriodUS = 100000

// cgroupV1Dir is our own cgroup directory in the v1 hierarchy that has the
// controller ctrl ("memory", "cpu"), or "" if there is none.
func cgroupV1Dir(ctrl string) string {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	mnt, root, ok := cgroupMount(mi, ctrl)
	if !ok {
		return ""
	}
	path, ok := procCgroupPath(pc, ctrl)
	if !ok {
		return ""
	}
	if root != "/" {
		rel, found := strings.CutPrefix(path, root)
		if !found {
			return ""
		}
		path = rel
	}
	return filepath.Join(mnt, path)
}

// cgroupMount finds the cgroup (v1) mount with controller ctrl in
// /proc/self/mountinfo; it returns the mount point and the mount's root
// within the hierarchy.
func cgroupMount(mountinfo []byte, ctrl string) (mountpoint, root string, ok bool) {
	for _, line := range strings.Split(string(mountinfo), "\n") {
		pre, post, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(qf[2], ",") {
			if o == ctrl {
				return unescapeMountinfo(pf[4]), unescapeMountinfo(pf[3]), true
			}
		}
	}
	return "", "", false
}

// procCgroupPath finds the v1 path for ctrl in /proc/self/cgroup.
func procCgroupPath(b []byte, ctrl string) (string, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == ctrl {
				return parts[2], true
			}
		}
	}
	return "", false
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of
// /proc/self/mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupLimitsAvailable reports whether both the memory and the cpu
// hierarchy are there and writable for us.
func cgroupLimitsAvailable() bool {
	for _, c := range []string{"memory", "cpu"} {
		dir := cgroupV1Dir(c)
		if dir == "" || unix.Access(dir, unix.W_OK) != nil {
			return false
		}
	}
	return true
}

// planCgroups names the node's memory and cpu cgroup directories, under
// our own cgroup in each hierarchy that exists and is writable. A missing
// hierarchy is skipped: that limit is then not enforced, as ListSizes says.
func planCgroups(id string) []string {
	var dirs []string
	for _, ctrl := range []string{"memory", "cpu"} {
		parent := cgroupV1Dir(ctrl)
		if parent == "" || unix.Access(parent, unix.W_OK) != nil {
			continue
		}
		dirs = append(dirs, filepath.Join(parent, cgroupName(id)))
	}
	return dirs
}

// createCgroups makes the planned cgroups and sets the limits; a
// hierarchy that refuses a limit is an error. On error it removes what it
// made.
func createCgroups(dirs []string, ramMB, vcpus int) (err error) {
	defer func() {
		if err != nil {
			_ = removeCgroups(dirs)
		}
	}()
	// Each setting is written where its file exists: the memory one in
	// the memory hierarchy, the cpu ones (period before quota) in the cpu
	// hierarchy.
	limits := [][2]string{
		{"memory.limit_in_bytes", strconv.Itoa(ramMB << 20)},
		{"cpu.cfs_period_us", strconv.Itoa(cfsPeriodUS)},
		{"cpu.cfs_quota_us", strconv.Itoa(vcpus * cfsPeriodUS)},
	}
	for _, dir := range dirs {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, kv := range limits {
			f := filepath.Join(dir, kv[0])
			if _, err := os.Stat(f); err != nil {
				continue
			}
			if err := os.WriteFile(f, []byte(kv[1]), 0o644); err != nil {
				return fmt.Errorf("set %s to %s: %w", f, kv[1], err)
			}
		}
	}
	return nil
}

// removeCgroups kills anything left in the node's cgroups and removes
// them. Only directories we name ourselves are touched.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, dir := range dirs {
		if !strings.HasPrefix(filepath.Base(dir), cgroupPrefix) {
			continue
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			killCgroup(dir)
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// cgroupPIDs lists the processes in a cgroup.
func cgroupPIDs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			pids = append(pids, n)
		}
	}
	return pids
}

func killCgroup(dir string) {
	for _, pid := range cgroupPIDs(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
