package all_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/files"
	"github.com/toppcloud/toppcloud/internal/service/mysql"
	"github.com/toppcloud/toppcloud/internal/service/postgresql"
	"github.com/toppcloud/toppcloud/internal/service/redis"
	"github.com/toppcloud/toppcloud/internal/service/servicetest"
	"github.com/toppcloud/toppcloud/internal/service/writableroot"
)

// envOnNode tells this test binary that it runs inside the node.
const envOnNode = "TOPPCLOUD_SERVICES_ON_NODE"

// TestServices_OnNode runs the contract suite of every service on one
// real local node: the test binary copies itself there and runs this
// test again inside, as root, where the services' code works on the
// node's own PostgreSQL, MariaDB, Redis and files as the agent's will.
func TestServices_OnNode(t *testing.T) {
	if os.Getenv(envOnNode) == "1" {
		onNode(t)
		return
	}
	localtest.Skip(t)
	d := localtest.NewDriver(t, nil)
	n := localtest.CreateNode(t, d, "", provider.CreateRequest{Size: provider.Size{ID: "large"}})
	c := n.Dial(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.Stdin = f
	if out, err := s.CombinedOutput("cat > /root/services.test && chmod 0700 /root/services.test"); err != nil {
		t.Fatalf("upload the test binary: %v\n%s", err, out)
	}
	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pr, pw := io.Pipe()
	s.Stdout, s.Stderr = pw, pw
	done := make(chan struct{})
	var lines []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			t.Log(sc.Text())
		}
	}()
	err = s.Run(envOnNode + "=1 /root/services.test -test.run '^TestServices_OnNode$' -test.v -test.timeout 25m")
	pw.Close()
	<-done
	if err != nil {
		t.Fatalf("on the node: %v", err)
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "--- PASS: TestServices_OnNode") }) {
		t.Fatal("the test did not pass on the node")
	}
}

// nodeApps are the two apps the suite uses.
var nodeApps = [2]service.App{
	{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog", User: "app-blog", Platform: "test"},
	{Name: "wiki-2", DataDir: "/var/lib/toppcloud/apps/wiki-2", User: "app-wiki-2", Platform: "test"},
}

// sh runs argv on the node and fails the test on error.
func sh(t testing.TB, h *host.Host, env []string, argv ...string) string {
	t.Helper()
	out, err := run(h, env, "", argv...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out
}

func run(h *host.Host, env []string, stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := host.Command{Argv: argv, Env: env}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	out, err := h.Runner.Run(ctx, c)
	return string(out), err
}

func onNode(t *testing.T) {
	h := host.New()
	ctx := context.Background()
	l := layout.Default()
	node := service.Node{Host: h, Warn: func(m string) { t.Log("warning:", m) }, LockDir: l.Locks, StateDir: l.Services}

	// What setup-node and the agent's deploy give: the caddy group, app
	// users and their data directories, the services' packages.
	if _, ok, _ := h.LookupGroup("caddy"); !ok {
		sh(t, h, nil, "groupadd", "--system", "caddy")
	}
	for _, a := range nodeApps {
		if _, ok, _ := h.LookupUser(a.User); !ok {
			sh(t, h, nil, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", a.User)
		}
		if _, err := h.EnsureDir(a.DataDir, host.Attr{Mode: 0o711}); err != nil {
			t.Fatal(err)
		}
	}
	var reqs []service.Request
	for _, name := range service.Names() {
		reqs = append(reqs, service.Request{Name: name})
	}
	// postgis and postgresql cannot be one app's: install both anyway.
	var pkgs []string
	for _, name := range service.Names() {
		info, _ := service.Lookup(name)
		pkgs = append(pkgs, info.New(node).Packages(nodeApps[0])...)
	}
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	start := time.Now()
	sh(t, h, nil, "apt-get", "update", "-q")
	sh(t, h, nil, append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
	t.Logf("installed %s in %s", strings.Join(pkgs, " "), time.Since(start).Round(time.Second))

	backups := "/var/lib/toppcloud/backups"
	t.Run("postgresql", func(t *testing.T) { runPG(t, h, node, false, backups) })
	t.Run("postgis", func(t *testing.T) { runPG(t, h, node, true, backups) })
	t.Run("mysql", func(t *testing.T) { runMySQL(t, h, node, backups) })
	t.Run("redis", func(t *testing.T) { runRedis(t, h, node, backups) })
	t.Run("files", func(t *testing.T) { runFiles(t, h, node, backups) })
	t.Run("writable_root", func(t *testing.T) { runWritableRoot(t, h, node, backups) })
	_ = ctx
}

// blob is a round's binary value: every byte value, and more.
func blob(round string) string {
	var b strings.Builder
	for i := range 3000 {
		b.WriteByte(byte(i*31 + len(round)))
	}
	return b.String()
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

func runPG(t *testing.T, h *host.Host, node service.Node, postgis bool, backups string) {
	s := postgresql.New(node, postgis)
	// postgresql's run left its data in the same databases.
	if err := s.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, a := range nodeApps {
		if _, err := s.Clear(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	psql := func(env map[string]string, db, sql string) (string, error) {
		return run(h, []string{"PGPASSWORD=" + env["CONFIG_PG_PASSWORD"]}, sql, "runuser", "-u", "app-"+env["CONFIG_PG_USER"], "--",
			"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
			"host="+env["CONFIG_PG_HOST"]+" port="+env["CONFIG_PG_PORT"]+" dbname="+db+" user="+env["CONFIG_PG_USER"])
	}
	servicetest.Run(t, servicetest.Opt{
		Service: s, Host: h, Apps: nodeApps, BackupDir: backups,
		Vars: []string{"CONFIG_PG_DBNAME", "CONFIG_PG_USER", "CONFIG_PG_PASSWORD", "CONFIG_PG_HOST", "CONFIG_PG_PORT", "CONFIG_PG_SQLALCHEMY"},
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			sql := "CREATE TABLE IF NOT EXISTS t (k text PRIMARY KEY, v bytea);\n" +
				fmt.Sprintf("INSERT INTO t VALUES ('%s', decode('%s', 'hex'));\n", round, hexOf(blob(round)))
			if postgis {
				sql += "CREATE TABLE IF NOT EXISTS places (name text, at geometry(Point, 4326));\n" +
					fmt.Sprintf("INSERT INTO places VALUES ('%s', ST_SetSRID(ST_MakePoint(%d.5, 52.25), 4326));\n", round, len(round))
			}
			if _, err := psql(env, env["CONFIG_PG_DBNAME"], sql); err != nil {
				t.Fatalf("write: %v", err)
			}
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			out, err := psql(env, env["CONFIG_PG_DBNAME"], `SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE';
SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension;`)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if strings.Contains(out, "t,") || strings.HasPrefix(out, "t\n") || strings.Contains(out, ",t\n") {
				rows, err := psql(env, env["CONFIG_PG_DBNAME"], "SELECT k, encode(sha256(v), 'hex') FROM t ORDER BY k")
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				out += rows
			}
			if postgis && strings.Contains(out, "places") {
				rows, err := psql(env, env["CONFIG_PG_DBNAME"], "SELECT name, ST_AsText(at) FROM places ORDER BY name")
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				out += rows
			}
			return out
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			// Over TCP and through the socket, into the victim's database.
			out, err := psql(env, victim.Name, "SELECT count(*) FROM t")
			if err == nil {
				return nil
			}
			t.Logf("tcp: %v %s", err, out)
			_, err2 := run(h, []string{"PGPASSWORD=" + env["CONFIG_PG_PASSWORD"]}, "SELECT 1", "runuser", "-u", app.User, "--",
				"psql", "-X", "-d", victim.Name, "-U", env["CONFIG_PG_USER"])
			if err2 == nil {
				return nil
			}
			return err
		},
	})
}

func runMySQL(t *testing.T, h *host.Host, node service.Node, backups string) {
	s := mysql.New(node)
	client := func(env map[string]string, db, sql string) (string, error) {
		return run(h, []string{"MYSQL_PWD=" + env["CONFIG_MYSQL_PASSWORD"]}, sql, "runuser", "-u", "app-"+env["CONFIG_MYSQL_USER"], "--",
			"mariadb", "--batch", "--skip-column-names", "-h", env["CONFIG_MYSQL_HOST"], "-P", env["CONFIG_MYSQL_PORT"],
			"-u", env["CONFIG_MYSQL_USER"], db)
	}
	servicetest.Run(t, servicetest.Opt{
		Service: s, Host: h, Apps: nodeApps, BackupDir: backups,
		Vars: []string{"CONFIG_MYSQL_DBNAME", "CONFIG_MYSQL_USER", "CONFIG_MYSQL_PASSWORD", "CONFIG_MYSQL_HOST", "CONFIG_MYSQL_PORT", "CONFIG_MYSQL_SQLALCHEMY"},
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			sql := "CREATE TABLE IF NOT EXISTS t (k VARCHAR(100) PRIMARY KEY, v LONGBLOB, note TEXT);\n" +
				fmt.Sprintf("INSERT INTO t VALUES ('%s', UNHEX('%s'), 'ünïcødé %s');\n", round, hexOf(blob(round)), round)
			if _, err := client(env, env["CONFIG_MYSQL_DBNAME"], sql); err != nil {
				t.Fatalf("write: %v", err)
			}
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			out, err := client(env, env["CONFIG_MYSQL_DBNAME"], "SHOW TABLES")
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if strings.TrimSpace(out) == "t" {
				rows, err := client(env, env["CONFIG_MYSQL_DBNAME"], "SELECT k, SHA2(v, 256), HEX(note) FROM t ORDER BY k")
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				out += rows
			}
			return out
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			out, err := client(env, "", "SELECT COUNT(*) FROM `"+victim.Name+"`.t")
			if err == nil {
				t.Logf("read %s", out)
				return nil
			}
			return err
		},
	})
}

func runRedis(t *testing.T, h *host.Host, node service.Node, backups string) {
	s := redis.New(node)
	ctx := context.Background()
	// The app cannot list its keys (SCAN is denied): the test remembers
	// every key it wrote.
	written := map[string][]string{}
	connect := func(env map[string]string, db int) *goredis.Client {
		opt, err := goredis.ParseURL(env["CONFIG_REDIS_URL"])
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = db
		opt.DisableIdentity = true
		return goredis.NewClient(opt)
	}
	servicetest.Run(t, servicetest.Opt{
		Service: s, Host: h, Apps: nodeApps, BackupDir: backups,
		Vars: []string{"CONFIG_REDIS_URL", "CONFIG_REDIS_HOST", "CONFIG_REDIS_PORT", "CONFIG_REDIS_USER", "CONFIG_REDIS_PASSWORD", "CONFIG_REDIS_PREFIX"},
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			p := env["CONFIG_REDIS_PREFIX"]
			c0, c2 := connect(env, 0), connect(env, 2)
			defer c0.Close()
			defer c2.Close()
			for _, err := range []error{
				c0.Set(ctx, p+round, blob(round), 0).Err(),
				c0.HSet(ctx, p+round+":h", "a", "1", "b", round).Err(),
				c0.RPush(ctx, p+round+":l", "x", "y", round).Err(),
				c0.Set(ctx, p+round+":ttl", "expiring", time.Hour).Err(),
				c2.Set(ctx, p+round+":db2", "in database 2", 0).Err(),
			} {
				if err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			written[app.Name] = append(written[app.Name], round)
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			p := env["CONFIG_REDIS_PREFIX"]
			c0, c2 := connect(env, 0), connect(env, 2)
			defer c0.Close()
			defer c2.Close()
			var out []string
			for _, round := range written[app.Name] {
				if n, _ := c0.Exists(ctx, p+round, p+round+":h", p+round+":l", p+round+":ttl").Result(); n == 0 {
					continue
				}
				v, _ := c0.Get(ctx, p+round).Result()
				hm, _ := c0.HGetAll(ctx, p+round+":h").Result()
				l, _ := c0.LRange(ctx, p+round+":l", 0, -1).Result()
				ttl, _ := c0.TTL(ctx, p+round+":ttl").Result()
				v2, _ := c2.Get(ctx, p+round+":db2").Result()
				out = append(out, fmt.Sprintf("%s: %x %v %v ttl>30m=%v %q", round, sha256.Sum256([]byte(v)), hm, l, ttl > 30*time.Minute, v2))
			}
			slices.Sort(out)
			return strings.Join(out, "\n")
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			c := connect(env, 0)
			defer c.Close()
			var errs []error
			for _, cmd := range [][]any{
				{"GET", redis.Prefix(victim.Name) + "b-secret"},
				{"KEYS", "*"},
				{"SCAN", "0"},
				{"RANDOMKEY"},
				{"FLUSHALL"},
				{"CONFIG", "GET", "*"},
				{"ACL", "LIST"},
			} {
				err := c.Do(ctx, cmd...).Err()
				if err == nil || !strings.Contains(err.Error(), "NOPERM") {
					t.Logf("%v was not refused: %v", cmd, err)
					return nil
				}
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		},
	})
	t.Run("EveryForbiddenCommandRefused", func(t *testing.T) {
		env, err := s.Setup(ctx, nodeApps[0])
		if err != nil {
			t.Fatal(err)
		}
		c := connect(env, 0)
		defer c.Close()
		for _, cmd := range [][]any{{"KEYS", "*"}, {"SCAN", "0"}, {"RANDOMKEY"}, {"FLUSHALL"}, {"FLUSHDB"}, {"CONFIG", "GET", "*"}, {"ACL", "LIST"}, {"PUBSUB", "CHANNELS"}, {"GET", "wiki-2:x"}, {"SET", "noprefix", "x"}} {
			if err := c.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("%v: %v", cmd, err)
			}
		}
		if err := c.Set(ctx, "blog:ok", "1", 0).Err(); err != nil {
			t.Errorf("own key: %v", err)
		}
	})
}

// writeFiles writes a round's files as the app's user would.
func writeFiles(t testing.TB, h *host.Host, app service.App, dir, round string) {
	script := `set -e; cd "$1"; mkdir -p "$2/deep/er"; printf 'round %s\n' "$2" > "$2/note.txt"
head -c 70000 /dev/urandom > "$2/deep/er/b.bin"; : > "$2/empty"; printf x > "$2/ünï cødé"
ln -sf note.txt "$2/link"; printf '#!/bin/sh\n' > "$2/run.sh"; chmod 0750 "$2/run.sh"`
	sh(t, h, nil, "runuser", "-u", app.User, "--", "sh", "-c", script, "sh", dir, round)
}

// listTree lists every entry under dir with its type, mode, owner and
// sha256, as root sees it.
func listTree(t testing.TB, dir string) string {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil || rel == "." {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, rel+" -> "+target)
		case fi.IsDir():
			lines = append(lines, fmt.Sprintf("%s/ %v", rel, fi.Mode()))
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %x %s", rel, fi.Mode(), sha256.Sum256(data), fi.ModTime().UTC()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func crossRead(h *host.Host, app service.App, victimDir string) error {
	_, err := run(h, nil, "", "runuser", "-u", app.User, "--", "ls", victimDir)
	if err == nil {
		return nil
	}
	_, err2 := run(h, nil, "", "runuser", "-u", app.User, "--", "cat", path.Join(victimDir, "b-secret", "note.txt"))
	if err2 == nil {
		return nil
	}
	return err
}

func runFiles(t *testing.T, h *host.Host, node service.Node, backups string) {
	servicetest.Run(t, servicetest.Opt{
		Service: files.New(node), Host: h, Apps: nodeApps, BackupDir: backups,
		Vars: []string{"CONFIG_FILES"},
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			writeFiles(t, h, app, env["CONFIG_FILES"], round)
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			return listTree(t, files.Dir(app))
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			return crossRead(h, app, files.Dir(victim))
		},
	})
}

func runWritableRoot(t *testing.T, h *host.Host, node service.Node, backups string) {
	s := writableroot.New(node)
	servicetest.Run(t, servicetest.Opt{
		Service: s, Host: h, Apps: nodeApps, BackupDir: backups,
		Vars: []string{"CONFIG_WRITABLE_ROOT"},
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			writeFiles(t, h, app, env["CONFIG_WRITABLE_ROOT"], round)
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			return listTree(t, writableroot.Dir(app))
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			return crossRead(h, app, writableroot.Dir(victim))
		},
	})
	t.Run("ServedWithoutSymlinks", func(t *testing.T) {
		app := nodeApps[0]
		if _, err := s.Setup(context.Background(), app); err != nil {
			t.Fatal(err)
		}
		dir := writableroot.Dir(app)
		sh(t, h, nil, "runuser", "-u", app.User, "--", "sh", "-c",
			`printf hello > "$1/page.html" && ln -sf /etc/shadow "$1/shadow" && ln -sf page.html "$1/inner" && mkdir -p "$1/sub"`, "sh", dir)
		served := writableroot.ServedDir(app.Name)
		if data, err := os.ReadFile(path.Join(served, "page.html")); err != nil || string(data) != "hello" {
			t.Errorf("served page: %q %v", data, err)
		}
		for _, name := range []string{"shadow", "inner"} {
			if _, err := os.ReadFile(path.Join(served, name)); err == nil {
				t.Errorf("the served view followed the symlink %s", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		}
		if err := os.WriteFile(path.Join(served, "x"), nil, 0o644); err == nil {
			t.Error("the served view is writable")
		}
		// New files get Caddy's group, readable by it.
		a, _, err := h.Stat(path.Join(dir, "page.html"))
		if err != nil || a.Group != writableroot.Group {
			t.Errorf("page.html is %s, %v", a, err)
		}
		if a, _, _ := h.Stat(path.Join(dir, "sub")); a.Mode&fs.ModeSetgid == 0 || a.Group != writableroot.Group {
			t.Errorf("sub is %s", a)
		}
	})
}
