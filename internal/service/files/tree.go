package files

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/service"
)

// Tree is a per-app directory kept by a service: made for the app's
// user, kept across deploys, backed up as one tar archive and restored in
// place (running instances have it bound into their sandbox, so the
// directory itself must stay; only what is in it changes).
//
// Why archive/tar in the agent rather than GNU tar: the agent reads and
// writes app-controlled trees as root, and os.Root confines every open to
// the tree, so a symlink the app plants (or swaps in while a backup runs)
// is stored as a symlink and never followed out of it.
type Tree struct {
	Host *host.Host
	// Dir is the directory (a node path) for app.
	Dir func(app service.App) string
	// Mode is the directory's mode.
	Mode fs.FileMode
	// Group owns the directory and what is restored into it; "" means
	// the app's own group.
	Group string
	// Archive is the backup's file name.
	Archive string
	// Warn hears what a backup leaves out.
	Warn func(format string, args ...any)
}

func (t Tree) attr(app service.App) host.Attr {
	g := t.Group
	if g == "" {
		g = app.User
	}
	return host.Attr{Mode: t.Mode, User: app.User, Group: g}
}

// Setup makes the directory, or corrects its owner and mode.
func (t Tree) Setup(app service.App) error {
	_, err := t.Host.EnsureDir(t.Dir(app), t.attr(app))
	return err
}

// Empty removes everything in the directory (not the directory).
func (t Tree) Empty(app service.App) error {
	real := t.Host.Path(t.Dir(app))
	entries, err := os.ReadDir(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		// RemoveAll never follows a symlink out of the tree.
		errs = append(errs, os.RemoveAll(filepath.Join(real, e.Name())))
	}
	return errors.Join(errs...)
}

// Backup writes the tree into dir/Archive.
func (t Tree) Backup(ctx context.Context, app service.App, dir string) error {
	out, err := os.OpenFile(t.Host.Path(path.Join(dir, t.Archive)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	tw := tar.NewWriter(bw)
	err = t.writeTar(ctx, app, tw)
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t Tree) writeTar(ctx context.Context, app service.App, tw *tar.Writer) error {
	root, err := os.OpenRoot(t.Host.Path(t.Dir(app)))
	if errors.Is(err, fs.ErrNotExist) {
		// Never set up: an empty archive.
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		fi, err := root.Lstat(name)
		if err != nil {
			return err
		}
		var link string
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = root.Readlink(name); err != nil {
				return err
			}
		case fi.IsDir(), fi.Mode().IsRegular():
		default:
			if t.Warn != nil {
				t.Warn("%s: %s is not a file, directory or symlink (%s); left out of the backup", t.Archive, name, fi.Mode().Type())
			}
			return nil
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		// Owners are the app's by definition; names and numbers of this
		// node mean nothing on another.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if !fi.Mode().IsRegular() {
			return tw.WriteHeader(hdr)
		}
		// Opened through the root: a file swapped for a symlink since
		// Lstat is refused if it leads out, and its size is what was
		// read, not what Lstat said.
		f, err := root.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		ffi, err := f.Stat()
		if err != nil {
			return err
		}
		if !ffi.Mode().IsRegular() {
			return fmt.Errorf("%s changed while it was read", name)
		}
		hdr.Size = ffi.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if n != hdr.Size {
			return fmt.Errorf("%s shrank while it was read; back up again", name)
		}
		return nil
	})
}

// safeName reports whether a tar entry name is a plain relative path.
func safeName(name string) (string, bool) {
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." || strings.HasPrefix(name, "/") || path.Clean(name) != name {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	return name, true
}

// CheckBackup reads the archive's headers: it is a tar archive whose
// entries are all plain relative files, directories and symlinks.
func (t Tree) CheckBackup(ctx context.Context, app service.App, dir string) error {
	f, err := os.Open(t.Host.Path(path.Join(dir, t.Archive)))
	if err != nil {
		return err
	}
	defer f.Close()
	// A seekable file: tar skips contents without reading them.
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.Archive, err)
		}
		if err := checkHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", t.Archive, err)
		}
	}
}

func checkHeader(hdr *tar.Header) error {
	if _, ok := safeName(hdr.Name); !ok {
		return fmt.Errorf("entry %q is not a plain relative path", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		return nil
	}
	return fmt.Errorf("entry %q: type %q is not a file, directory or symlink", hdr.Name, hdr.Typeflag)
}

// Restore replaces what is in the directory with the archive's contents:
// first everything is unpacked into a root-only staging directory beside
// it (a damaged archive stops here, with the live files untouched), then
// the live directory is emptied and the staged entries are moved in.
func (t Tree) Restore(ctx context.Context, app service.App, dir string) error {
	if err := t.Setup(app); err != nil {
		return err
	}
	live := t.Dir(app)
	staging := path.Join(path.Dir(live), "."+path.Base(live)+".restore")
	if err := os.RemoveAll(t.Host.Path(staging)); err != nil {
		return err
	}
	if _, err := t.Host.EnsureDir(staging, host.Attr{Mode: 0o700}); err != nil {
		return err
	}
	defer os.RemoveAll(t.Host.Path(staging))
	if err := t.unpack(ctx, app, path.Join(dir, t.Archive), staging); err != nil {
		return err
	}
	if err := t.Empty(app); err != nil {
		return fmt.Errorf("empty %s: %w", live, err)
	}
	entries, err := os.ReadDir(t.Host.Path(staging))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(t.Host.Path(path.Join(staging, e.Name())), t.Host.Path(path.Join(live, e.Name()))); err != nil {
			return err
		}
	}
	return nil
}

// maxMode keeps permission bits only: no setuid, setgid or sticky from an
// archive.
const maxMode = fs.ModePerm

func (t Tree) unpack(ctx context.Context, app service.App, archive, staging string) error {
	f, err := os.Open(t.Host.Path(archive))
	if err != nil {
		return err
	}
	defer f.Close()
	stagingReal := t.Host.Path(staging)
	root, err := os.OpenRoot(stagingReal)
	if err != nil {
		return err
	}
	defer root.Close()
	u, ok, err := t.Host.LookupUser(app.User)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no user %s", app.User)
	}
	gid := u.GID
	if t.Group != "" {
		g, ok, err := t.Host.LookupGroup(t.Group)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no group %s", t.Group)
		}
		gid = g.GID
	}
	type dirTime struct {
		name string
		mod  time.Time
	}
	var dirs []dirTime
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.Archive, err)
		}
		if err := checkHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", t.Archive, err)
		}
		name, _ := safeName(hdr.Name)
		if dir := path.Dir(name); dir != "." {
			// Parents first, as tar writes them; an archive that skips
			// them still unpacks.
			if err := root.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("%s: %s: %w", t.Archive, name, err)
			}
		}
		mode := fs.FileMode(hdr.Mode) & maxMode
		if hdr.Typeflag == tar.TypeDir {
			// As the top directory: a setgid writable root keeps new
			// files readable by Caddy in every subdirectory.
			mode |= t.Mode & fs.ModeSetgid
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %s: %w", t.Archive, name, err)
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("%s: %s: %w", t.Archive, name, err)
			}
		case tar.TypeReg:
			out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", t.Archive, name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %s: %w", t.Archive, name, err)
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
		}
		real := filepath.Join(stagingReal, filepath.FromSlash(name))
		if err := t.Host.ChownPath(real, u.UID, gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(real, mode); err != nil {
				return err
			}
		}
	}
	// Directories' times last: writing into them changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chtimes(dirs[i].name, dirs[i].mod, dirs[i].mod); err != nil {
			return err
		}
	}
	return nil
}

// Usage counts the files in the tree and their bytes.
func (t Tree) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	u := service.Usage{Unit: "files"}
	err := filepath.WalkDir(t.Host.Path(t.Dir(app)), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return nil // gone since the listing
			}
			u.Items++
			u.Bytes += fi.Size()
		}
		return nil
	})
	return u, err
}
