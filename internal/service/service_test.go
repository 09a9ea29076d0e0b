package service

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
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

// fileService backs up one file of its own and fails when told to.
type fileService struct {
	recorder
	h    *host.Host
	fail error
	mu   *sync.Mutex // services run at once
}

func (f fileService) Backup(ctx context.Context, a App, dir string) error {
	if f.fail != nil {
		return f.fail
	}
	_, err := f.h.WriteFile(dir+"/"+f.name+".dump", []byte("data of "+f.name), host.Attr{Mode: 0o600})
	return err
}

func (f fileService) Restore(ctx context.Context, a App, dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.calls = append(*f.calls, "restore "+f.name)
	return f.fail
}

func TestBackupRestore_EveryService(t *testing.T) {
	h := hosttest.New(t, nil)
	var calls []string
	var mu sync.Mutex
	mk := func(name string, fail error) Bound {
		return Bound{Service: fileService{recorder: recorder{name: name, calls: &calls}, h: h, fail: fail, mu: &mu}, App: App{Name: "blog"}}
	}
	bound := []Bound{mk("files", nil), mk("postgresql", nil), mk("redis", nil)}
	m, err := Backup(context.Background(), h, "blog", bound, "/b/one", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ServiceNames(); !reflect.DeepEqual(got, []string{"files", "postgresql", "redis"}) || m.Size() != int64(len("data of files")+len("data of postgresql")+len("data of redis")) {
		t.Errorf("manifest %v, %d bytes", got, m.Size())
	}
	if _, err := Restore(context.Background(), h, "blog", bound, "/b/one", nil); err != nil || len(calls) != 3 {
		t.Errorf("restore: %v %q", err, calls)
	}
	// One service failing: its error, and no half backup left.
	bad := []Bound{mk("files", nil), mk("postgresql", errors.New("pg_dump: connection refused"))}
	if _, err := Backup(context.Background(), h, "blog", bad, "/b/two", "test", nil); err == nil || !strings.Contains(err.Error(), "back up postgresql: pg_dump: connection refused") {
		t.Errorf("failed backup: %v", err)
	}
	if ok, _ := h.Exists("/b/two"); ok {
		t.Error("a failed backup left its directory")
	}
	// Another app's backup, and a backup of other services, are refused.
	if _, err := Restore(context.Background(), h, "wiki", bound, "/b/one", nil); !errors.Is(err, ErrBadBackup) {
		t.Errorf("another app: %v", err)
	}
	if _, err := Restore(context.Background(), h, "blog", bound[:2], "/b/one", nil); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "the app now uses [files postgresql]") {
		t.Errorf("other services: %v", err)
	}
}
