// Package files is service.files: a per-app data directory
// (/var/lib/toppcloud/apps/APP/files, CONFIG_FILES) owned by the app's
// user, outside instances and kept across deploys, bound read-write into
// the app's sandbox. Its Tree type also serves writable_root.
package files

import (
	"context"
	"path"

	"github.com/toppcloud/toppcloud/internal/service"
)

// Name is the service's name in app.ini.
const Name = "files"

// Archive is the backup file, as the original named it.
const Archive = "files.tar"

func init() {
	service.Register(service.Info{Name: Name, New: func(n service.Node) service.Service { return New(n) }})
}

// Dir is the app's files directory.
func Dir(app service.App) string { return path.Join(app.DataDir, "files") }

// Files is the service on one node.
type Files struct {
	tree Tree
}

// New returns the files service of node n.
func New(n service.Node) *Files {
	return &Files{tree: Tree{Host: n.Host, Dir: Dir, Mode: 0o750, Archive: Archive, Warn: n.Warnf}}
}

// Name returns "files".
func (*Files) Name() string { return Name }

// Packages returns none: it is a directory.
func (*Files) Packages(service.App) []string { return nil }

// Install does nothing.
func (*Files) Install(context.Context) error { return nil }

func vars(app service.App) map[string]string {
	return map[string]string{service.VarFiles: Dir(app)}
}

// Setup makes the directory (0750, the app's user and group).
func (f *Files) Setup(_ context.Context, app service.App) (map[string]string, error) {
	if err := f.tree.Setup(app); err != nil {
		return nil, err
	}
	return vars(app), nil
}

// Clear empties the directory.
func (f *Files) Clear(_ context.Context, app service.App) (map[string]string, error) {
	if err := f.tree.Empty(app); err != nil {
		return nil, err
	}
	return f.Setup(context.Background(), app)
}

// Backup writes files.tar.
func (f *Files) Backup(ctx context.Context, app service.App, dir string) error {
	return f.tree.Backup(ctx, app, dir)
}

// CheckBackup checks files.tar's entries.
func (f *Files) CheckBackup(ctx context.Context, app service.App, dir string) error {
	return f.tree.CheckBackup(ctx, app, dir)
}

// Restore replaces the directory's contents with files.tar's.
func (f *Files) Restore(ctx context.Context, app service.App, dir string) error {
	return f.tree.Restore(ctx, app, dir)
}

// Usage counts the files and their bytes.
func (f *Files) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	return f.tree.Usage(ctx, app)
}

var (
	_ service.Service       = (*Files)(nil)
	_ service.BackupChecker = (*Files)(nil)
)
