package all_test

import (
	"testing"

	"github.com/toppcloud/toppcloud/internal/service/all"
)

// TestSiteSettings: every database server of a services node gets its
// address and clients; a node of its own gets the defaults; anything but
// addresses never reaches a server's configuration.
func TestSiteSettings(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		clients []string
		ok      bool
		none    bool
	}{
		{listen: "", none: true, ok: true},
		{listen: "10.0.0.5", clients: []string{"10.0.0.2", "10.0.1.0/24", "fd00::2"}, ok: true},
		{listen: "10.0.0.5'", clients: nil},
		{listen: "10.0.0.5", clients: []string{"10.0.0.2\nhost all all 0.0.0.0/0 trust"}},
		{listen: "10.0.0.5", clients: []string{"web1"}},
	} {
		s, err := all.SiteSettings(tc.listen, tc.clients)
		if (err == nil) != tc.ok {
			t.Errorf("%q %q: %v", tc.listen, tc.clients, err)
			continue
		}
		if !tc.ok {
			continue
		}
		if tc.none != (s == nil) {
			t.Errorf("%q: settings %v", tc.listen, s)
		}
		for _, name := range all.SiteServers {
			if !tc.none && (s[name].Host != tc.listen || len(s[name].Clients) != len(tc.clients)) {
				t.Errorf("%s: %+v", name, s[name])
			}
		}
	}
}
