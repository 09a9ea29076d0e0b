package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// vaultApp is a Python app that uses every service: /write?round=R adds
// data named R to each, /read returns everything it keeps, as sha256 sums,
// in one JSON object; /plant puts symlinks into its writable root.
const vaultApp = `import hashlib, json, os
import MySQLdb, psycopg2, redis

E = os.environ


def pg():
    return psycopg2.connect(dbname=E['CONFIG_PG_DBNAME'], user=E['CONFIG_PG_USER'], password=E['CONFIG_PG_PASSWORD'],
                            host=E['CONFIG_PG_HOST'], port=E['CONFIG_PG_PORT'])


def my():
    return MySQLdb.connect(host=E['CONFIG_MYSQL_HOST'], port=int(E['CONFIG_MYSQL_PORT']), user=E['CONFIG_MYSQL_USER'],
                           passwd=E['CONFIG_MYSQL_PASSWORD'], db=E['CONFIG_MYSQL_DBNAME'], charset='utf8mb4')


def rd():
    return redis.Redis.from_url(E['CONFIG_REDIS_URL'])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                out[os.path.relpath(p, root)] = 'link:' + os.readlink(p)
            else:
                with open(p, 'rb') as fh:
                    out[os.path.relpath(p, root)] = sha(fh.read())
    return out


def write(r):
    c = pg()
    with c, c.cursor() as cur:
        cur.execute('CREATE TABLE IF NOT EXISTS t (k text PRIMARY KEY, v bytea)')
        cur.execute('INSERT INTO t VALUES (%s, %s)', (r, os.urandom(20000)))
    c.close()
    c = my()
    cur = c.cursor()
    cur.execute('CREATE TABLE IF NOT EXISTS t (k VARCHAR(100) PRIMARY KEY, v LONGBLOB)')
    cur.execute('INSERT INTO t VALUES (%s, %s)', (r, os.urandom(20000)))
    c.commit()
    c.close()
    p = E['CONFIG_REDIS_PREFIX']
    x = rd()
    x.set(p + r, os.urandom(20000))
    x.hset(p + r + ':h', mapping={'round': r})
    x.sadd(p + 'rounds', r)
    d = os.path.join(E['CONFIG_FILES'], r, 'deep')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'data.bin'), 'wb') as fh:
        fh.write(os.urandom(300000))
    with open(os.path.join(E['CONFIG_WRITABLE_ROOT'], r + '.html'), 'w') as fh:
        fh.write('page ' + r + '\n')


def read():
    out = {'pg': {}, 'mysql': {}, 'redis': {}}
    c = pg()
    with c, c.cursor() as cur:
        cur.execute("SELECT to_regclass('public.t') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute('SELECT k, v FROM t ORDER BY k')
            out['pg'] = {k: sha(bytes(v)) for k, v in cur.fetchall()}
    c.close()
    c = my()
    cur = c.cursor()
    cur.execute('SHOW TABLES')
    if cur.fetchall():
        cur.execute('SELECT k, v FROM t ORDER BY k')
        out['mysql'] = {k: sha(v) for k, v in cur.fetchall()}
    c.close()
    p = E['CONFIG_REDIS_PREFIX']
    x = rd()
    for r in sorted(m.decode() for m in x.smembers(p + 'rounds')):
        out['redis'][r] = [sha(x.get(p + r) or b''), x.hget(p + r + ':h', 'round').decode()]
    out['files'] = tree(E['CONFIG_FILES'])
    out['writable_root'] = tree(E['CONFIG_WRITABLE_ROOT'])
    return out


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    q = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    if path == '/write':
        write(q['round'])
        body = 'written ' + q['round']
    elif path == '/read':
        body = json.dumps(read(), sort_keys=True)
    elif path == '/plant':
        wr = E['CONFIG_WRITABLE_ROOT']
        for name, target in (('passwd.html', '/etc/passwd'), ('secret.html', '/var/lib/toppcloud/secret')):
            try:
                os.symlink(target, os.path.join(wr, name))
            except FileExistsError:
                pass
        try:
            os.mkfifo(os.path.join(wr, 'pipe.html'))
            body = 'planted, fifo made'
        except FileExistsError:
            body = 'planted, fifo made'
        except PermissionError:
            body = 'planted, fifo refused'
    elif path == '/setup':
        body = 'setup ran'
    else:
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not here: ' + path.encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]
`

func vaultDir(t *testing.T, name string) string {
	dir := appDir(t, map[string]string{
		"app.ini": "[production]\napp_name = " + name + "\nrunner = app.py\nupdate_fetch = /setup\n" +
			"service.postgresql =\nservice.mysql =\nservice.redis =\nservice.files =\nservice.writable_root =\n",
		"app.py":       vaultApp,
		"bin/show":     "#!/bin/sh\necho files=$CONFIG_FILES user=$(id -un) cwd=$(pwd)\ncat \"$@\"\nexit 7\n",
		"bin/ask":      "#!/bin/sh\nif [ -t 0 ]; then echo tty=yes; else echo tty=no; fi\nprintf 'name? '\nread name\necho \"hello $name\"\n",
		"static/s.txt": "static file\n",
	})
	for _, p := range []string{"bin/show", "bin/ask"} {
		if err := os.Chmod(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestIntegration_Services deploys apps with every service to one local
// node and walks through their data's life: write, back up (directory,
// .tar.gz, remote:), clear, restore (equal to the backup, files
// byte-identical), refused restores that change nothing, isolation of the
// writable root, run, query, a Django project and a PHP app with their
// databases, and a failing service install that leaves the old instance
// serving. The subtests share the node and run in order.
func TestIntegration_Services(t *testing.T) {
	e := newLocalEnv(t)
	node := localtest.UniqueName("svc")
	t.Cleanup(func() {
		if code, out := e.run("destroy-node", "-y", node); code != ExitOK {
			t.Errorf("destroy-node: %s", out)
		}
	})
	e.ok("create-node", node, "--setup-node", "--size", "id large")
	rec := e.record(node)
	w := web{t: t, addr: rec.Address()}
	root := e.dial(rec, "root")
	sh := func(t *testing.T, script string) string {
		t.Helper()
		out, err := root.Output(context.Background(), []string{"sh", "-c", script}, nil)
		if err != nil {
			t.Fatalf("%s: %v %s", script, err, out)
		}
		return string(out)
	}
	// Every word the CLI printed, to look for secrets in at the end.
	var said strings.Builder
	run := func(args ...string) (int, string) {
		code, out := e.run(args...)
		said.WriteString(out)
		return code, out
	}
	ok := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out := run(args...)
		if code != ExitOK {
			t.Fatalf("toppcloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	post := func(t *testing.T, host, target string, form url.Values) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+rec.Address()+target, strings.NewReader(form.Encode()))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("POST %s%s: %v", host, target, err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s%s = %d\n%s", host, target, resp.StatusCode, b.String())
		}
		return b.String()
	}
	vault := vaultDir(t, "vault")
	const host = "vault.test"
	read := func(t *testing.T) map[string]map[string]any {
		t.Helper()
		var m map[string]map[string]any
		if err := json.Unmarshal([]byte(w.expect(host, "/read", 200)), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	same := func(t *testing.T, what string, want map[string]map[string]any) {
		t.Helper()
		got := read(t)
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(want)
		if string(a) != string(b) {
			t.Errorf("%s: the data differs\nwant %s\ngot  %s", what, b, a)
		}
	}
	var before map[string]map[string]any

	t.Run("deploy with every service and write data", func(t *testing.T) {
		out := ok(t, "update", vault, host, "--node", node)
		if !strings.Contains(out, "services") {
			t.Errorf("no services step:\n%s", out)
		}
		w.expect(host, "/write?round=one", 200, "written one")
		w.expect(host, "/write?round=two", 200, "written two")
		before = read(t)
		for _, k := range []string{"pg", "mysql", "redis", "files", "writable_root"} {
			if len(before[k]) != 2 {
				t.Errorf("%s holds %v", k, before[k])
			}
		}
		// The writable root is served before the app, without following
		// symlinks the app planted.
		w.expect(host, "/one.html", 200, "page one")
		// A FIFO there would hold a Caddy thread per request until a
		// writer came: the app may not make one.
		w.expect(host, "/plant", 200, "planted, fifo refused")
		for _, p := range []string{"/passwd.html", "/secret.html", "/pipe.html"} {
			if code, body := w.get(host, p); strings.Contains(body, "root:x:0:0") || (code == 200 && !strings.Contains(body, "not here")) {
				t.Errorf("GET %s followed a planted symlink: %d %q", p, code, body)
			}
		}
		sh(t, "rm -f /var/lib/toppcloud/apps/vault/writable-root/passwd.html /var/lib/toppcloud/apps/vault/writable-root/secret.html")
		before = read(t)
	})
	if before == nil {
		t.FailNow()
	}

	work := t.TempDir()
	dir, archive := filepath.Join(work, "vault-backup"), filepath.Join(work, "vault.tar.gz")
	t.Run("backup to a directory, a tar.gz and remote:", func(t *testing.T) {
		ok(t, "backup", host, dir, "--node", node)
		ok(t, "backup", host, archive, "--node", node)
		ok(t, "backup", host, "remote:nightly", "--node", node)
		for _, p := range []string{"postgresql/postgresql.pgdump", "mysql/mysql.dump", "redis/redis.dump", "files/files.tar", "writable_root/files.tar", "manifest.json"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("backup lacks %s", p)
			}
		}
		if out := sh(t, "ls /var/lib/toppcloud/backups"); strings.TrimSpace(out) != "nightly" {
			t.Errorf("the node kept %q (only remote:nightly should stay)", out)
		}
	})

	t.Run("clear empties every service and runs update_fetch", func(t *testing.T) {
		out := ok(t, "-y", "clear", host, "--node", node)
		if !strings.Contains(out, "| setup ran") {
			t.Errorf("update_fetch output missing:\n%s", out)
		}
		got := read(t)
		for _, k := range []string{"pg", "mysql", "redis", "files", "writable_root"} {
			if len(got[k]) != 0 {
				t.Errorf("%s after clear: %v", k, got[k])
			}
		}
		w.expect(host, "/write?round=after-clear", 200)
	})

	t.Run("restore gives back exactly the backup", func(t *testing.T) {
		ok(t, "-y", "restore", dir, host, "--node", node)
		same(t, "restored from a directory", before)
		w.expect(host, "/write?round=three", 200)
		ok(t, "-y", "restore", archive, host, "--node", node)
		same(t, "restored from a .tar.gz", before)
		w.expect(host, "/write?round=four", 200)
		ok(t, "-y", "restore", "remote:nightly", host, "--node", node)
		same(t, "restored from remote:nightly", before)
		w.expect(host, "/one.html", 200, "page one")
	})

	t.Run("bad backups are refused and change nothing", func(t *testing.T) {
		raw, err := os.ReadFile(archive)
		if err != nil {
			t.Fatal(err)
		}
		truncated := filepath.Join(work, "truncated.tar.gz")
		os.WriteFile(truncated, raw[:len(raw)*2/3], 0o600)
		code, out := run("-y", "restore", truncated, host, "--node", node)
		if code != ExitUsage || !strings.Contains(out, "truncated") {
			t.Errorf("truncated: exit %d\n%s", code, out)
		}
		ok(t, "update", vaultDir(t, "other"), "other.test", "--node", node)
		otherDir := filepath.Join(work, "other-backup")
		ok(t, "backup", "other.test", otherDir, "--node", node)
		code, out = run("-y", "restore", otherDir, host, "--node", node)
		if code != ExitFailed || !strings.Contains(out, `backup of the app "other"`) {
			t.Errorf("another app's backup: exit %d\n%s", code, out)
		}
		// Damaged on the node (remote:): refused there.
		sh(t, "truncate -s 100 /var/lib/toppcloud/backups/nightly/files/files.tar")
		code, out = run("-y", "restore", "remote:nightly", host, "--node", node)
		if code != ExitFailed || !strings.Contains(out, "files/files.tar") {
			t.Errorf("damaged remote: exit %d\n%s", code, out)
		}
		same(t, "after refused restores", before)
	})

	t.Run("data survives a redeploy", func(t *testing.T) {
		ok(t, "update", vault, host, "--node", node, "--force")
		same(t, "after a redeploy", before)
	})

	t.Run("query shows services and sizes, never credentials", func(t *testing.T) {
		out := ok(t, "query", node, "vault")
		for _, want := range []string{"services: files", "mysql", "postgresql", "redis", "writable_root", "tables", "keys"} {
			if !strings.Contains(out, want) {
				t.Errorf("query lacks %q:\n%s", want, out)
			}
		}
		ok(t, "query", node, "--json")
	})

	t.Run("run a script with the app's environment", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "hello.txt")
		os.WriteFile(local, []byte("uploaded content\n"), 0o644)
		code, out := run("run", "--node", node, host, "show", local)
		if code != 7 || !strings.Contains(out, "files=/var/lib/toppcloud/apps/vault/files user=app-vault") || !strings.Contains(out, "uploaded content") {
			t.Errorf("run: exit %d\n%s", code, out)
		}
		if code, out := run("run", "--node", node, host, "nosuchscript"); code == ExitOK || !strings.Contains(out, "no script nosuchscript") {
			t.Errorf("a missing script: exit %d\n%s", code, out)
		}
		if code, out := run("run", "--node", node, host, "app.py"); code != ExitOK {
			t.Errorf("a Python script without its x bit: exit %d\n%s", code, out)
		}
		// -i: a real terminal, through script(1).
		if _, err := exec.LookPath("script"); err != nil {
			t.Skip("no script(1) for a terminal")
		}
		cmd := exec.Command("script", "-qec", e.agent+" run -i --node "+node+" "+host+" ask", "/dev/null")
		cmd.Env = append(os.Environ(), "HOME="+e.home, "TOPPCLOUD_AGENT_BINARY="+e.agent)
		// The answer goes in once the script asks, as a person types it:
		// typed ahead, it reaches the local terminal before run -i makes it
		// raw and may be lost to the line discipline.
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		tty := &promptWriter{prompt: "name? ", answer: func() { io.WriteString(in, "world\n") }}
		cmd.Stdout, cmd.Stderr = tty, tty
		err = cmd.Start()
		if err == nil {
			err = cmd.Wait()
		}
		in.Close()
		if out := tty.String(); err != nil || !strings.Contains(out, "tty=yes") || !strings.Contains(out, "hello world") {
			t.Errorf("run -i: %v\n%s", err, out)
		}
	})

	t.Run("no secret in anything the CLI printed", func(t *testing.T) {
		for _, f := range []string{"postgresql", "mysql", "redis"} {
			var c struct{ Password string }
			if err := json.Unmarshal([]byte(sh(t, "cat /var/lib/toppcloud/apps/vault/services/"+f+".json")), &c); err != nil || len(c.Password) < 20 {
				t.Fatalf("%s credentials: %v", f, err)
			}
			if strings.Contains(said.String(), c.Password) {
				t.Errorf("the %s password was printed", f)
			}
			if mode := strings.TrimSpace(sh(t, "stat -c '%a %U' /var/lib/toppcloud/apps/vault/services/"+f+".json")); mode != "600 root" {
				t.Errorf("%s credentials file is %s", f, mode)
			}
		}
	})

	t.Run("couchdb is refused before anything changes", func(t *testing.T) {
		app := appDir(t, map[string]string{"app.ini": "[production]\napp_name = couch\nrunner = app.py\nservice.couchdb =\n", "app.py": testWSGI})
		code, out := run("update", app, "couch.test", "--node", node)
		if code == ExitOK || !strings.Contains(out, "service.couchdb") || !strings.Contains(out, "Debian 12") {
			t.Errorf("couchdb: exit %d\n%s", code, out)
		}
		// Refused by the client: nothing reached the node.
		if got := strings.TrimSpace(sh(t, "if [ -e /var/lib/toppcloud/apps/couch ]; then echo made; else echo none; fi")); got != "none" {
			t.Errorf("the refused app's directory: %s", got)
		}
		w.expect("couch.test", "/", 404)
	})

	t.Run("a service package that fails to install leaves the old instance serving", func(t *testing.T) {
		ok(t, "update", filepath.Join(examplesDir(t), "php"), "php.test", "--node", node)
		w.expect("php.test", "/", 200, "Hello from PHP")
		sh(t, "printf 'Package: php-redis php8.2-redis\\nPin: version *\\nPin-Priority: -1\\n' > /etc/apt/preferences.d/no-php-redis")
		defer sh(t, "rm -f /etc/apt/preferences.d/no-php-redis")
		withRedis := copyApp(t, "php", map[string]string{"app.ini": "[production]\napp_name = hello-php\nplatform = php\nrunner = index.php\nservice.redis =\n"})
		code, out := run("update", withRedis, "php.test", "--node", node)
		if code == ExitOK || !strings.Contains(out, "php-redis") {
			t.Errorf("update with an uninstallable package: exit %d\n%s", code, out)
		}
		w.expect("php.test", "/", 200, "Hello from PHP")
	})

	t.Run("a PHP app on MySQL", func(t *testing.T) {
		ok(t, "update", filepath.Join(examplesDir(t), "php-mysql"), "guestbook.test", "--node", node)
		post(t, "guestbook.test", "/", url.Values{"text": {"first entry"}})
		w.expect("guestbook.test", "/", 200, "first entry")
		ok(t, "update", filepath.Join(examplesDir(t), "php-mysql"), "guestbook.test", "--node", node, "--force")
		w.expect("guestbook.test", "/", 200, "first entry")
	})

	t.Run("a Django project on PostgreSQL", func(t *testing.T) {
		admin, err := exec.LookPath("django-admin")
		if err != nil {
			t.Fatal("django-admin not found: install python3-django (the Makefile's HOST_PACKAGES has it)")
		}
		site := copyApp(t, "django", nil)
		if out, err := exec.Command(admin, "startproject", "mysite", site).CombinedOutput(); err != nil {
			t.Fatalf("startproject: %v\n%s", err, out)
		}
		appendTo := func(p, line string) {
			f, err := os.OpenFile(filepath.Join(site, p), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("\n" + line + "\n")
			f.Close()
		}
		appendTo("mysite/settings.py", "from toppcloud_settings import apply; apply(globals())")
		appendTo("mysite/urls.py", "from notes.urls import urlpatterns as notes; urlpatterns += notes")
		out := ok(t, "update", site, "django.test", "--node", node)
		if !strings.Contains(out, "Applying notes.0001_initial") {
			t.Errorf("migrate did not run:\n%s", out)
		}
		w.expect("django.test", "/admin/login/", 200, "Django administration")
		post(t, "django.test", "/notes/", url.Values{"text": {"a row written through Django"}})
		ok(t, "update", site, "django.test", "--node", node, "--force")
		w.expect("django.test", "/notes/", 200, "a row written through Django")
		if code, out := run("run", "--node", node, "django.test", "manage.py", "showmigrations", "notes"); code != ExitOK || !strings.Contains(out, "[X] 0001_initial") {
			t.Errorf("run manage.py: exit %d\n%s", code, out)
		}
	})
}

// promptWriter collects a command's output and calls answer once, when
// prompt first appears in it.
type promptWriter struct {
	mu       sync.Mutex
	b        strings.Builder
	prompt   string
	answer   func()
	answered bool
}

func (w *promptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.answered && strings.Contains(w.b.String(), w.prompt) {
		w.answered = true
		go w.answer()
	}
	return len(p), nil
}

func (w *promptWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
