package redis

import (
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/service"
)

func TestAppRule(t *testing.T) {
	r := appRule("blog", "pw")
	for _, want := range []string{"user blog on #", "resetkeys ~blog:* resetchannels &blog:*", "-@all +@all -@admin -@dangerous", "-scan", "-randomkey", "-pubsub", "-function"} {
		if !strings.Contains(r, want) {
			t.Errorf("rule %q lacks %q", r, want)
		}
	}
	if strings.Contains(r, " pw") || strings.Contains(r, ">pw") {
		t.Error("the password is in the rule in clear")
	}
	if matchPattern("blog") != "blog:*" || matchPattern("a*b") != `a\*b:*` {
		t.Errorf("patterns %q %q", matchPattern("blog"), matchPattern("a*b"))
	}
}

func TestWithInclude(t *testing.T) {
	conf := []byte("bind 127.0.0.1 -::1\nport 6379")
	once := withInclude(conf)
	if !strings.HasSuffix(string(once), "\ninclude "+OurConf+"\n") || !strings.HasPrefix(string(once), string(conf)+"\n") {
		t.Errorf("conf:\n%s", once)
	}
	if twice := withInclude(once); string(twice) != string(once) {
		t.Error("the include was added twice")
	}
}

func TestVarsAndNames(t *testing.T) {
	r := New(service.Node{})
	v := r.vars(service.App{Name: "blog"}, service.Credentials{User: "blog", Password: "PW"})
	if v["CONFIG_REDIS_URL"] != "redis://blog:PW@127.0.0.1:6379/0" || v["CONFIG_REDIS_PREFIX"] != "blog:" || v["CONFIG_REDIS_PORT"] != "6379" {
		t.Errorf("vars %v", v)
	}
	for _, n := range []string{"default", AdminUser} {
		if checkName(n) == nil {
			t.Errorf("%s accepted", n)
		}
	}
	if r.addr() != "127.0.0.1:6379" {
		t.Errorf("addr %s", r.addr())
	}
	r.settings.Listen = "0.0.0.0"
	if r.addr() != "127.0.0.1:6379" {
		t.Errorf("addr for 0.0.0.0: %s", r.addr())
	}
}

// TestAdminCredentials: the admin password is kept in the node's service
// state directory (root only), the same one on every call; a node without
// one is refused.
func TestAdminCredentials(t *testing.T) {
	h := hosttest.New(t, nil)
	r := New(service.Node{Host: h, StateDir: "/state/services"})
	c1, err := r.admin()
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := h.Stat("/state/services"); err != nil || a.Mode.Perm() != 0o700 {
		t.Errorf("state directory %v, %v", a, err)
	}
	if ok, _ := h.Exists("/state/services/redis-admin.json"); !ok {
		t.Error("no redis-admin.json in the state directory")
	}
	if c2, err := r.admin(); err != nil || c2 != c1 || c1.User != AdminUser {
		t.Errorf("second call %+v, %v; first %+v", c2, err, c1)
	}
	if _, err := New(service.Node{Host: h}).admin(); err == nil {
		t.Error("a node without a state directory was accepted")
	}
}

// TestOurConf_Site: a services node's Redis binds its private address
// besides loopback, in protected mode (the default user is off).
func TestOurConf_Site(t *testing.T) {
	own := New(service.Node{}).ourConf()
	if !strings.Contains(own, "bind 127.0.0.1\n") {
		t.Errorf("own node:\n%s", own)
	}
	site := New(service.Node{Settings: map[string]service.Settings{Name: {Host: "10.0.0.5", ExtraListen: []string{"10.0.0.5"}}}}).ourConf()
	if !strings.Contains(site, "bind 127.0.0.1 10.0.0.5\n") || !strings.Contains(site, "protected-mode yes\n") {
		t.Errorf("services node:\n%s", site)
	}
	if r := New(service.Node{Settings: map[string]service.Settings{Name: {ExtraListen: []string{"10.0.0.5"}}}}); r.addr() != "127.0.0.1:6379" {
		t.Errorf("the agent talks to %s, want loopback", r.addr())
	}
}
