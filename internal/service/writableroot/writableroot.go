// Package writableroot is service.writable_root: a per-app directory
// (/var/lib/toppcloud/apps/APP/writable-root, CONFIG_WRITABLE_ROOT) the
// app writes and Caddy serves, after static/ and before the app, with
// HOST/ subdirectories for per-host files.
//
// Caddy reads writable roots only through ServedRoot, a read-only bind
// mount of the apps directory with nosymfollow (and nodev, nosuid,
// noexec): a symlink the app plants there is never followed, so it cannot
// make Caddy serve its TLS keys or another app's files. Hard links to
// files the app does not own are refused by the kernel
// (fs.protected_hardlinks, on by default). The directory is setgid to
// Caddy's group, so what the app writes (UMask 0027) Caddy can read and
// no other app can.
package writableroot

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/files"
)

// Name is the service's name in app.ini.
const Name = "writable_root"

// Archive is the backup file, named as the original named it.
const Archive = "files.tar"

// Group is the group that may read writable roots: Caddy's.
const Group = "caddy"

// The node's paths this service uses, from the node layout: the apps
// directory, where Caddy sees it without symlinks, and the unit directory.
var (
	AppsDir    = layout.Default().Apps
	ServedRoot = layout.Default().Served
	unitDir    = layout.Default().Units
)

// MountUnit is the systemd unit of the ServedRoot mount (its name is the
// escaped path, as systemd requires; a test keeps the two in step).
const MountUnit = "var-lib-toppcloud-served.mount"

func init() {
	service.Register(service.Info{Name: Name, New: func(n service.Node) service.Service { return New(n) }})
}

// Dir is the app's writable root.
func Dir(app service.App) string { return path.Join(app.DataDir, "writable-root") }

// ServedDir is app's writable root as Caddy must read it.
func ServedDir(app string) string { return path.Join(ServedRoot, app, "writable-root") }

// WritableRoot is the service on one node.
type WritableRoot struct {
	h       *host.Host
	tree    files.Tree
	mounter Mounter
}

// New returns the writable_root service of node n.
func New(n service.Node) *WritableRoot {
	return &WritableRoot{h: n.Host, mounter: kernelMounter{}, tree: files.Tree{Host: n.Host, Dir: Dir, Mode: 0o750 | fs.ModeSetgid, Group: Group, Archive: Archive, Warn: n.Warnf}}
}

// Name returns "writable_root".
func (*WritableRoot) Name() string { return Name }

// Packages returns none.
func (*WritableRoot) Packages(service.App) []string { return nil }

// MountUnitText is the mount unit for ServedRoot.
func MountUnitText() []byte {
	return []byte(`# toppcloud: the apps' writable roots as Caddy reads them; written by the agent, do not edit.
# nosymfollow: a symlink an app plants in its writable root is never followed.
[Unit]
Description=toppcloud writable roots for Caddy (read-only, no symlinks)
Before=caddy.service
RequiresMountsFor=` + AppsDir + `

[Mount]
What=` + AppsDir + `
Where=` + ServedRoot + `
Type=none
Options=bind,ro,nosymfollow,nodev,nosuid,noexec

[Install]
WantedBy=local-fs.target
`)
}

// Install makes ServedRoot: the mount, and its unit enabled for boots.
//
// Why the agent mounts it itself rather than starting the unit: a unit
// (libmount) binds the directory and then remounts it read-only and
// nosymfollow, and only the bind propagates into the mount namespaces of
// services already running; Caddy (ProtectSystem) would see a plain
// read-write bind that follows symlinks. A mount made whole before it is
// attached (open_tree, mount_setattr, move_mount) propagates with its
// flags. At boot the unit mounts it before Caddy starts, which is fine.
func (w *WritableRoot) Install(ctx context.Context) error {
	if _, ok, err := w.h.LookupGroup(Group); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("no group %s: run setup-node first (it installs Caddy)", Group)
	}
	if _, err := w.h.EnsureDir(AppsDir, host.Attr{Mode: 0o711}); err != nil {
		return err
	}
	mounted, present, err := w.mounted()
	if err != nil {
		return err
	}
	if !present {
		// Once mounted, the mount point shows the (read-only) apps
		// directory: only an unmounted one is ours to correct.
		if _, err := w.h.EnsureDir(ServedRoot, host.Attr{Mode: 0o755}); err != nil {
			return err
		}
	}
	changed, err := w.h.WriteFile(path.Join(unitDir, MountUnit), MountUnitText(), host.Attr{Mode: 0o644})
	if err != nil {
		return err
	}
	sd := system.Systemd{Runner: w.h.Runner}
	if changed {
		if err := sd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	if _, err := sd.Enable(ctx, MountUnit); err != nil {
		return err
	}
	if mounted {
		return nil
	}
	if present {
		// Mounted, but not as it must be (made by hand, or by an older
		// agent): replace it.
		if err := w.mounter.Unmount(w.h.Path(ServedRoot)); err != nil {
			return fmt.Errorf("unmount %s: %w", ServedRoot, err)
		}
	}
	if _, real := w.mounter.(kernelMounter); real && w.h.Root != "/" && w.h.Root != "" {
		return fmt.Errorf("mount %s: refusing to mount for real under the test root %s", ServedRoot, w.h.Root)
	}
	if err := w.mounter.BindNoSymlinks(w.h.Path(AppsDir), w.h.Path(ServedRoot)); err != nil {
		return fmt.Errorf("mount %s (needs Linux 5.12+ for nosymfollow and the new mount API): %w", ServedRoot, err)
	}
	if mounted, _, err = w.mounted(); err != nil {
		return err
	} else if !mounted {
		return fmt.Errorf("%s is not mounted read-only and nosymfollow after mounting it", ServedRoot)
	}
	return nil
}

// Mounter makes and removes the ServedRoot mount.
type Mounter interface {
	// BindNoSymlinks mounts src at dst, read-only, nosymfollow, nodev,
	// nosuid, noexec, all at once.
	BindNoSymlinks(src, dst string) error
	Unmount(dst string) error
}

// mounted reports whether ServedRoot is mounted as it must be (ok), or
// at all (present).
func (w *WritableRoot) mounted() (ok, present bool, err error) {
	data, err := w.h.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, false, err
	}
	ok, present = servedMounted(string(data))
	return ok, present, nil
}

// servedMounted finds ServedRoot in mountinfo text: present, and with
// the options it must have (ok).
func servedMounted(mountinfo string) (ok, present bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		// id parent major:minor root mountpoint options ...
		if len(f) > 5 && f[4] == ServedRoot {
			opts := "," + f[5] + ","
			ok = true
			for _, o := range []string{"ro", "nosymfollow", "nodev", "nosuid", "noexec"} {
				ok = ok && strings.Contains(opts, ","+o+",")
			}
			// The last mount at a path is the one seen.
			present = true
		}
	}
	return ok, present
}

func vars(app service.App) map[string]string {
	return map[string]string{service.VarWritableRoot: Dir(app)}
}

// Setup makes the directory (2750, the app's user, Caddy's group).
func (w *WritableRoot) Setup(_ context.Context, app service.App) (map[string]string, error) {
	if err := w.tree.Setup(app); err != nil {
		return nil, err
	}
	return vars(app), nil
}

// Clear empties the directory.
func (w *WritableRoot) Clear(ctx context.Context, app service.App) (map[string]string, error) {
	if err := w.tree.Empty(app); err != nil {
		return nil, err
	}
	return w.Setup(ctx, app)
}

// Backup writes files.tar.
func (w *WritableRoot) Backup(ctx context.Context, app service.App, dir string) error {
	return w.tree.Backup(ctx, app, dir)
}

// CheckBackup checks files.tar's entries.
func (w *WritableRoot) CheckBackup(ctx context.Context, app service.App, dir string) error {
	return w.tree.CheckBackup(ctx, app, dir)
}

// Restore replaces the directory's contents with files.tar's.
func (w *WritableRoot) Restore(ctx context.Context, app service.App, dir string) error {
	return w.tree.Restore(ctx, app, dir)
}

// Usage counts the files and their bytes.
func (w *WritableRoot) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	return w.tree.Usage(ctx, app)
}

var (
	_ service.Service       = (*WritableRoot)(nil)
	_ service.BackupChecker = (*WritableRoot)(nil)
)
