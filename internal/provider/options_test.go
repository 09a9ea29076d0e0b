package provider

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestResolve_SectionThenEnvThenDefault(t *testing.T) {
	opts := []Option{
		OptSecret.With(func(o *Option) { o.EnvVars = []string{"A_TOKEN", "B_TOKEN"} }),
		OptRegion.With(func(o *Option) { o.Default = "dfw" }),
		OptSSHUser,
	}
	env := map[string]string{"B_TOKEN": "from-env"}
	s := Resolve(opts, map[string]string{"Region": "ord", "legacy_key": "x"}, func(k string) string { return env[k] })
	if s.Get("secret") != "from-env" || s.Get("region") != "ord" || s.Get("ssh_user") != "root" || s.Get("legacy_key") != "x" {
		t.Errorf("resolved = %v", s)
	}
	s = Resolve(opts, map[string]string{"secret": "from-file"}, func(k string) string { return env[k] })
	if s.Get("secret") != "from-file" || s.Get("region") != "dfw" {
		t.Errorf("section must win over env: %v", s)
	}
}

func TestCheckRequired(t *testing.T) {
	opts := []Option{OptSecret.With(func(o *Option) { o.Required = true; o.EnvVars = []string{"X_TOKEN"} })}
	err := Settings{}.CheckRequired(opts)
	var miss *MissingOptionError
	if !errors.As(err, &miss) || !strings.Contains(err.Error(), "$X_TOKEN") {
		t.Fatalf("err = %v, want a MissingOptionError naming the env var", err)
	}
	if err := (Settings{"secret": "s"}).CheckRequired(opts); err != nil {
		t.Fatal(err)
	}
}

func TestDecode(t *testing.T) {
	type opts struct {
		Name    string        `config:"name"`
		On      bool          `config:"on"`
		N       int           `config:"n"`
		Wait    time.Duration `config:"wait"`
		Ignored string
	}
	var o opts
	err := Settings{"name": "x", "on": "yes", "n": "3", "wait": "2s"}.Decode(&o)
	if err != nil {
		t.Fatal(err)
	}
	if o != (opts{Name: "x", On: true, N: 3, Wait: 2 * time.Second}) {
		t.Errorf("decoded %+v", o)
	}
	for _, bad := range []Settings{{"on": "maybe"}, {"n": "three"}, {"wait": "soon"}} {
		if err := bad.Decode(&o); err == nil {
			t.Errorf("Decode(%v): want an error", bad)
		}
	}
	if err := (Settings{}).Decode(o); err == nil {
		t.Error("Decode of a non-pointer: want an error")
	}
	if err := CheckOptionFields([]Option{{Name: "name"}, {Name: "missing"}}, &o); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("CheckOptionFields = %v, want it to name the missing field", err)
	}
}

func TestRegister_Panics(t *testing.T) {
	nop := func(Env) (Driver, error) { return nil, nil }
	tests := []struct {
		name string
		info Info
	}{
		{"empty name", Info{New: nop}},
		{"upper case", Info{Name: "Foo", New: nop}},
		{"nil New", Info{Name: "foo-nil"}},
		{"duplicate option", Info{Name: "foo-dup", New: nop, Options: []Option{{Name: "a"}, {Name: "a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Register did not panic")
				}
			}()
			Register(tt.info)
		})
	}
}

func TestOpen_UnknownTypeListsKnown(t *testing.T) {
	r := NewRegistry(Info{Name: "opentest", New: func(Env) (Driver, error) { return nil, nil }})
	_, err := r.Open("nosuch", Env{})
	var ute *UnknownTypeError
	if !errors.As(err, &ute) || !strings.Contains(err.Error(), "opentest") {
		t.Fatalf("err = %v, want an UnknownTypeError listing the registered types", err)
	}
}

// TestRegistry_OwnSetStaysApart: a registry a test builds neither sees
// nor changes the binary's, and refuses duplicates as Register does.
func TestRegistry_OwnSetStaysApart(t *testing.T) {
	nop := func(Env) (Driver, error) { return nil, nil }
	r := NewRegistry(Info{Name: "own-b", New: nop}, Info{Name: "own-a", New: nop})
	if got := r.Names(); len(got) != 2 || got[0] != "own-a" || got[1] != "own-b" {
		t.Errorf("Names = %q", got)
	}
	if infos := r.Infos(); len(infos) != 2 || infos[0].Name != "own-a" {
		t.Errorf("Infos = %+v", infos)
	}
	if _, ok := r.Lookup("OWN-A"); !ok {
		t.Error("Lookup is not case-insensitive")
	}
	if _, ok := Lookup("own-a"); ok {
		t.Error("a test's registry leaked into Registered")
	}
	defer func() {
		if recover() == nil {
			t.Error("NewRegistry with a duplicate did not panic")
		}
	}()
	NewRegistry(Info{Name: "dup", New: nop}, Info{Name: "dup", New: nop})
}
