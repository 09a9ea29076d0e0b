package local

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procRef names one process for its whole life: a pid alone may be reused
// by another process once ours is gone, a pid with its start time may not.
type procRef struct {
	PID   int    `json:"pid,omitempty"`
	Start uint64 `json:"start,omitempty"` // field 22 of /proc/PID/stat, clock ticks since boot
}

// selfRef returns the calling process.
func selfRef() procRef {
	pid := os.Getpid()
	st, _, _ := procStat(pid)
	return procRef{PID: pid, Start: st}
}

// procStat returns a process's start time and state letter.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// parseStat reads /proc/PID/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat line")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

// alive reports whether the process still runs (zombies count as dead).
func (p procRef) alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// isNspawnFor reports whether p is alive and is the container process of
// the node whose root is rootfs. The command line is checked too, so a
// record copied from elsewhere cannot make an unrelated process look like
// our node.
func (p procRef) isNspawnFor(rootfs string) bool {
	if !p.alive() {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
	if err != nil {
		return false
	}
	return cmdlineHasRoot(bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}), rootfs)
}

// cmdlineHasRoot looks for "-D ROOTFS" in argv. Right after start the
// process may still be the /bin/sh wrapper that joins the cgroups; its argv
// holds the same nspawn arguments.
func cmdlineHasRoot(argv [][]byte, rootfs string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if string(argv[i]) == "-D" && string(argv[i+1]) == rootfs {
			return true
		}
	}
	return false
}

// bootID identifies the current boot of the host.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// childPIDs lists the children of a process (all its threads').
func childPIDs(pid int) []int {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
