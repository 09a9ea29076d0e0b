package sitetest

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// siteName and siteHost are the test site's name and its one location.
const (
	siteName = "shop"
	siteHost = "shop.test"
)

// site is the four nodes of the test site.
type site struct {
	e                  *env
	lb, web1, web2, db *node
}

// apps are the app nodes.
func (s *site) apps() []*node { return []*node{s.web1, s.web2} }

// rowsAt asks an app node itself (not the balancer) for the app's rows.
func rowsAt(t *testing.T, n *node, host string) (version string, rows []string) {
	t.Helper()
	code, body, err := httpGet(n.addr, host, "/rows")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/rows at %s: %d %v\n%s", host, n.name, code, err, body)
	}
	var r struct {
		Node    string   `json:"node"`
		Version string   `json:"version"`
		Rows    []string `json:"rows"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("GET %s/rows at %s: %v\n%s", host, n.name, err, body)
	}
	if r.Node != n.name {
		t.Errorf("GET %s/rows at %s answered from %q", host, n.name, r.Node)
	}
	return r.Version, r.Rows
}

// expectVersion checks that every app node, and the balancer, serve
// version.
func (s *site) expectVersion(t *testing.T, version string) {
	t.Helper()
	for _, n := range s.apps() {
		if v, _ := rowsAt(t, n, siteHost); v != version {
			t.Errorf("%s serves version %q, want %q", n.name, v, version)
		}
	}
	for range 6 {
		code, body, err := httpGet(s.lb.addr, siteHost, "/")
		if err != nil || code != http.StatusOK || !strings.Contains(body, ", version "+version+"\n") {
			t.Errorf("balancer: GET %s/ = %d %v, want version %s:\n%s", siteHost, code, err, version, body)
		}
	}
}

// expectBothServe checks that requests through the balancer reach both
// app nodes. least_conn picks at random among idle upstreams: forty
// requests in a row reach both but once in 2^39.
func (s *site) expectBothServe(t *testing.T) {
	t.Helper()
	seen := map[string]int{}
	for range 40 {
		code, body, err := httpGet(s.lb.addr, siteHost, "/")
		m := helloRE.FindStringSubmatch(body)
		if err != nil || code != http.StatusOK || m == nil {
			t.Fatalf("balancer: GET %s/ = %d %v\n%s", siteHost, code, err, body)
		}
		seen[m[1]]++
	}
	for _, n := range s.apps() {
		if seen[n.name] == 0 {
			t.Errorf("no request through the balancer reached %s (answered: %v)", n.name, seen)
		}
	}
}

// newSite creates the four nodes, writes the site's config section and
// sets the site up with setup-node --site.
func newSite(t *testing.T) *site {
	e := newEnv(t)
	s := &site{e: e}
	s.lb, s.web1, s.web2, s.db = e.createNode("lb"), e.createNode("web1"), e.createNode("web2"), e.createNode("db")
	e.appendConfig(fmt.Sprintf("\n[site:%s]\nlocations = %s https://%s\nbalancer = %s\nnodes = %s %s\nservices = %s\n",
		siteName, siteHost, secureHost, s.lb.name, s.web1.name, s.web2.name, s.db.name))
	e.ok("setup-node", "--site", siteName)
	// Registered after the nodes' destruction, so it runs before it.
	t.Cleanup(func() {
		if t.Failed() {
			s.logJournals(t)
		}
	})
	return s
}

// journalProblem finds the journal lines worth showing after a failure:
// Caddy's errors and warnings (JSON on stderr, so journald has them at
// priority info), gunicorn's errors and Python tracebacks.
var journalProblem = regexp.MustCompile(`"level":"(error|warn)"|\[(ERROR|CRITICAL)\]|Traceback|WORKER TIMEOUT`)

// logJournals logs each node's journal lines of the last quarter hour
// that journalProblem finds (the last 60 of each).
func (s *site) logJournals(t *testing.T) {
	for _, n := range []*node{s.lb, s.web1, s.web2, s.db} {
		out, err := n.exec(t, "journalctl", "--quiet", "--no-pager", "--since", "-15min")
		if err != nil {
			t.Logf("%s: journalctl: %v", n.name, err)
			continue
		}
		var found []string
		for line := range strings.Lines(out) {
			if journalProblem.MatchString(line) {
				found = append(found, line)
			}
		}
		t.Logf("%s: %d problems in the journal, the last ones:\n%s", n.name, len(found), strings.Join(found[max(0, len(found)-60):], ""))
	}
}

// TestIntegration_Site sets up a site on four local nodes (balancer, two
// app nodes, services node), deploys an app on PostgreSQL to it and
// checks what a site promises. The subtests share the nodes (setting up
// four takes minutes) and run in order: each leaves the site serving.
func TestIntegration_Site(t *testing.T) {
	s := newSite(t)
	e := s.e
	e.ok("update", writeApp(t, "1", ""), siteHost)

	t.Run("the balancer serves both app nodes", func(t *testing.T) {
		s.expectBothServe(t)
		s.expectVersion(t, "1")
	})

	t.Run("both app nodes read the same rows", func(t *testing.T) {
		for _, from := range s.apps() {
			note := "from-" + from.name
			code, body, err := httpDo(http.MethodPost, from.addr, siteHost, "/", "note="+note)
			if err != nil || code != http.StatusOK {
				t.Fatalf("POST at %s: %d %v\n%s", from.name, code, err, body)
			}
			for _, n := range s.apps() {
				if _, rows := rowsAt(t, n, siteHost); !slices.Contains(rows, note) {
					t.Errorf("%s does not see the row %q added through %s: %q", n.name, note, from.name, rows)
				}
			}
		}
		code, body, err := httpDo(http.MethodPost, s.lb.addr, siteHost, "/", "note=via-balancer")
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST through the balancer: %d %v\n%s", code, err, body)
		}
		for _, n := range s.apps() {
			if _, rows := rowsAt(t, n, siteHost); !slices.Contains(rows, "via-balancer") {
				t.Errorf("%s does not see the row added through the balancer: %q", n.name, rows)
			}
		}
	})

	t.Run("the database port is open to the app nodes only", func(t *testing.T) {
		const pg = 5432
		for _, n := range s.apps() {
			if !n.canConnect(t, s.db.addr, pg) {
				t.Errorf("%s cannot reach %s:%d", n.name, s.db.name, pg)
			}
		}
		if s.lb.canConnect(t, s.db.addr, pg) {
			t.Errorf("the balancer %s reaches %s:%d", s.lb.name, s.db.name, pg)
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(s.db.addr, fmt.Sprint(pg)), 3*time.Second); err == nil {
			c.Close()
			t.Errorf("the host reaches %s:%d", s.db.name, pg)
		}
		// The services node itself still uses its database on loopback
		// (backups, the agent's own checks).
		if !s.db.canConnect(t, "127.0.0.1", pg) {
			t.Errorf("%s cannot reach its own database on 127.0.0.1:%d", s.db.name, pg)
		}
	})

	t.Run("rolling updates fail no request", func(t *testing.T) {
		l := startLoad(t, s.lb.addr, siteHost)
		e.ok("update", writeApp(t, "2", ""), siteHost)
		e.ok("update", writeApp(t, "3", ""), siteHost)
		seen := l.stop()
		for _, n := range s.apps() {
			if seen[n.name] == 0 {
				t.Errorf("no request reached %s during the updates (answered: %v)", n.name, seen)
			}
		}
		s.expectVersion(t, "3")
	})

	t.Run("stopping and starting an app node fails no request", func(t *testing.T) {
		l := startLoad(t, s.lb.addr, siteHost)
		time.Sleep(time.Second)
		e.ok("stop-node", s.web2.name)
		time.Sleep(2 * time.Second)
		e.ok("start-node", s.web2.name)
		waitFor(t, 2*time.Minute, s.web2.name+" serving again", func() bool {
			code, _, err := httpGet(s.web2.addr, siteHost, "/rows")
			return err == nil && code == http.StatusOK
		})
		// Give the balancer's health checks (every second) time to send
		// it requests again before the load ends.
		time.Sleep(3 * time.Second)
		l.stop()
		// Both served before the stop; web2 must be back in the
		// balancer now, not only answering on its own.
		s.expectBothServe(t)
		s.expectVersion(t, "3")
	})

	t.Run("a version failing on one app node switches no node", func(t *testing.T) {
		code, out := e.run("update", writeApp(t, "4", s.web2.name), siteHost)
		if code == 0 {
			t.Fatalf("update of a version that cannot start on %s succeeded:\n%s", s.web2.name, out)
		}
		if !strings.Contains(out, s.web2.name) {
			t.Errorf("the failed update does not name %s:\n%s", s.web2.name, out)
		}
		t.Logf("failed update, as it should:\n%s", out)
		s.expectVersion(t, "3")
		// The failure left nothing behind that blocks the next update
		// (held instances, locks, a node out of the balancer).
		e.ok("update", writeApp(t, "5", ""), siteHost)
		s.expectVersion(t, "5")
		s.expectBothServe(t)
	})

	t.Run("https ends at the balancer, which alone is believed about it", func(t *testing.T) {
		e.ok("update", writeSchemeApp(t), "https://"+secureHost)
		roots := x509.NewCertPool()
		if pem := e.ok("node-ca", s.lb.name); !roots.AppendCertsFromPEM([]byte(pem)) {
			t.Fatalf("node-ca %s printed no certificate:\n%s", s.lb.name, pem)
		}
		seen := map[string]bool{}
		for range 20 {
			// A client's own X-Forwarded-For is replaced by the balancer.
			code, body, err := httpsDo(s.lb.addr, secureHost, "/", roots, "X-Forwarded-For", "6.6.6.6")
			f := strings.Fields(body)
			if err != nil || code != http.StatusOK || len(f) != 3 {
				t.Fatalf("GET https://%s/ through the balancer: %d %v\n%s", secureHost, code, err, body)
			}
			// The client is this machine, not the balancer.
			if f[1] != "https" || f[2] == "6.6.6.6" || f[2] == "-" || f[2] == s.lb.addr {
				t.Errorf("through the balancer the app saw %q, want https and this machine as the client", body)
			}
			seen[f[0]] = true
		}
		for _, n := range s.apps() {
			if !seen[n.name] {
				t.Errorf("no https request reached %s (answered: %v)", n.name, seen)
			}
		}
		if code, _, err := httpGet(s.lb.addr, secureHost, "/"); err != nil || code != http.StatusPermanentRedirect {
			t.Errorf("GET http://%s/ at the balancer: %d %v, want a redirect to https", secureHost, code, err)
		}
		// Straight at an app node, nobody's forwarded headers are believed.
		for _, n := range s.apps() {
			code, body, err := httpDo(http.MethodGet, n.addr, secureHost, "/", "", "X-Forwarded-Proto", "https", "X-Forwarded-For", "6.6.6.6")
			f := strings.Fields(body)
			if err != nil || code != http.StatusOK || len(f) != 3 {
				t.Fatalf("GET http://%s/ at %s: %d %v\n%s", secureHost, n.name, code, err, body)
			}
			if f[0] != n.name || f[1] != "http" || f[2] == "6.6.6.6" || f[2] == "-" {
				t.Errorf("at %s with forged headers the app saw %q, want http and the real client", n.name, body)
			}
		}
	})

	t.Run("run runs a script on an app node with the site's database", func(t *testing.T) {
		out := e.ok("run", siteHost, "setup-notes")
		if !strings.Contains(out, "notes table ready") {
			t.Errorf("run %s setup-notes:\n%s", siteHost, out)
		}
	})

	// Last: it deletes the rows the others added.
	t.Run("clear empties the services node and the app sets itself up again", func(t *testing.T) {
		if _, rows := rowsAt(t, s.web1, siteHost); len(rows) == 0 {
			t.Fatal("no rows before clear: the test would show nothing")
		}
		out := e.ok("-y", "clear", siteHost)
		if !strings.Contains(out, "ran its update_fetch on "+s.web1.name) {
			t.Errorf("clear does not say it ran update_fetch on %s:\n%s", s.web1.name, out)
		}
		// update_fetch made the table again: both nodes answer, with no
		// rows.
		for _, n := range s.apps() {
			if _, rows := rowsAt(t, n, siteHost); len(rows) != 0 {
				t.Errorf("%s still reads rows after clear: %q", n.name, rows)
			}
		}
		code, body, err := httpDo(http.MethodPost, s.lb.addr, siteHost, "/", "note=after-clear")
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST through the balancer after clear: %d %v\n%s", code, err, body)
		}
	})
}
