package postgresql

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/service"
)

// fakeCluster answers pg_lsclusters, systemctl and psql like a node with
// one cluster; it records the SQL it was sent.
type fakeCluster struct {
	online   bool
	verifier string // pg_authid.rolpassword of the app's role; "" = none
	dbExists bool
	sql      []string
}

func (f *fakeCluster) runner(t *testing.T) *hosttest.Runner {
	r := hosttest.NewRunner(t)
	r.Handle("pg_lsclusters", func(host.Command) (string, error) {
		state := "down"
		if f.online {
			state = "online"
		}
		return "15  main    5432 " + state + " postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n", nil
	})
	r.Handle("systemctl", func(c host.Command) (string, error) {
		if c.Argv[1] == "restart" {
			f.online = true
		}
		return "", nil
	})
	r.Handle("runuser", func(c host.Command) (string, error) {
		data, _ := io.ReadAll(c.Stdin)
		sql := string(data)
		f.sql = append(f.sql, sql)
		switch {
		case strings.Contains(sql, "FROM pg_authid"):
			if f.verifier == "" {
				return "", nil
			}
			return f.verifier + "\n", nil
		case strings.Contains(sql, "FROM pg_database"):
			if f.dbExists {
				return "1\n", nil
			}
			return "", nil
		case strings.HasPrefix(sql, "CREATE DATABASE"):
			f.dbExists = true
		case strings.HasPrefix(sql, "CREATE ROLE"), strings.HasPrefix(sql, "ALTER ROLE"):
			if i := strings.Index(sql, "PASSWORD '"); i >= 0 {
				f.verifier = strings.TrimSuffix(sql[i+len("PASSWORD '"):], "'")
			}
		}
		return "", nil
	})
	return r
}

func newHost(t *testing.T, r *hosttest.Runner) *host.Host {
	h := hosttest.New(t, r)
	hosttest.WriteFile(t, h.Root, "/etc/passwd", hosttest.Passwd+"postgres:x:104:110::/var/lib/postgresql:/bin/bash\n")
	hosttest.WriteFile(t, h.Root, "/etc/group", hosttest.Group+"postgres:x:110:\n")
	return h
}

var app = service.App{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog", User: "app-blog", Platform: "python"}

func TestSetup(t *testing.T) {
	f := &fakeCluster{}
	r := f.runner(t)
	h := newHost(t, r)
	p := New(service.Node{Host: h}, true)
	ctx := context.Background()
	if err := p.Install(ctx); err != nil {
		t.Fatal(err)
	}
	hba, _ := h.ReadFile("/etc/postgresql/15/main/pg_hba.conf")
	if !strings.Contains(string(hba), "host    sameuser  all       127.0.0.1/32   scram-sha-256") || strings.Contains(string(hba), "trust") {
		t.Errorf("pg_hba.conf:\n%s", hba)
	}
	if a, _, _ := h.Stat("/etc/postgresql/15/main/pg_hba.conf"); a.String() != "postgres:postgres 0640" {
		t.Errorf("pg_hba.conf is %s", a)
	}
	env, err := p.Setup(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	pw := env["CONFIG_PG_PASSWORD"]
	if len(pw) < 20 || env["CONFIG_PG_USER"] != "blog" || env["CONFIG_PG_DBNAME"] != "blog" || env["CONFIG_PG_HOST"] != "127.0.0.1" || env["CONFIG_PG_PORT"] != "5432" {
		t.Errorf("env %v", env)
	}
	u, err := url.Parse(env["CONFIG_PG_SQLALCHEMY"])
	if p2, _ := u.User.Password(); err != nil || u.Scheme != "postgresql" || u.User.Username() != "blog" || p2 != pw || u.Host != "127.0.0.1:5432" || u.Path != "/blog" {
		t.Errorf("SQLAlchemy URL %v %v", u, err)
	}
	all := strings.Join(f.sql, "\n")
	for _, want := range []string{`CREATE ROLE "blog" LOGIN NOSUPERUSER`, `CREATE DATABASE "blog" OWNER "blog" TEMPLATE template0`,
		`REVOKE ALL ON DATABASE "blog" FROM PUBLIC`, "CREATE EXTENSION IF NOT EXISTS postgis"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in:\n%s", want, all)
		}
	}
	// The password never reaches the server or a command line.
	for _, c := range r.CallLines() {
		if strings.Contains(c, pw) {
			t.Errorf("password in argv: %s", c)
		}
	}
	if strings.Contains(all, pw) || !scramMatches(f.verifier, pw) {
		t.Errorf("password sent in clear, or verifier wrong")
	}

	// Second setup: the verifier matches, no new password is set.
	f.sql = nil
	env2, err := p.Setup(ctx, app)
	if err != nil || env2["CONFIG_PG_PASSWORD"] != pw {
		t.Fatalf("second setup: %v", err)
	}
	for _, s := range f.sql {
		if strings.Contains(s, "PASSWORD") || strings.Contains(s, "CREATE DATABASE") {
			t.Errorf("second setup changed: %s", s)
		}
	}
	// A changed password on the server (by hand) is set back.
	f.verifier = "SCRAM-SHA-256$4096:AAAA$BBBB:CCCC"
	if _, err := p.Setup(ctx, app); err != nil || !scramMatches(f.verifier, pw) {
		t.Errorf("verifier not restored: %v", err)
	}
}

func TestSetup_ReservedNames(t *testing.T) {
	f := &fakeCluster{online: true}
	h := newHost(t, f.runner(t))
	p := New(service.Node{Host: h}, false)
	for _, name := range []string{"postgres", "template1", "pg_monitor", "public"} {
		a := app
		a.Name = name
		if _, err := p.Setup(context.Background(), a); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(f.sql) != 0 {
		t.Errorf("SQL ran: %q", f.sql)
	}
}

func TestPackagesAndSettings(t *testing.T) {
	h := hosttest.New(t, nil)
	p := New(service.Node{Host: h, Settings: map[string]service.Settings{"postgis": {Host: "10.0.0.5", Listen: "10.0.0.5"}}}, true)
	if got := strings.Join(p.Packages(service.App{Platform: "php"}), " "); got != "postgresql postgresql-client postgresql-postgis php-pgsql" {
		t.Errorf("packages %s", got)
	}
	if p.settings.Port != 5432 || p.settings.Host != "10.0.0.5" || !strings.Contains(p.serverConf(5432), "listen_addresses = '10.0.0.5'") {
		t.Errorf("settings %+v", p.settings)
	}
	if v := p.vars(app, service.Credentials{User: "blog", Password: "P"}); v["CONFIG_PG_HOST"] != "10.0.0.5" || v["CONFIG_PG_SQLALCHEMY"] != "postgresql://blog:P@10.0.0.5:5432/blog" {
		t.Errorf("vars %v", v)
	}
}

// TestSiteSettings: a services node listens on its private address too
// and lets each client address in with a password, into its own
// database only; a node of its own keeps loopback alone.
func TestSiteSettings(t *testing.T) {
	for _, tc := range []struct {
		name       string
		settings   service.Settings
		listen     string
		hosts      []string
		noneRemote bool
	}{
		{name: "own", listen: "localhost", noneRemote: true},
		{name: "services", settings: service.Settings{Host: "10.0.0.5", ExtraListen: []string{"10.0.0.5"}, Clients: []string{"10.0.0.2", "10.0.1.0/24", "fd00::3"}},
			listen: "localhost,10.0.0.5", hosts: []string{"10.0.0.2/32", "10.0.1.0/24", "fd00::3/128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(service.Node{Settings: map[string]service.Settings{Name: tc.settings}}, false)
			if conf := p.serverConf(5432); !strings.Contains(conf, "listen_addresses = '"+tc.listen+"'\n") {
				t.Errorf("conf:\n%s", conf)
			}
			hba := p.hbaConf()
			if !strings.HasPrefix(hba, hbaHead) {
				t.Errorf("pg_hba lost its local lines:\n%s", hba)
			}
			var remote []string
			for _, l := range strings.Split(hba, "\n") {
				f := strings.Fields(l)
				if len(f) == 5 && f[0] == "host" && !strings.HasPrefix(f[3], "127.") && f[3] != "::1/128" {
					if f[1] != "sameuser" || f[4] != "scram-sha-256" {
						t.Errorf("line %q lets more in than the role's own database with a password", l)
					}
					remote = append(remote, f[3])
				}
			}
			if strings.Join(remote, " ") != strings.Join(tc.hosts, " ") {
				t.Errorf("remote hosts %q, want %q", remote, tc.hosts)
			}
		})
	}
}
