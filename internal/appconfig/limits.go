package appconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// Limits are the resources every process of an app's instance may use
// together (each instance's systemd unit, and the transient units its
// update_fetch scripts and config.checker run in). Zero means the node's
// default, which the agent sizes from the node's memory.
type Limits struct {
	// MemoryMax (limit.memory) is the most memory in bytes; past it the
	// kernel reclaims, then kills a process of the app (never another
	// app's).
	MemoryMax int64
	// TasksMax (limit.tasks) bounds processes and threads.
	TasksMax int
	// CPUWeight (limit.cpu_weight, 1-10000) is the app's share of the
	// CPU when the node is busy, against other apps' and the node's own
	// services' 100.
	CPUWeight int
	// FileSizeMax (limit.file_size) is the largest file a process of
	// the app may write (RLIMIT_FSIZE): a runaway log or temporary file
	// stops there instead of filling the disk.
	FileSizeMax int64
}

// Bounds of the limit.* keys: below them an app would hardly start.
const (
	MinMemory   = 32 << 20
	MinTasks    = 16
	MaxTasks    = 1 << 20
	MinFileSize = 1 << 20
)

// limit parses one limit.* key.
func (p *parse) limit(k *ini.Key) {
	l := &p.c.Limits
	v := strings.TrimSpace(k.Value)
	switch k.Name {
	case "limit.memory":
		n, err := ParseBytes(v)
		if err == nil && n < MinMemory {
			err = fmt.Errorf("%s is less than the least an app gets, %dM", v, MinMemory>>20)
		}
		if err != nil {
			p.fail(k.Errorf("%v (write it as 512M or 2G)", err))
			return
		}
		l.MemoryMax = n
	case "limit.file_size":
		n, err := ParseBytes(v)
		if err == nil && n < MinFileSize {
			err = fmt.Errorf("%s is less than %dM", v, MinFileSize>>20)
		}
		if err != nil {
			p.fail(k.Errorf("%v (write it as 100M or 4G)", err))
			return
		}
		l.FileSizeMax = n
	case "limit.tasks":
		n, err := strconv.Atoi(v)
		if err != nil || n < MinTasks || n > MaxTasks {
			p.fail(k.Errorf("%q is not a number of processes and threads from %d to %d", v, MinTasks, MaxTasks))
			return
		}
		l.TasksMax = n
	case "limit.cpu_weight":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			p.fail(k.Errorf("%q is not a CPU weight from 1 to 10000 (100 is a system service's)", v))
			return
		}
		l.CPUWeight = n
	default:
		// known lets through only the limits in Keys.
		p.warn(k, "unknown key, ignored")
	}
}

// ParseBytes reads a size: a number of bytes with an optional K, M, G or
// T suffix (powers of 1024; a trailing B or iB is allowed: 512M, 1GiB).
func ParseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}
