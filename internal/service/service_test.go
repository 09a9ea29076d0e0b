package service

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
)

// recorder is a service that records its calls.
type recorder struct {
	name      string
	pkgs      []string
	vars      map[string]string
	calls     *[]string
	conflicts []string
}

func (r recorder) Name() string          { return r.name }
func (r recorder) Packages(App) []string { return r.pkgs }
func (r recorder) Conflicts() []string   { return r.conflicts }
func (r recorder) Install(context.Context) error {
	*r.calls = append(*r.calls, "install "+r.name)
	return nil
}
func (r recorder) Setup(_ context.Context, a App) (map[string]string, error) {
	*r.calls = append(*r.calls, "setup "+r.name+" "+a.Name+" "+a.Value)
	return r.vars, nil
}
func (r recorder) Clear(_ context.Context, a App) (map[string]string, error) {
	*r.calls = append(*r.calls, "clear "+r.name)
	return r.vars, nil
}
func (r recorder) Backup(context.Context, App, string) error  { return nil }
func (r recorder) Restore(context.Context, App, string) error { return nil }
func (r recorder) Usage(context.Context, App) (Usage, error) {
	return Usage{Items: 1, Unit: "things"}, nil
}

func registryOf(m map[string]Info) func(string) (Info, bool) {
	return func(n string) (Info, bool) { i, ok := m[n]; return i, ok }
}

func TestPrepare(t *testing.T) {
	var calls []string
	svcs := map[string]Info{
		"postgis": {Name: "postgis", New: func(Node) Service {
			return recorder{"postgis", []string{"postgresql", "postgis"}, map[string]string{"CONFIG_PG_DBNAME": "blog"}, &calls, nil}
		}},
		"files": {Name: "files", New: func(Node) Service {
			return recorder{"files", nil, map[string]string{"CONFIG_FILES": "/data"}, &calls, nil}
		}},
	}
	var warnings []string
	node := Node{Warn: func(m string) { warnings = append(warnings, m) }}
	reqs := []Request{{Name: "postgis", Value: "x"}, {Name: "nosuch"}, {Name: "files"}}
	bound, err := resolve(node, App{Name: "blog"}, reqs, registryOf(svcs))
	if err != nil {
		t.Fatal(err)
	}
	var installed []string
	h := Hooks{InstallPackages: func(_ context.Context, p []string) error {
		installed = append(installed, p...)
		return nil
	}}
	env, err := Prepare(context.Background(), bound, false, h)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"CONFIG_PG_DBNAME": "blog", "CONFIG_FILES": "/data"}; !reflect.DeepEqual(env, want) {
		t.Errorf("env = %v", env)
	}
	// Name order, as the original; each installed, then set up.
	if want := []string{"install files", "setup files blog ", "install postgis", "setup postgis blog x"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %q", calls)
	}
	if want := []string{"postgis", "postgresql"}; !reflect.DeepEqual(installed, want) {
		t.Errorf("packages = %q", installed)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `service.nosuch: this toppcloud has no service "nosuch"`) {
		t.Errorf("warnings = %q", warnings)
	}

	calls = nil
	if _, err := Prepare(context.Background(), bound[:1], true, h); err != nil || !reflect.DeepEqual(calls, []string{"install files", "clear files"}) {
		t.Errorf("clear: %v %q", err, calls)
	}

	svcs["bad"] = Info{Name: "bad", New: func(Node) Service { return recorder{"bad", nil, map[string]string{"PASSWORD": "x"}, &calls, nil} }}
	bound, _ = resolve(node, App{Name: "blog"}, []Request{{Name: "bad"}}, registryOf(svcs))
	if _, err := Prepare(context.Background(), bound, false, h); !errors.Is(err, ErrVariable) {
		t.Errorf("a non-CONFIG_ variable: %v", err)
	}
}

func TestResolve_RefusesBeforeAnything(t *testing.T) {
	made := 0
	svcs := map[string]Info{
		"couchdb": {Name: "couchdb", Unavailable: "CouchDB is not in Debian 12"},
		"files":   {Name: "files", New: func(Node) Service { made++; return recorder{name: "files"} }},
		"postgis": {Name: "postgis", New: func(Node) Service { return recorder{name: "postgis", conflicts: []string{"postgresql"}} }},
		"postgresql": {Name: "postgresql", New: func(Node) Service {
			return recorder{name: "postgresql", conflicts: []string{"postgis"}}
		}},
	}
	_, err := resolve(Node{}, App{Name: "a"}, []Request{{Name: "files"}, {Name: "couchdb"}}, registryOf(svcs))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "service.couchdb") || !strings.Contains(err.Error(), "not in Debian 12") {
		t.Errorf("couchdb: %v", err)
	}
	_, err = resolve(Node{}, App{Name: "a"}, []Request{{Name: "postgis"}, {Name: "postgresql"}}, registryOf(svcs))
	if err == nil || strings.Count(err.Error(), "cannot be used together") != 1 {
		t.Errorf("postgis + postgresql: %v", err)
	}
}

func TestRegister_Panics(t *testing.T) {
	for _, info := range []Info{
		{Name: "", Unavailable: "x"},
		{Name: "Bad", Unavailable: "x"},
		{Name: "a-b", Unavailable: "x"},
		{Name: "neither"},
		{Name: "both", Unavailable: "x", New: func(Node) Service { return nil }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", info)
				}
			}()
			Register(info)
		}()
	}
}

func TestAppCredentials(t *testing.T) {
	h := hosttest.New(t, nil)
	app := App{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog"}
	c1, err := AppCredentials(h, app, "postgresql", "blog")
	if err != nil {
		t.Fatal(err)
	}
	if c1.User != "blog" || len(c1.Password) < 20 {
		t.Errorf("credentials %q / %d chars", c1.User, len(c1.Password))
	}
	c2, err := AppCredentials(h, app, "postgresql", "blog")
	if err != nil || c2 != c1 {
		t.Errorf("second read differs: %v", err)
	}
	a, _, err := h.Stat("/var/lib/toppcloud/apps/blog/services/postgresql.json")
	if err != nil || a.String() != "root:root 0600" {
		t.Errorf("file %s, %v", a, err)
	}
	if d, _, _ := h.Stat("/var/lib/toppcloud/apps/blog/services"); d.String() != "root:root 0700" {
		t.Errorf("dir %s", d)
	}
	if _, err := AppCredentials(h, app, "postgresql", "other"); err == nil {
		t.Error("credentials for another user were accepted")
	}
	if c3, _ := AppCredentials(h, App{Name: "x", DataDir: "/var/lib/toppcloud/apps/x"}, "postgresql", "x"); c3.Password == c1.Password {
		t.Error("two apps got the same password")
	}
}
