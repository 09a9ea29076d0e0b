package instance

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// Defaults of an instance's resource limits where app.ini sets none
// (appconfig.Limits).
const (
	// DefaultMemoryShare: an app may use up to half the node's memory.
	// One app then cannot starve the node's own services and the other
	// apps of all of it, and a small node still runs a real app.
	DefaultMemoryShare = 2
	// MinDefaultMemory is the least the default gives (a 256 MB node).
	MinDefaultMemory = 128 << 20
	// DefaultTasks bounds processes and threads: gunicorn's or php-fpm's
	// workers many times over, not a fork bomb.
	DefaultTasks = 512
	// DefaultCPUWeight is below the 100 of the node's own services
	// (sshd, Caddy, the agent), so a busy app slows other apps before it
	// slows the front server or a deploy.
	DefaultCPUWeight = 50
	// DefaultFileSize is the largest file an app may write.
	DefaultFileSize = 1 << 30
	// assumedMemory stands in for a node whose memory is unknown.
	assumedMemory = 1 << 30
)

// ResolveLimits fills the limits app.ini left unset with the defaults for
// a node with memTotal bytes of memory (0: unknown).
func ResolveLimits(l appconfig.Limits, memTotal int64) appconfig.Limits {
	if memTotal <= 0 {
		memTotal = assumedMemory
	}
	if l.MemoryMax == 0 {
		l.MemoryMax = max(memTotal/DefaultMemoryShare, MinDefaultMemory)
	}
	if l.TasksMax == 0 {
		l.TasksMax = DefaultTasks
	}
	if l.CPUWeight == 0 {
		l.CPUWeight = DefaultCPUWeight
	}
	if l.FileSizeMax == 0 {
		l.FileSizeMax = DefaultFileSize
	}
	return l
}

// MemTotal reads the machine's memory from /proc/meminfo's text; 0 when
// it is not there.
func MemTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
