package sitetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// notesApp is a WSGI app on service.postgresql. GET / answers
// "Hello from NODE, version V" and the rows of its table; POST / adds a
// row (the body's note=..., else "load"); GET /rows answers the same as
// JSON for the checks. If the upload has a file "fail-on" naming this
// node, the app refuses to start there, so its health check fails on that
// node only.
const notesApp = `import json, os, socket
import psycopg2

E = os.environ
HERE = os.path.dirname(os.path.abspath(__file__))
NODE = socket.gethostname()


def read(name):
    try:
        with open(os.path.join(HERE, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ''


VERSION = read('version.txt')
if read('fail-on') and read('fail-on') == NODE:
    raise SystemExit('fail-on names this node (%s): not starting' % NODE)


def db():
    return psycopg2.connect(dbname=E['CONFIG_PG_DBNAME'], user=E['CONFIG_PG_USER'], password=E['CONFIG_PG_PASSWORD'],
                            host=E['CONFIG_PG_HOST'], port=E['CONFIG_PG_PORT'])


def rows():
    c = db()
    try:
        with c, c.cursor() as cur:
            cur.execute("SELECT note FROM notes WHERE note <> 'load' ORDER BY id")
            return [r[0] for r in cur.fetchall()]
    finally:
        c.close()


def add(note):
    c = db()
    try:
        with c, c.cursor() as cur:
            cur.execute('INSERT INTO notes (note) VALUES (%s)', (note,))
    finally:
        c.close()


def application(environ, start_response):
    method = environ.get('REQUEST_METHOD', 'GET')
    path = environ.get('PATH_INFO', '/')
    if method == 'POST':
        n = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(n).decode('utf-8', 'replace') if n else ''
        fields = dict(p.split('=', 1) for p in body.split('&') if '=' in p)
        note = fields.get('note', 'load')
        add(note)
        out = 'Hello from %s, version %s: added %s\n' % (NODE, VERSION, note)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [out.encode()]
    if path == '/rows':
        out = json.dumps({'node': NODE, 'version': VERSION, 'rows': rows()})
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [out.encode()]
    out = 'Hello from %s, version %s\n%s\n' % (NODE, VERSION, '\n'.join(rows()))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [out.encode()]
`

// notesSetup is the app's update_fetch script: it makes the table if it
// is not there yet (it runs on the first app node only on a site).
const notesSetup = `#!/usr/bin/python3
import os
import psycopg2

E = os.environ
c = psycopg2.connect(dbname=E['CONFIG_PG_DBNAME'], user=E['CONFIG_PG_USER'], password=E['CONFIG_PG_PASSWORD'],
                     host=E['CONFIG_PG_HOST'], port=E['CONFIG_PG_PORT'])
with c, c.cursor() as cur:
    cur.execute('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, note text NOT NULL)')
c.close()
print('notes table ready')
`

const notesINI = `[production]
app_name = notes
runner = app.py
packages =
    python3-psycopg2
service.postgresql =
update_fetch = script:bin/setup-notes
`

// writeApp writes the notes app at version into a new temporary
// directory; failOn, if set, is the node on which it must not start.
func writeApp(t *testing.T, version, failOn string) string {
	t.Helper()
	files := map[string]string{
		"app.ini":           notesINI,
		"app.py":            notesApp,
		"bin/setup-notes":   notesSetup,
		"version.txt":       version + "\n",
		"static/robots.txt": "User-agent: *\n",
	}
	if failOn != "" {
		files["fail-on"] = failOn + "\n"
	}
	return writeFiles(t, files)
}

// writeFiles writes an app's files (path: content; a script, starting
// with #!, executable) into a new temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
