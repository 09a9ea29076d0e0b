// Package servicetest is the contract suite every service runs: in unit
// tests against a temporary root and a fake runner where the service can
// be faked that far, and on a real local node in the integration test of
// internal/service/all. It checks what the agent and apps rely on:
//
//   - Install and Setup twice change nothing: the same CONFIG_* variables
//     (all named CONFIG_*, the keys the service documents), the data
//     written in between still there;
//   - Backup, Clear (data gone, same variables), Restore: the data as it
//     was, byte for byte as the app reads it;
//   - a backup whose file was truncated is refused, the data untouched;
//   - one app's credentials cannot read another app's data.
package servicetest

import (
	"context"
	"errors"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/service"
)

// Opt says how to exercise one service.
type Opt struct {
	// Service is the service under test, made for Host's node.
	Service service.Service
	Host    *host.Host
	// Apps are two apps whose users exist; the suite sets both up.
	Apps [2]service.App
	// Vars are the variable names Setup must give, exactly.
	Vars []string
	// Write stores data named by round in app's service, as the app would
	// (through env, the app's own variables), adding to what is there.
	Write func(t testing.TB, app service.App, env map[string]string, round string)
	// Read returns everything app keeps in the service, as the app sees
	// it through env, in a canonical form (sorted, with contents or
	// their sums): equal strings mean equal data.
	Read func(t testing.TB, app service.App, env map[string]string) string
	// CrossRead tries to read victim's data with app's env; it must
	// fail, and the error is what the test shows.
	CrossRead func(t testing.TB, app service.App, env map[string]string, victim service.App) error
	// BackupDir is a node directory the suite may create backups under.
	BackupDir string
}

// Run runs the contract suite.
func Run(t *testing.T, o Opt) {
	ctx := context.Background()
	s := o.Service
	a, b := o.Apps[0], o.Apps[1]
	bound := []service.Bound{{Service: s, App: a}}

	var envA map[string]string
	t.Run("InstallAndSetupTwice", func(t *testing.T) {
		for i := range 2 {
			if err := s.Install(ctx); err != nil {
				t.Fatalf("install #%d: %v", i+1, err)
			}
		}
		env1, err := s.Setup(ctx, a)
		if err != nil {
			t.Fatalf("setup: %v", err)
		}
		checkVars(t, o, env1)
		o.Write(t, a, env1, "one")
		before := o.Read(t, a, env1)
		if before == "" {
			t.Fatal("Read shows nothing after Write")
		}
		env2, err := s.Setup(ctx, a)
		if err != nil {
			t.Fatalf("second setup: %v", err)
		}
		if !maps.Equal(env1, env2) {
			t.Errorf("variables changed between two setups: %v", diffKeys(env1, env2))
		}
		if after := o.Read(t, a, env2); after != before {
			t.Errorf("a second setup changed the data:\nbefore %q\nafter  %q", before, after)
		}
		envA = env1
	})
	if envA == nil {
		t.FailNow()
	}

	t.Run("Usage", func(t *testing.T) {
		u, err := s.Usage(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if u.Items == 0 || u.Unit == "" {
			t.Errorf("usage after writing = %+v", u)
		}
	})

	t.Run("BackupClearRestore", func(t *testing.T) {
		o.Write(t, a, envA, "two")
		want := o.Read(t, a, envA)
		dir := path.Join(o.BackupDir, s.Name()+"-roundtrip")
		m, err := service.Backup(ctx, o.Host, a.Name, bound, dir, "test", nil)
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(o.Host.Path(dir)) })
		if m.Size() == 0 || len(m.Services) != 1 || len(m.Services[0].Files) == 0 {
			t.Errorf("manifest %+v", m)
		}
		env, err := s.Clear(ctx, a)
		if err != nil {
			t.Fatalf("clear: %v", err)
		}
		if !maps.Equal(env, envA) {
			t.Errorf("clear changed the variables: %v", diffKeys(envA, env))
		}
		empty := o.Read(t, a, env)
		if empty == want {
			t.Fatalf("clear left the data: %q", empty)
		}
		// Written after the backup: restore must remove it again.
		o.Write(t, a, env, "after-clear")
		if _, err := service.Restore(ctx, o.Host, a.Name, bound, dir, nil); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got := o.Read(t, a, envA); got != want {
			t.Errorf("restored data differs:\nwant %q\ngot  %q", want, got)
		}
		// Restoring twice gives the same, not twice the data.
		if _, err := service.Restore(ctx, o.Host, a.Name, bound, dir, nil); err != nil {
			t.Fatalf("second restore: %v", err)
		}
		if got := o.Read(t, a, envA); got != want {
			t.Errorf("data after a second restore differs:\nwant %q\ngot  %q", want, got)
		}
	})

	t.Run("BadBackupChangesNothing", func(t *testing.T) {
		want := o.Read(t, a, envA)
		dir := path.Join(o.BackupDir, s.Name()+"-bad")
		m, err := service.Backup(ctx, o.Host, a.Name, bound, dir, "test", nil)
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(o.Host.Path(dir)) })
		f := m.Services[0].Files[0]
		real := o.Host.Path(path.Join(dir, f.Path))
		if err := os.Truncate(real, f.Size/2); err != nil {
			t.Fatal(err)
		}
		_, err = service.Restore(ctx, o.Host, a.Name, bound, dir, nil)
		if !errors.Is(err, service.ErrBadBackup) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("truncated backup: %v", err)
		}
		if _, err := service.Restore(ctx, o.Host, b.Name, []service.Bound{{Service: s, App: b}}, dir, nil); !errors.Is(err, service.ErrBadBackup) || !strings.Contains(err.Error(), "backup of the app") {
			t.Errorf("another app's backup: %v", err)
		}
		if got := o.Read(t, a, envA); got != want {
			t.Errorf("a refused restore changed the data:\nwant %q\ngot  %q", want, got)
		}
		// A file the manifest vouches for but the service cannot read
		// (damaged when it was made) is refused too.
		if c, ok := s.(service.BackupChecker); ok {
			sub := path.Join(dir, s.Name())
			for _, f := range m.Services[0].Files {
				if err := os.WriteFile(o.Host.Path(path.Join(dir, f.Path)), []byte("not a backup\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.CheckBackup(ctx, a, sub); err == nil {
				t.Error("CheckBackup accepted garbage")
			}
		}
	})

	t.Run("Isolation", func(t *testing.T) {
		envB, err := s.Setup(ctx, b)
		if err != nil {
			t.Fatalf("setup %s: %v", b.Name, err)
		}
		if maps.Equal(envA, envB) {
			t.Fatal("two apps got the same variables")
		}
		o.Write(t, b, envB, "b-secret")
		wantB := o.Read(t, b, envB)
		if err := o.CrossRead(t, a, envA, b); err == nil {
			t.Errorf("%s read %s's data", a.Name, b.Name)
		} else {
			t.Logf("%s -> %s refused: %v", a.Name, b.Name, err)
		}
		if err := o.CrossRead(t, b, envB, a); err == nil {
			t.Errorf("%s read %s's data", b.Name, a.Name)
		}
		if got := o.Read(t, b, envB); got != wantB {
			t.Errorf("%s's data changed", b.Name)
		}
		// Clearing one app leaves the other's data alone.
		if _, err := s.Clear(ctx, a); err != nil {
			t.Fatal(err)
		}
		if got := o.Read(t, b, envB); got != wantB {
			t.Errorf("clearing %s changed %s's data", a.Name, b.Name)
		}
	})
}

func checkVars(t *testing.T, o Opt, env map[string]string) {
	t.Helper()
	for k := range env {
		if !strings.HasPrefix(k, "CONFIG_") {
			t.Errorf("variable %s is not CONFIG_*", k)
		}
	}
	got := slices.Sorted(maps.Keys(env))
	want := slices.Sorted(slices.Values(o.Vars))
	if !slices.Equal(got, want) {
		t.Errorf("variables %v, want %v", got, want)
	}
}

// diffKeys names the variables that differ, without their values (they
// may be passwords).
func diffKeys(a, b map[string]string) []string {
	var out []string
	for k := range a {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
