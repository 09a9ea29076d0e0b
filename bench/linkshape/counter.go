//go:build linux

package linkshape

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Counter counts the bytes this machine sends to a node's SSH port (an
// nftables table of its own): SSH payload plus TCP/IP headers, the same
// measure for every tool, and through a shaped link what crossed it.
type Counter struct {
	table string
}

// NewCounter starts counting what goes to addr:22. Close removes it.
func NewCounter(addr string) (*Counter, error) {
	c := &Counter{table: fmt.Sprintf("tcbytes%d", os.Getpid())}
	rules := fmt.Sprintf("table inet %s {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ip daddr %s tcp dport 22 counter\n  }\n}\n", c.table, addr)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft: %v\n%s", err, out)
	}
	return c, nil
}

var counterRE = regexp.MustCompile(`counter packets \d+ bytes (\d+)`)

// Bytes is the count so far.
func (c *Counter) Bytes() (int64, error) {
	out, err := exec.Command("nft", "list", "chain", "inet", c.table, "out").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("nft list: %v\n%s", err, out)
	}
	m := counterRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no counter in:\n%s", out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

// Close removes the counter's table.
func (c *Counter) Close() {
	_ = exec.Command("nft", "delete", "table", "inet", c.table).Run()
}

// LoadAvg is the first three fields of /proc/loadavg: the benchmarks
// print it with their numbers, as the machine may be shared.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
