package writableroot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/servicetest"
)

func testHost(t *testing.T) (*host.Host, *hosttest.Runner) {
	r := hosttest.NewRunner(t)
	// systemctl as it answers: the unit is enabled once enabled.
	enabled := false
	r.Handle("systemctl", func(c host.Command) (string, error) {
		switch c.Argv[1] {
		case "is-enabled":
			if enabled {
				return "enabled\n", nil
			}
			return "disabled\n", errors.New("exit status 1")
		case "enable":
			enabled = true
		}
		return "", nil
	})
	h := hosttest.New(t, r)
	hosttest.WriteFile(t, h.Root, "/etc/passwd", hosttest.Passwd+
		"app-blog:x:1001:1001::/nonexistent:/usr/sbin/nologin\n"+
		"app-wiki:x:1002:1002::/nonexistent:/usr/sbin/nologin\n")
	hosttest.WriteFile(t, h.Root, "/etc/group", hosttest.Group+"app-blog:x:1001:\napp-wiki:x:1002:\ncaddy:x:110:\n")
	hosttest.WriteFile(t, h.Root, "/proc/self/mountinfo", rootLine)
	return h, r
}

const mountedLine = "99 22 0:21 /var/lib/toppcloud/apps /var/lib/toppcloud/served ro,nosuid,nodev,noexec,relatime,nosymfollow - ext4 /dev/sda rw\n"

// fakeMounter "mounts" by writing the mount into the fake mountinfo.
type fakeMounter struct {
	t     *testing.T
	h     *host.Host
	calls []string
}

func (f *fakeMounter) BindNoSymlinks(src, dst string) error {
	f.calls = append(f.calls, "bind "+strings.TrimPrefix(src, f.h.Root)+" "+strings.TrimPrefix(dst, f.h.Root))
	hosttest.WriteFile(f.t, f.h.Root, "/proc/self/mountinfo", rootLine+mountedLine)
	return nil
}

func (f *fakeMounter) Unmount(dst string) error {
	f.calls = append(f.calls, "unmount "+strings.TrimPrefix(dst, f.h.Root))
	return nil
}

const rootLine = "22 1 0:21 / / rw,relatime - ext4 /dev/sda rw\n"

func TestInstall(t *testing.T) {
	h, r := testHost(t)
	w := New(service.Node{Host: h})
	m := &fakeMounter{t: t, h: h}
	w.mounter = m
	if err := w.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"systemctl daemon-reload", "systemctl is-enabled " + MountUnit, "systemctl enable --quiet " + MountUnit}
	if got := r.CallLines(); !slices.Equal(got, want) {
		t.Errorf("first install ran %q", got)
	}
	if !slices.Equal(m.calls, []string{"bind " + AppsDir + " " + ServedRoot}) {
		t.Errorf("mounts %q", m.calls)
	}
	unit, _ := h.ReadFile("/etc/systemd/system/" + MountUnit)
	if !strings.Contains(string(unit), "Options=bind,ro,nosymfollow,nodev,nosuid,noexec") {
		t.Errorf("unit:\n%s", unit)
	}
	// Mounted and unchanged: only the check that it is enabled.
	r.Reset()
	m.calls = nil
	if err := w.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.CallLines(); !slices.Equal(got, want[1:2]) || len(m.calls) != 0 {
		t.Errorf("second install ran %q, mounts %q", got, m.calls)
	}
	// Mounted the way a unit mounts it while Caddy runs (without the
	// flags where Caddy looks): replaced.
	hosttest.WriteFile(t, h.Root, "/proc/self/mountinfo", rootLine+strings.Replace(mountedLine, ",nosymfollow", "", 1))
	m.calls = nil
	if err := w.Install(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.calls, []string{"unmount " + ServedRoot, "bind " + AppsDir + " " + ServedRoot}) {
		t.Errorf("remount: %q", m.calls)
	}
	// No caddy group: setup-node has not run.
	hosttest.WriteFile(t, h.Root, "/etc/group", hosttest.Group)
	if err := w.Install(context.Background()); err == nil || !strings.Contains(err.Error(), "setup-node") {
		t.Errorf("without caddy: %v", err)
	}
}

func TestServedMounted(t *testing.T) {
	for _, tc := range []struct {
		info        string
		ok, present bool
	}{
		{mountedLine, true, true},
		{strings.Replace(mountedLine, ",nosymfollow", "", 1), false, true},
		{strings.Replace(mountedLine, "ro,", "rw,", 1), false, true},
		{rootLine, false, false},
		// A plain bind on top of a good one: the plain one is seen.
		{mountedLine + strings.Replace(mountedLine, ",nosymfollow", "", 1), false, true},
	} {
		if ok, present := servedMounted(tc.info); ok != tc.ok || present != tc.present {
			t.Errorf("%q: %v %v", tc.info, ok, present)
		}
	}
}

func TestWritableRoot_Contract(t *testing.T) {
	h, _ := testHost(t)
	s := New(service.Node{Host: h})
	s.mounter = &fakeMounter{t: t, h: h}
	servicetest.Run(t, servicetest.Opt{
		Service: s,
		Host:    h,
		Apps: [2]service.App{
			{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog", User: "app-blog"},
			{Name: "wiki", DataDir: "/var/lib/toppcloud/apps/wiki", User: "app-wiki"},
		},
		Vars:      []string{"CONFIG_WRITABLE_ROOT"},
		BackupDir: "/var/lib/toppcloud/backups",
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			dir := h.Path(env["CONFIG_WRITABLE_ROOT"])
			for _, p := range []string{round + ".html", "example.com/" + round + ".txt"} {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o750)
				if err := os.WriteFile(filepath.Join(dir, p), []byte(app.Name+" "+round), 0o640); err != nil {
					t.Fatal(err)
				}
			}
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			var out []string
			filepath.Walk(h.Path(Dir(app)), func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					data, _ := os.ReadFile(p)
					out = append(out, fmt.Sprintf("%s=%s", strings.TrimPrefix(p, h.Path(Dir(app))), data))
				}
				return nil
			})
			slices.Sort(out)
			return strings.Join(out, ";")
		},
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			a, _, err := h.Stat(Dir(victim))
			if err != nil {
				return err
			}
			if a.User == app.User || a.Group == app.User || a.Mode&0o007 != 0 {
				return nil
			}
			if a.String() != "app-"+victim.Name+":caddy 2750" {
				t.Errorf("writable root is %s", a)
			}
			return fmt.Errorf("%s is %s", Dir(victim), a)
		},
	})
}

// TestMountUnit_NamesServedRoot: systemd names a mount unit after its
// path, escaped; the constant must follow the layout.
func TestMountUnit_NamesServedRoot(t *testing.T) {
	want := strings.ReplaceAll(strings.Trim(ServedRoot, "/"), "/", "-") + ".mount"
	if MountUnit != want {
		t.Errorf("MountUnit %s, want %s for %s", MountUnit, want, ServedRoot)
	}
}
