package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/toppcloud/toppcloud/internal/service/all" // the registry Prepare checks refused services in

	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/usage"
)

type nodeSet map[string]bool

func (n nodeSet) Known(name string) (bool, error) { return n[name], nil }

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func app(t *testing.T, ini string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if files == nil {
		files = map[string]string{}
	}
	if ini != "" {
		files["app.ini"] = ini
	}
	write(t, dir, files)
	return dir
}

const wsgi = "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n"

func TestPrepare_Plans(t *testing.T) {
	nodes := nodeSet{"web1": true, "example.com": true}
	dir := app(t, "[production]\napp_name = blog\nrunner = main.py\ndefault_location = example.com/blog\n", map[string]string{"main.py": wsgi})
	for _, tc := range []struct {
		name         string
		o            Options
		app, loc     string
		node         string
		needConfig   bool
		configUpload bool
	}{
		{"default location, node from its host", Options{AppDir: dir}, "blog", "example.com/blog/", "example.com", false, false},
		{"location argument wins", Options{AppDir: dir, Location: "https://example.com"}, "blog", "https://example.com", "example.com", false, false},
		{"--node for a host that is no node", Options{AppDir: dir, Location: "blog.test/x", Node: "web1"}, "blog", "blog.test/x/", "web1", false, false},
		{"--name", Options{AppDir: dir, Name: "blog-staging"}, "blog-staging", "example.com/blog/", "example.com", false, false},
		{"--config", Options{AppDir: dir, ConfigDir: dir}, "blog", "example.com/blog/", "example.com", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Prepare(context.Background(), tc.o, nodes, "")
			if err != nil {
				t.Fatal(err)
			}
			if p.App != tc.app || p.Location.String() != tc.loc || p.Node != tc.node || p.NeedConfig != tc.needConfig || (p.ConfigManifest != nil) != tc.configUpload {
				t.Errorf("plan: app %s, location %s, node %s, need config %v, config %v", p.App, p.Location, p.Node, p.NeedConfig, p.ConfigManifest != nil)
			}
			if files, _ := p.Manifest.FileBytes(); files != 2 {
				t.Errorf("manifest has %d files", files)
			}
		})
	}

	req := app(t, "[production]\napp_name = blog\nrunner = main.py\nconfig.required = true\n", map[string]string{"main.py": wsgi})
	p, err := Prepare(context.Background(), Options{AppDir: req, Location: "web1"}, nodes, "")
	if err != nil || !p.NeedConfig {
		t.Errorf("config.required without --config: need config %v, %v", p != nil && p.NeedConfig, err)
	}
}

// TestPrepare_BadInput: every mistake is a usage.Error saying what to
// fix, found without any node (Nodes is only asked about names).
func TestPrepare_BadInput(t *testing.T) {
	nodes := nodeSet{"web1": true}
	good := "[production]\napp_name = blog\nrunner = main.py\n"
	escaping := app(t, good, map[string]string{"main.py": wsgi})
	if err := os.Symlink("/etc/passwd", filepath.Join(escaping, "passwd")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  string
		o    Options
		want string
	}{
		{"no directory", filepath.Join(t.TempDir(), "nope"), Options{Location: "web1"}, "no such file"},
		{"no app.ini", app(t, "", map[string]string{"main.py": wsgi}), Options{Location: "web1"}, "no app.ini"},
		{"malformed app.ini", app(t, "[production\napp_name = x\n", nil), Options{Location: "web1"}, "app.ini:1"},
		{"no [production]", app(t, "[devel]\napp_name = x\n", nil), Options{Location: "web1"}, "no [production] section"},
		{"unknown runner", app(t, "[production]\napp_name = blog\nrunner = main.rb\n", map[string]string{"main.rb": "x"}), Options{Location: "web1"}, "runner"},
		{"missing runner", app(t, good, nil), Options{Location: "web1"}, "main.py"},
		{"runner outside", app(t, "[production]\napp_name = blog\nrunner = ../main.py\n", nil), Options{Location: "web1"}, "runner"},
		{"symlink out of the app", escaping, Options{Location: "web1"}, "passwd"},
		{"bad app name", app(t, "[production]\napp_name = Blog.Site\nrunner = main.py\n", map[string]string{"main.py": wsgi}), Options{Location: "web1"}, "app_name"},
		{"--name traversal", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "web1", Name: "../etc"}, "--name"},
		{"no location", app(t, good, map[string]string{"main.py": wsgi}), Options{}, "default_location"},
		{"bad location", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "web1/../etc"}, "'..'"},
		{"location with user", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "http://root@web1/"}, "location"},
		{"unknown node", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "blog.example.com"}, "--node"},
		{"unknown --node", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "web1", Node: "web2"}, "--node web2"},
		{"catch-all without --node", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "*/blog"}, "--node"},
		{"a refused service", app(t, good+"service.couchdb =\n", map[string]string{"main.py": wsgi}), Options{Location: "web1"}, "line 4: service.couchdb: CouchDB is not packaged in Debian 12"},
		{"missing --config dir", app(t, good, map[string]string{"main.py": wsgi}), Options{Location: "web1", ConfigDir: "/nonexistent"}, "--config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.AppDir = tc.dir
			_, err := Prepare(context.Background(), tc.o, nodes, "")
			var ie *usage.Error
			if !errors.As(err, &ie) || !usage.Is(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a usage.Error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":             "http://example.com/",
		"https://example.com/b":   "https://example.com/b/",
		"example.com:8080/x":      "http://example.com:8080/x/",
		".example.com/":           "http://example.com/",
		"[::1]/":                  "http://[::1]/",
		"https://example.com:443": "https://example.com/",
	} {
		l, err := location.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := URL(l); got != want {
			t.Errorf("URL(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		flag  string
		codec wire.BlobCodec
		raw   bool
	}{
		{"s2", wire.CodecS2, false},
		{"zstd", wire.CodecZstd, false},
		{"none", wire.CodecS2, true},
		{"", wire.CodecS2, false}, // Options' zero value
	} {
		c := Compression(tc.flag)
		if tc.flag != "" {
			var err error
			if c, err = ParseCompression(tc.flag); err != nil {
				t.Fatalf("%s: %v", tc.flag, err)
			}
		}
		if o := c.stream(); o.Codec != tc.codec || o.Uncompressed != tc.raw {
			t.Errorf("%q: stream options %+v", tc.flag, o)
		}
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		c    Compression
		rtt  time.Duration
		want Compression
	}{
		{CompressAuto, ms / 10, CompressS2}, {CompressAuto, 20 * ms, CompressZstd}, {"", 4 * ms, CompressS2}, {CompressAuto, -1, CompressZstd},
		{CompressS2, 60 * ms, CompressS2}, {CompressNone, 60 * ms, CompressNone}, {CompressZstd, 0, CompressZstd},
	} {
		if got := tc.c.Resolve(tc.rtt); got != tc.want {
			t.Errorf("%q.Resolve(%v) = %q, want %q", tc.c, tc.rtt, got, tc.want)
		}
	}
	for _, bad := range []string{"gzip", "fast", ""} {
		if _, err := ParseCompression(bad); err == nil || !strings.Contains(err.Error(), "zstd") {
			t.Errorf("--compress %q: %v", bad, err)
		}
	}
}
