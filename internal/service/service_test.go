package service

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// recorder is a service that records its calls.
type recorder struct {
	name  string
	pkgs  []string
	vars  map[string]string
	calls *[]string
}

func (r recorder) Name() string       { return r.name }
func (r recorder) Packages() []string { return r.pkgs }
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

func TestPrepare(t *testing.T) {
	var calls []string
	svcs := map[string]Service{
		"postgis": recorder{"postgis", []string{"postgresql", "postgis"}, map[string]string{"CONFIG_PG_DBNAME": "blog"}, &calls},
		"files":   recorder{"files", nil, map[string]string{"CONFIG_FILES": "/data"}, &calls},
		"nop":     Nop{ServiceName: "nop"},
	}
	var warnings []string
	var installed []string
	h := Hooks{
		Lookup: func(n string) (Service, bool) { s, ok := svcs[n]; return s, ok },
		Warn:   func(m string) { warnings = append(warnings, m) },
		InstallPackages: func(_ context.Context, p []string) error {
			installed = append(installed, p...)
			return nil
		},
	}
	reqs := []Request{{Name: "postgis", Value: "x"}, {Name: "mongodb"}, {Name: "files"}, {Name: "nop"}}
	env, err := Prepare(context.Background(), App{Name: "blog"}, reqs, false, h)
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
	if len(warnings) != 1 || !strings.Contains(warnings[0], `service.mongodb: this toppcloud has no service "mongodb"`) {
		t.Errorf("warnings = %q", warnings)
	}

	calls = nil
	if _, err := Prepare(context.Background(), App{Name: "blog"}, reqs[2:3], true, h); err != nil || !reflect.DeepEqual(calls, []string{"install files", "clear files"}) {
		t.Errorf("clear: %v %q", err, calls)
	}

	svcs["bad"] = recorder{"bad", nil, map[string]string{"PASSWORD": "x"}, &calls}
	if _, err := Prepare(context.Background(), App{Name: "blog"}, []Request{{Name: "bad"}}, false, h); !errors.Is(err, ErrVariable) {
		t.Errorf("a non-CONFIG_ variable: %v", err)
	}
}

func TestPrepare_DefaultRegistryIsEmpty(t *testing.T) {
	// No service is implemented yet: every service.NAME warns.
	var warnings []string
	env, err := Prepare(context.Background(), App{Name: "a"}, []Request{{Name: "postgis"}}, false, Hooks{Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil || len(env) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "none is available yet") {
		t.Errorf("env %v, err %v, warnings %q", env, err, warnings)
	}
}

func TestRegister_Panics(t *testing.T) {
	for _, name := range []string{"", "Bad", "a-b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			Register(Nop{ServiceName: name})
		}()
	}
}
