package setup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirewallRules: a node of its own opens no database port; a services
// node opens them to its clients alone (by family), still dropping the
// rest; anything but an address or prefix is refused before it reaches
// the file.
func TestFirewallRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clients []string
		want    []string
		notWant []string
		bad     bool
	}{
		{name: "own node", notWant: []string{"5432", "saddr {"}},
		{name: "v4 clients", clients: []string{"10.0.0.2", "10.0.1.0/24"},
			want:    []string{"ip saddr { 10.0.0.2/32, 10.0.1.0/24 } tcp dport { 5432, 3306, 6379 } accept"},
			notWant: []string{"ip6 saddr {"}},
		{name: "both families", clients: []string{"fd00::2", "10.0.0.2", "10.0.9.7/16", "10.1.0.1", "10.1.0.1"},
			want: []string{"ip saddr { 10.0.0.0/16, 10.1.0.1/32 } tcp dport { 5432, 3306, 6379 } accept",
				"ip6 saddr { fd00::2/128 } tcp dport { 5432, 3306, 6379 } accept"}},
		{name: "injection", clients: []string{"10.0.0.2 } tcp dport 1-65535 accept #"}, bad: true},
		{name: "name", clients: []string{"web1"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := firewallRules(22, 990, tc.clients)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q:\n%s", tc.clients, rules)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := string(rules)
			for _, w := range append(tc.want, "policy drop;", "tcp dport { 22, 80, 443 } accept") {
				if !strings.Contains(s, w) {
					t.Errorf("rules lack %q:\n%s", w, s)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(s, w) {
					t.Errorf("rules have %q:\n%s", w, s)
				}
			}
			// The database ports appear nowhere else: no rule opens
			// them to everyone.
			for _, l := range strings.Split(s, "\n") {
				if strings.Contains(l, "5432") && !strings.Contains(l, "saddr") {
					t.Errorf("database ports open without a source: %q", l)
				}
			}
			checkNft(t, rules)
		})
	}
}

// checkNft runs nft -c on the rules where nft can (root, with nft).
func checkNft(t *testing.T, rules []byte) {
	nft, err := exec.LookPath("nft")
	if err != nil || os.Geteuid() != 0 {
		return
	}
	p := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(p, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nft, "-c", "-f", p).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "Operation not permitted") {
			return
		}
		t.Errorf("nft -c: %v\n%s\n%s", err, out, rules)
	}
}
