package cli

import (
	"strings"
	"testing"
)

// TestSiteCommands_BadInputTouchesNoNode: a site's commands check the
// site, the app and the arguments before anything runs on a node.
func TestSiteCommands_BadInputTouchesNoNode(t *testing.T) {
	n := newAgentNode(t)
	for _, name := range []string{"web1", "web2"} {
		if code, _, stderr := n.run("create-node", name); code != ExitOK {
			t.Fatalf("create %s: %s", name, stderr)
		}
	}
	n.h.writeConfig("\n[site:blog]\nlocations = blog.example.com\nnodes = web1 web2\n")
	before := len(n.srv.Execs())
	files := appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\nservice.files =\n", "main.py": testWSGI})
	db := appDir(t, map[string]string{"app.ini": "[production]\napp_name = blog\nrunner = main.py\nservice.postgresql =\n", "main.py": testWSGI})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"update", files, "blog.example.com"}, "share no file system"},
		{[]string{"update", files, "--site", "blog"}, "share no file system"},
		{[]string{"update", db, "blog.example.com"}, "no services node"},
		{[]string{"update", goodApp(t), "--site", "nope"}, "no [site:nope]"},
		{[]string{"update", goodApp(t), "other.example.com", "--site", "blog"}, "not a location of site blog"},
		{[]string{"update", goodApp(t), "--site", "blog", "--node", "web1"}, "--site or --node"},
		{[]string{"setup-node", "web1", "--site", "blog"}, "not both"},
		{[]string{"setup-node"}, "HOSTNAME or --site"},
		{[]string{"query"}, "NODE or --site"},
		{[]string{"activate", "other.example.com", "prev", "--site", "blog"}, "not a location of site blog"},
		{[]string{"logs", "blog.example.com", "-n", "-1"}, "negative"},
		{[]string{"backup", "blog.example.com", "remote:b"}, "no services node"},
		{[]string{"run", "--node", "db1", "blog.example.com", "manage.py"}, "not an app node of site blog"},
	} {
		code, _, stderr := n.run(tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d mentioning %q:\n%s", tc.args, code, ExitUsage, tc.want, stderr)
		}
	}
	if execs := n.srv.Execs(); len(execs) != before {
		t.Errorf("commands ran on a node: %q", execs[before:])
	}
}

// TestSiteConfig_Errors: a broken [site:NAME] is a usage error naming
// its line when a command uses sites.
func TestSiteConfig_Errors(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	n.h.writeConfig("\n[site:blog]\nlocations = blog.example.com\nnodes = web1 ghost\n")
	code, _, stderr := n.run("update", goodApp(t), "--site", "blog")
	if code != ExitUsage || !strings.Contains(stderr, "no node named ghost") || !strings.Contains(stderr, ".toppcloud.conf:") {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
}
