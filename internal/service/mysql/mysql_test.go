package mysql

import (
	"context"
	"io"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/service"
)

var app = service.App{Name: "shop-1", DataDir: "/var/lib/toppcloud/apps/shop-1", User: "app-shop-1", Platform: "php"}

func TestSetup(t *testing.T) {
	r := hosttest.NewRunner(t)
	var sql []string
	r.Handle("systemctl", hosttest.OK)
	r.Handle("mariadb", func(c host.Command) (string, error) {
		data, _ := io.ReadAll(c.Stdin)
		sql = append(sql, string(data))
		return "", nil
	})
	h := hosttest.New(t, r)
	m := New(service.Node{Host: h})
	ctx := context.Background()
	if err := m.Install(ctx); err != nil {
		t.Fatal(err)
	}
	conf, _ := h.ReadFile(ConfPath)
	if !strings.Contains(string(conf), "bind-address = 127.0.0.1") {
		t.Errorf("conf:\n%s", conf)
	}
	env, err := m.Setup(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	pw := env["CONFIG_MYSQL_PASSWORD"]
	if env["CONFIG_MYSQL_SQLALCHEMY"] != "mysql://shop-1:"+pw+"@127.0.0.1:3306/shop-1" || env["CONFIG_MYSQL_USER"] != "shop-1" || env["CONFIG_MYSQL_DBNAME"] != "shop-1" {
		t.Errorf("env %v", env)
	}
	all := strings.Join(sql, "\n")
	for _, want := range []string{"CREATE DATABASE IF NOT EXISTS `shop-1`", "GRANT ALL PRIVILEGES ON `shop-1`.* TO 'shop-1'@'localhost'",
		"IDENTIFIED BY PASSWORD '" + nativeHash(pw) + "'"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in\n%s", want, all)
		}
	}
	if strings.Contains(all, pw) {
		t.Error("the password was sent in clear")
	}
	for _, c := range r.CallLines() {
		if strings.Contains(c, pw) {
			t.Errorf("password in argv: %s", c)
		}
	}
	if strings.Join(m.Packages(app), " ") != "mariadb-server mariadb-client php-mysql" {
		t.Errorf("packages %v", m.Packages(app))
	}
	for _, name := range []string{"mysql", "information_schema", "root"} {
		a := app
		a.Name = name
		if _, err := m.Setup(ctx, a); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNativeHash(t *testing.T) {
	// MySQL's documented PASSWORD('password') value.
	if got := nativeHash("password"); got != "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19" {
		t.Errorf("hash %s", got)
	}
}

func TestCheckBackup(t *testing.T) {
	h := hosttest.New(t, nil)
	m := New(service.Node{Host: h})
	dir := "/b/mysql"
	for _, tc := range []struct {
		dump string
		ok   bool
	}{
		{"-- MariaDB dump 10.19\n\nCREATE TABLE t (k int);\n-- Dump completed on 2026-12-04\n", true},
		{"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\nINSERT ...;\n-- Dump completed\n", true},
		{"-- MariaDB dump 10.19\nCREATE TABLE t (k int);\nINSERT INTO t VALUES (1", false},
		{"PGDMP garbage", false},
	} {
		hosttest.WriteFile(t, h.Root, path.Join(dir, DumpName), tc.dump)
		err := m.CheckBackup(context.Background(), app, dir)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.dump, err)
		}
	}
	os.Remove(h.Path(path.Join(dir, DumpName)))
	if err := m.CheckBackup(context.Background(), app, dir); err == nil {
		t.Error("a missing dump was accepted")
	}
}

// TestInstall_Systemctl: Install enables the server, starts it when it is
// not running and restarts it only when it runs on a changed
// configuration, all through the agent's systemctl wrapper.
func TestInstall_Systemctl(t *testing.T) {
	for _, tc := range []struct {
		name     string
		active   bool
		confDone bool // the configuration is already the one Install writes
		want     []string
	}{
		{"stopped", false, true, []string{"is-enabled", "is-active", "start"}},
		{"running, conf changed", true, false, []string{"is-enabled", "is-active", "restart"}},
		{"running, conf unchanged", true, true, []string{"is-enabled", "is-active"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := hosttest.NewRunner(t)
			var verbs []string
			r.Handle("systemctl", func(c host.Command) (string, error) {
				verbs = append(verbs, c.Argv[1])
				if c.Argv[len(c.Argv)-1] != Unit {
					t.Errorf("systemctl %v: not %s", c.Argv[1:], Unit)
				}
				switch c.Argv[1] {
				case "is-enabled":
					return "enabled\n", nil
				case "is-active":
					if tc.active {
						return "active\n", nil
					}
					return "inactive\n", hosttest.Fail(c, 3, "")
				}
				return "", nil
			})
			r.Handle("mariadb", hosttest.OK)
			h := hosttest.New(t, r)
			m := New(service.Node{Host: h})
			if tc.confDone {
				hosttest.WriteFile(t, h.Root, ConfPath, m.conf())
			}
			if err := m.Install(context.Background()); err != nil {
				t.Fatal(err)
			}
			if strings.Join(verbs, " ") != strings.Join(tc.want, " ") {
				t.Errorf("systemctl %q, want %q", verbs, tc.want)
			}
		})
	}
}

// TestSiteSettings: a services node's MariaDB binds its private address
// too, and the app's user exists for each client address besides the
// local ones.
func TestSiteSettings(t *testing.T) {
	own := New(service.Node{})
	if !strings.Contains(own.conf(), "bind-address = 127.0.0.1\n") || strings.Join(own.userHosts(), " ") != "localhost 127.0.0.1 ::1" {
		t.Errorf("own node: %q %q", own.conf(), own.userHosts())
	}
	site := New(service.Node{Settings: map[string]service.Settings{Name: {Host: "10.0.0.5", ExtraListen: []string{"10.0.0.5"}, Clients: []string{"10.0.0.2", "10.0.0.3"}}}})
	if !strings.Contains(site.conf(), "bind-address = 127.0.0.1,10.0.0.5\n") {
		t.Errorf("conf:\n%s", site.conf())
	}
	if got := strings.Join(site.userHosts(), " "); got != "localhost 127.0.0.1 ::1 10.0.0.2 10.0.0.3" {
		t.Errorf("user hosts %s", got)
	}
}

// TestSetup_DropsFormerClients: on a services node, the app's users of
// addresses that are no longer the site's app nodes are dropped; the
// others are kept (and corrected).
func TestSetup_DropsFormerClients(t *testing.T) {
	r := hosttest.NewRunner(t)
	var sql []string
	r.Handle("mariadb", func(c host.Command) (string, error) {
		data, _ := io.ReadAll(c.Stdin)
		sql = append(sql, string(data))
		if strings.HasPrefix(string(data), "SELECT host FROM mysql.user") {
			return "localhost\n127.0.0.1\n::1\n10.0.0.2\n10.0.0.9\n", nil
		}
		return "", nil
	})
	h := hosttest.New(t, r)
	m := New(service.Node{Host: h, Settings: map[string]service.Settings{Name: {Host: "10.0.0.5", ExtraListen: []string{"10.0.0.5"}, Clients: []string{"10.0.0.2", "10.0.0.3"}}}})
	if _, err := m.Setup(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(sql, "\n")
	if !strings.Contains(all, "DROP USER IF EXISTS 'shop-1'@'10.0.0.9';") {
		t.Errorf("the former client's user is kept:\n%s", all)
	}
	for _, kept := range []string{"localhost", "127.0.0.1", "::1", "10.0.0.2", "10.0.0.3"} {
		if strings.Contains(all, "DROP USER IF EXISTS 'shop-1'@'"+kept+"'") {
			t.Errorf("%s's user is dropped:\n%s", kept, all)
		}
		if !strings.Contains(all, "GRANT ALL PRIVILEGES ON `shop-1`.* TO 'shop-1'@'"+kept+"'") {
			t.Errorf("no grant for %s:\n%s", kept, all)
		}
	}
}
