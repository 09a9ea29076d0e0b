package setup_test

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent"
	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

func allSteps() []string {
	return []string{setup.StepOS, setup.StepAptWait, setup.StepPackages, setup.StepAgent, setup.StepUsers, setup.StepDirs, setup.StepSecret, setup.StepSiteRole,
		setup.StepFirewall, setup.StepSiteServices, setup.StepSysctl, setup.StepAppUnits, setup.StepCaddy, setup.StepLogs, setup.StepNodeInfo}
}

// testNode is a bare simulated node with the real agent on it.
type testNode struct {
	*agenttest.Node
	agent *agent.Agent
}

func newFakeNode(t *testing.T) *testNode {
	n := agenttest.NewNode(t)
	return &testNode{Node: n, agent: &agent.Agent{Host: n.Host, Layout: n.Layout, Fingerprint: n.Fingerprint, Admin: n.Admin, Setup: n.SetupHooks()}}
}

func runSetup(t *testing.T, n *testNode, args protocol.SetupArgs) agenttest.Result {
	t.Helper()
	return agenttest.Run(t, n.agent, protocol.OpSetup, agenttest.Request(protocol.OpSetup), args, nil)
}

// finalStatus maps each step to its last event status.
func finalStatus(events []protocol.Event) map[string]protocol.Event {
	m := map[string]protocol.Event{}
	for _, e := range events {
		if e.Status != protocol.StepStart && e.Status != protocol.StepProgress {
			m[e.Step] = e
		}
	}
	return m
}

func wantAttr(t *testing.T, h *host.Host, p string, want host.Attr) {
	t.Helper()
	got, _, err := h.Stat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	if !got.Equal(want) {
		t.Errorf("%s is %s, want %s", p, got, want)
	}
}

func TestSetup_FirstRunThenNothingChanges(t *testing.T) {
	n := newFakeNode(t)
	args := agenttest.SetupArgs(t)
	r := runSetup(t, n, args)
	if r.Err != nil || !r.Res.OK || r.Code != 0 {
		t.Fatalf("setup: code %d, err %v, result %+v", r.Code, r.Err, r.Res)
	}
	var res protocol.SetupResult
	if err := json.Unmarshal(r.Res.Data, &res); err != nil {
		t.Fatal(err)
	}
	// Every step that has something to do on a bare node did it.
	wantChanged := []string{setup.StepPackages, setup.StepUsers, setup.StepDirs, setup.StepSecret, setup.StepFirewall, setup.StepSysctl, setup.StepAppUnits, setup.StepCaddy, setup.StepLogs, setup.StepNodeInfo}
	if !slices.Equal(res.Changed, wantChanged) {
		t.Errorf("changed = %v, want %v", res.Changed, wantChanged)
	}
	st := finalStatus(r.Events)
	for _, s := range allSteps() {
		e, ok := st[s]
		if !ok {
			t.Errorf("no end event for step %q", s)
			continue
		}
		wantDone := slices.Contains(wantChanged, s)
		if wantDone && (e.Status != protocol.StepDone || !e.Changed) || !wantDone && e.Status != protocol.StepSkipped {
			t.Errorf("step %q ended %s (changed %v)", s, e.Status, e.Changed)
		}
	}

	h, l := n.Host, n.agent.Layout
	for p, attr := range setup.LayoutDirs(l) {
		wantAttr(t, h, p, attr)
	}
	// Root's alone: no one else makes anything where instances' socket
	// directories are made; Caddy's admin sockets are in a directory of
	// its own.
	wantAttr(t, h, l.Run, host.Attr{Mode: 0o755})
	wantAttr(t, h, l.CaddyRun, host.Attr{Mode: 0o750, User: "caddy", Group: "caddy"})
	wantAttr(t, h, l.Secret, host.Attr{Mode: 0o600})
	if s := n.ReadFile(l.Secret); len(s) < 40 || strings.ContainsAny(s, "\n =") {
		t.Errorf("secret has %d characters", len(s))
	}
	for _, lg := range r.Logs {
		if strings.Contains(lg.Text, n.ReadFile(l.Secret)) {
			t.Errorf("the secret appears in a log line")
		}
	}
	wantAttr(t, h, l.Sudoers, host.Attr{Mode: 0o440})
	if s := n.ReadFile(l.Sudoers); !strings.Contains(s, "www-mgr ALL=(root) NOPASSWD: /usr/local/bin/toppcloud node *\n") {
		t.Errorf("sudoers:\n%s", s)
	}
	if ok, _ := h.Exists("/etc/sudoers.d/.toppcloud.new"); ok {
		t.Error("the sudoers candidate was left behind")
	}
	keys := n.ReadFile("/home/www-mgr/.ssh/authorized_keys")
	if keys != args.AuthorizedKeys[0]+"\n" {
		t.Errorf("authorized_keys = %q", keys)
	}
	wantAttr(t, h, "/home/www-mgr/.ssh", host.Attr{Mode: 0o700, User: "www-mgr", Group: "www-mgr"})
	wantAttr(t, h, "/home/www-mgr/.ssh/authorized_keys", host.Attr{Mode: 0o600, User: "www-mgr", Group: "www-mgr"})
	if _, ok, _ := h.LookupGroup(layout.AppsGroup); !ok {
		t.Error("no group " + layout.AppsGroup)
	}
	if fw := n.ReadFile(l.Firewall); !strings.Contains(fw, "tcp dport { 22, 80, 443 } accept") || !strings.Contains(fw, "policy drop") {
		t.Errorf("firewall rules:\n%s", fw)
	}
	node := n.State()
	if !node.FirewallLoaded || !node.Enabled[layout.FirewallUnit] {
		t.Errorf("firewall loaded %v, unit enabled %v", node.FirewallLoaded, node.Enabled[layout.FirewallUnit])
	}
	if got := n.ReadFile(setup.SysctlPath); got != "1\n" {
		t.Errorf("tcp_migrate_req = %q", got)
	}
	if !strings.Contains(n.ReadFile(l.Sysctl), "net.ipv4.tcp_migrate_req = 1") {
		t.Error("sysctl.d file lacks the setting")
	}
	if d := n.ReadFile(l.CaddyDropIn); !strings.Contains(d, "ExecStart=/usr/bin/caddy run --config /var/lib/toppcloud/caddy.json\n") ||
		!strings.Contains(d, "Wants="+setup.RouterUnit) {
		t.Errorf("caddy drop-in:\n%s", d)
	}
	if u := n.ReadFile(path.Join(l.Units, setup.RouterUnit)); !strings.Contains(u, "ExecStart=/usr/bin/caddy run --config /var/lib/toppcloud/router.json\n") ||
		!strings.Contains(u, "User=caddy\n") {
		t.Errorf("router unit:\n%s", u)
	}
	empty, err := router.Render(&router.Table{}, nil, router.Options{AdminSocket: l.AdminSocket, RouterAdminSocket: l.RouterAdminSocket,
		RouterDir: l.RouterDir, StorageDir: l.CaddyStorage})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.ReadFile(l.CaddyConfig); got != string(empty.Front) {
		t.Errorf("caddy.json is not the front server's config rendered:\n%s", got)
	}
	if got := n.ReadFile(l.RouterConfig); got != string(empty.Router) {
		t.Errorf("router.json is not the empty table rendered:\n%s", got)
	}
	if node.CaddyConfig != string(empty.Front) || !node.Active[setup.FrontUnit] || node.RouterConfig != string(empty.Router) ||
		!node.Active[setup.RouterUnit] || !node.Enabled[setup.RouterUnit] {
		t.Errorf("caddy runs %q (active %v), the router %q (active %v)", node.CaddyConfig, node.Active[setup.FrontUnit],
			node.RouterConfig, node.Active[setup.RouterUnit])
	}
	wantAttr(t, h, l.CaddyStorage, host.Attr{Mode: 0o700, User: "caddy", Group: "caddy"})
	wantAttr(t, h, l.RouterDir, host.Attr{Mode: 0o750, User: "caddy", Group: "caddy"})
	if node.Enabled["php8.2-fpm.service"] || node.Active["php8.2-fpm.service"] {
		t.Error("the distribution's php-fpm service still runs")
	}
	if ok, _ := h.Exists(instance.TemplatePath(l)); !ok {
		t.Error("no template unit")
	}
	if ok, _ := h.Exists("/usr/local/share/toppcloud/python/toppcloud_wsgi.py"); !ok {
		t.Error("runtime assets not installed")
	}
	for _, p := range []string{l.Logrotate, l.Journald, l.Tmpfiles, l.FirewallUnit} {
		if ok, _ := h.Exists(p); !ok {
			t.Errorf("%s missing", p)
		}
	}
	var ni protocol.NodeInfo
	if err := json.Unmarshal([]byte(n.ReadFile(l.NodeInfo)), &ni); err != nil {
		t.Fatal(err)
	}
	if ni.Fingerprint != agenttest.FP || ni.SetupBy != "alice@laptop" || ni.OS.ID != "debian" || ni.Packages["caddy"] != "1.0-test" || ni.Name != "web1" || len(ni.Changed) == 0 {
		t.Errorf("node.json = %+v", ni)
	}
	if res.Node.Fingerprint != agenttest.FP {
		t.Errorf("result node = %+v", res.Node)
	}

	// The second run: every step skipped, and nothing but questions asked.
	n.Runner.Reset()
	first, _ := os.Stat(h.Path(l.NodeInfo))
	time.Sleep(10 * time.Millisecond)
	r = runSetup(t, n, args)
	if r.Err != nil || !r.Res.OK {
		t.Fatalf("second setup: %v %+v", r.Err, r.Res)
	}
	res = protocol.SetupResult{}
	json.Unmarshal(r.Res.Data, &res)
	if len(res.Changed) != 0 {
		t.Errorf("second run changed %v", res.Changed)
	}
	for s, e := range finalStatus(r.Events) {
		if e.Status != protocol.StepSkipped || e.Changed {
			t.Errorf("second run: step %q ended %s", s, e.Status)
		}
	}
	readOnly := map[string]bool{"dpkg-query": true, "systemctl is-enabled": true, "systemctl is-active": true,
		"systemctl list-unit-files": true, "nft list": true}
	for _, c := range n.Runner.Calls() {
		key := c[0]
		if len(c) > 1 && (c[0] == "systemctl" || c[0] == "nft") {
			key += " " + c[1]
		}
		if !readOnly[key] {
			t.Errorf("second run ran %q", c)
		}
	}
	if second, _ := os.Stat(h.Path(l.NodeInfo)); !second.ModTime().Equal(first.ModTime()) {
		t.Error("node.json was rewritten")
	}
	if n.State().Loads != 0 {
		t.Errorf("caddy config loaded %d times", n.State().Loads)
	}
	if hist := strings.Split(strings.TrimSpace(n.ReadFile(l.SetupLog)), "\n"); len(hist) != 2 || !strings.HasSuffix(hist[1], "no changes") {
		t.Errorf("setup.log:\n%s", strings.Join(hist, "\n"))
	}
}

func TestSetup_AptFailureShowsTailAndResumes(t *testing.T) {
	n := newFakeNode(t)
	n.FailApt("Reading package lists...\nE: Unable to locate package caddy\nE: Package 'php-fpm' has no installation candidate")
	r := runSetup(t, n, agenttest.SetupArgs(t))
	if r.Err != nil || r.Res.OK || r.Code != protocol.ExitFailed {
		t.Fatalf("want a failed result: code %d err %v res %+v", r.Code, r.Err, r.Res)
	}
	pe := r.Res.Error
	if pe.Code != protocol.CodeCommandFailed || !strings.Contains(pe.Message, "apt-get install") || !strings.Contains(pe.Message, "has no installation candidate") {
		t.Errorf("error = %+v", pe)
	}
	if !slices.Contains(pe.Tail, "E: Unable to locate package caddy") {
		t.Errorf("tail = %q", pe.Tail)
	}
	if st := finalStatus(r.Events); st[setup.StepPackages].Status != protocol.StepFailed || st[setup.StepOS].Status != protocol.StepSkipped {
		t.Errorf("events = %+v", st)
	}
	if _, ok := finalStatus(r.Events)[setup.StepUsers]; ok {
		t.Error("steps after the failure ran")
	}

	// Fixed (the archive is reachable again): the next run finishes.
	n.FailApt("")
	r = runSetup(t, n, agenttest.SetupArgs(t))
	if r.Err != nil || !r.Res.OK {
		t.Fatalf("re-run: %v %+v", r.Err, r.Res.Error)
	}
}

func TestSetup_DiskFullFromApt(t *testing.T) {
	n := newFakeNode(t)
	for _, out := range []string{
		"Unpacking caddy ...\ndpkg: error processing archive caddy.deb (--unpack):\n cannot copy extracted data for './usr/bin/caddy' to '/usr/bin/caddy.dpkg-new': failed to write (No space left on device)",
		"The following NEW packages will be installed:\nE: You don't have enough free space in /var/cache/apt/archives/.\nNeed to get 29.6 MB of archives.",
	} {
		n.FailApt(out)
		r := runSetup(t, n, agenttest.SetupArgs(t))
		if r.Res == nil || r.Res.OK || r.Res.Error.Code != protocol.CodeDiskFull || !strings.Contains(r.Res.Error.Message, "disk is full") {
			t.Fatalf("result = %+v", r.Res)
		}
		if strings.Contains(out, "E: ") && !strings.Contains(r.Res.Error.Message, "You don't have enough free space") {
			t.Errorf("message does not quote apt's error: %s", r.Res.Error.Message)
		}
	}
}

func TestSetup_RefusesOtherSystems(t *testing.T) {
	tests := []struct {
		name, osRelease, want string
	}{
		{"centos", "NAME=\"CentOS Stream\"\nID=\"centos\"\nVERSION_ID=\"9\"\nPRETTY_NAME=\"CentOS Stream 9\"\n", "CentOS Stream 9"},
		{"old debian", "ID=debian\nVERSION_ID=\"11\"\nPRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\n", "Debian 12 or newer"},
		{"old ubuntu", "ID=ubuntu\nVERSION_ID=\"20.04\"\nPRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\n", "Ubuntu 20.04.6 LTS"},
		{"missing", "", "no /etc/os-release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newFakeNode(t)
			if tt.osRelease == "" {
				os.Remove(n.Host.Path("/etc/os-release"))
			} else {
				hosttest.WriteFile(t, n.Host.Root, "/etc/os-release", tt.osRelease)
			}
			r := runSetup(t, n, agenttest.SetupArgs(t))
			if r.Res == nil || r.Res.OK || r.Res.Error.Code != protocol.CodeUnsupportedOS || !strings.Contains(r.Res.Error.Message, tt.want) {
				t.Fatalf("result = %+v", r.Res.Error)
			}
			if calls := n.Runner.Calls(); len(calls) != 0 {
				t.Errorf("commands ran on an unsupported system: %q", calls)
			}
		})
	}
}

func TestSetup_AcceptsUbuntu(t *testing.T) {
	n := newFakeNode(t)
	hosttest.WriteFile(t, n.Host.Root, "/etc/os-release", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n")
	r := runSetup(t, n, agenttest.SetupArgs(t))
	if r.Res == nil || !r.Res.OK {
		t.Fatalf("result = %+v", r.Res)
	}
}

// TestSetup_KeepsOtherKeysAndRoutes: a second setup-node adds keys
// without dropping others, loads the routing the route table renders
// (the configs on disk are from an older agent here), and records new TLS
// settings, which the front server's config then uses.
func TestSetup_KeepsOtherKeysAndRoutes(t *testing.T) {
	n := newFakeNode(t)
	args := agenttest.SetupArgs(t)
	if r := runSetup(t, n, args); !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	h, l := n.Host, n.agent.Layout
	// Someone added a key by hand; the node has a route, and configs an
	// older agent rendered.
	other := agenttest.AuthorizedKey(t, "bob@desk")
	n.AppendFile("/home/www-mgr/.ssh/authorized_keys", other+"\n")
	table := `{"version": 1, "routes": [{"location": "site.test", "app": "site", "live": "site.2024-01-01_001"}]}`
	if _, err := h.WriteFile(l.Routes, []byte(table), host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	old := `{"admin":{"listen":"unix//run/toppcloud/caddy-admin.sock"},"apps":{"http":{}}}`
	if _, err := h.WriteFile(l.CaddyConfig, []byte(old), host.Attr{Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	n.LoadCaddyConfig([]byte(old))

	args.AuthorizedKeys = append(args.AuthorizedKeys, agenttest.AuthorizedKey(t, "carol@home"))
	args.TLS = &protocol.TLSSettings{Issuer: protocol.IssuerACME, ACMECA: "https://ca.test/dir", ACMEEmail: "ops@example.com",
		ACMECARoot: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
	r := runSetup(t, n, args)
	if !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	keys := strings.Split(strings.TrimSpace(n.ReadFile("/home/www-mgr/.ssh/authorized_keys")), "\n")
	if len(keys) != 3 || keys[0] != args.AuthorizedKeys[0] || keys[1] != other || keys[2] != args.AuthorizedKeys[1] {
		t.Errorf("authorized_keys:\n%s", strings.Join(keys, "\n"))
	}
	node := n.State()
	if !strings.Contains(node.RouterConfig, `site\\.test`) || node.RouterConfig != n.ReadFile(l.RouterConfig) {
		t.Errorf("the router does not run the route table:\n%s", node.RouterConfig)
	}
	for _, want := range []string{`"ca": "https://ca.test/dir"`, `"email": "ops@example.com"`, l.ACMECARoot, l.CaddyStorage} {
		if !strings.Contains(node.CaddyConfig, want) || node.CaddyConfig != n.ReadFile(l.CaddyConfig) {
			t.Errorf("the front server's config lacks %s:\n%s", want, node.CaddyConfig)
		}
	}
	if got := n.ReadFile(l.ACMECARoot); got != args.TLS.ACMECARoot {
		t.Errorf("%s = %q", l.ACMECARoot, got)
	}
	if tls, err := setup.ReadTLSSettings(h, l); err != nil || tls != *args.TLS {
		t.Errorf("ReadTLSSettings = %+v, %v", tls, err)
	}
	// Once more, with no TLS settings (an older client): nothing changes.
	loads := node.Loads + node.RouterLoads
	args.TLS = nil
	if r := runSetup(t, n, args); !r.Res.OK || n.State().Loads+n.State().RouterLoads != loads {
		t.Fatalf("third setup-node: %+v, %d loads", r.Res, n.State().Loads+n.State().RouterLoads-loads)
	}
	if tls, _ := setup.ReadTLSSettings(h, l); tls.ACMECA != "https://ca.test/dir" {
		t.Errorf("settings after a setup-node without TLS settings: %+v", tls)
	}
}

func TestSetup_VisudoRefusalInstallsNothing(t *testing.T) {
	n := newFakeNode(t)
	n.RefuseSudoers()
	r := runSetup(t, n, agenttest.SetupArgs(t))
	if r.Res.OK || !strings.Contains(r.Res.Error.Message, "visudo") {
		t.Fatalf("result = %+v", r.Res.Error)
	}
	for _, p := range []string{n.agent.Layout.Sudoers, "/etc/sudoers.d/.toppcloud.new"} {
		if ok, _ := n.Host.Exists(p); ok {
			t.Errorf("%s exists after visudo refused the rule", p)
		}
	}
}

func TestSetup_BadArgs(t *testing.T) {
	tests := []struct {
		name string
		args protocol.SetupArgs
	}{
		{"no keys", protocol.SetupArgs{}},
		{"bad key", protocol.SetupArgs{AuthorizedKeys: []string{"ssh-ed25519 not-base64!"}}},
		{"two lines", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a") + "\n" + agenttest.AuthorizedKey(t, "b")}}},
		{"port", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a")}, SSHPort: 70000}},
		{"TLS issuer", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a")}, TLS: &protocol.TLSSettings{Issuer: "letsencrypt"}}},
		{"TLS plain-http CA", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a")},
			TLS: &protocol.TLSSettings{Issuer: protocol.IssuerACME, ACMECA: "http://ca.test/dir"}}},
		{"TLS root not PEM", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a")},
			TLS: &protocol.TLSSettings{Issuer: protocol.IssuerACME, ACMECARoot: "hello"}}},
		{"TLS email", protocol.SetupArgs{AuthorizedKeys: []string{agenttest.AuthorizedKey(t, "a")},
			TLS: &protocol.TLSSettings{Issuer: protocol.IssuerACME, ACMEEmail: "a b@c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newFakeNode(t)
			r := runSetup(t, n, tt.args)
			if r.Res == nil || r.Res.OK || r.Res.Error.Code != protocol.CodeBadRequest {
				t.Fatalf("result = %+v", r.Res)
			}
			if len(n.Runner.Calls()) != 0 {
				t.Errorf("ran commands: %q", n.Runner.Calls())
			}
		})
	}
}

func TestSetup_SSHPortStaysOpen(t *testing.T) {
	n := newFakeNode(t)
	args := agenttest.SetupArgs(t)
	args.SSHPort = 2222
	if r := runSetup(t, n, args); !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	if fw := n.ReadFile(n.agent.Layout.Firewall); !strings.Contains(fw, "tcp dport { 2222, 22, 80, 443 } accept") {
		t.Errorf("firewall:\n%s", fw)
	}
}

func TestSetup_WaitsForApt(t *testing.T) {
	n := newFakeNode(t)
	polls := 0
	n.agent.Setup.AptBusy = func(context.Context, *host.Host) (string, bool, error) {
		polls++
		return "unattended-upgr (pid 42) holds /var/lib/dpkg/lock-frontend", polls < 3, nil
	}
	r := runSetup(t, n, agenttest.SetupArgs(t))
	if !r.Res.OK || polls != 3 {
		t.Fatalf("polls %d, result %+v", polls, r.Res.Error)
	}
	sawProgress := false
	for _, e := range r.Events {
		if e.Step == setup.StepAptWait && e.Status == protocol.StepProgress && strings.Contains(e.Detail, "unattended-upgr (pid 42)") {
			sawProgress = true
		}
	}
	if !sawProgress {
		t.Error("no progress event naming the apt holder")
	}

	// Busy for good: a bounded wait, then an error naming the holder.
	n2 := newFakeNode(t)
	n2.agent.Setup.AptWait = 20 * time.Millisecond
	n2.agent.Setup.AptBusy = func(context.Context, *host.Host) (string, bool, error) {
		return "apt-get (pid 7) holds /var/lib/dpkg/lock", true, nil
	}
	r = runSetup(t, n2, agenttest.SetupArgs(t))
	if r.Res.OK || !strings.Contains(r.Res.Error.Message, "apt-get (pid 7)") {
		t.Fatalf("result = %+v", r.Res.Error)
	}
}

func TestSetup_CaddyThatDoesNotComeUp(t *testing.T) {
	n := newFakeNode(t)
	n.agent.Setup.CaddyWait = 50 * time.Millisecond
	n.Runner.Handle("systemctl", func(c host.Command) (string, error) {
		if c.Argv[1] == "restart" && c.Argv[2] == "caddy.service" {
			return "", nil // "starts", but never answers
		}
		return n.Systemctl(c)
	})
	r := runSetup(t, n, agenttest.SetupArgs(t))
	if r.Res.OK || !strings.Contains(r.Res.Error.Message, "admin API did not answer") || !slices.Contains(r.Res.Error.Tail, "caddy: started") {
		t.Fatalf("result = %+v", r.Res.Error)
	}
}

func TestSetup_FixesDriftedModes(t *testing.T) {
	n := newFakeNode(t)
	args := agenttest.SetupArgs(t)
	if r := runSetup(t, n, args); !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	l := n.agent.Layout
	os.Chmod(n.Host.Path(l.Secret), 0o644)
	os.Chmod(n.Host.Path(l.Blobs), 0o755)
	r := runSetup(t, n, args)
	if !r.Res.OK {
		t.Fatal(r.Res.Error)
	}
	var res protocol.SetupResult
	json.Unmarshal(r.Res.Data, &res)
	if !slices.Equal(res.Changed, []string{setup.StepDirs, setup.StepSecret, setup.StepNodeInfo}) {
		t.Errorf("changed = %v", res.Changed)
	}
	wantAttr(t, n.Host, l.Secret, host.Attr{Mode: 0o600})
	wantAttr(t, n.Host, l.Blobs, host.Attr{Mode: 0o700})
}
