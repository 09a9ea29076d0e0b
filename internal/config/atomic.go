package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed into place, so a reader sees the old file
// or the new one, never a part. Without replace an existing path is an
// error satisfying errors.Is(err, fs.ErrExist).
func writeFileAtomic(path string, data []byte, perm fs.FileMode, replace bool) (err error) {
	dir := filepath.Dir(path)
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists: %w", path, fs.ErrExist)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if !replace {
		// Link fails if path appeared since the check above; rename
		// would silently replace it.
		err := os.Link(tmp.Name(), path)
		switch {
		case os.IsExist(err):
			return fmt.Errorf("%s already exists: %w", path, fs.ErrExist)
		case err != nil:
			// No hard links here (some network and FUSE file systems):
			// fall back to rename after the check above.
			if err := os.Rename(tmp.Name(), path); err != nil {
				return err
			}
		default:
			_ = os.Remove(tmp.Name())
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not all file systems support it
		_ = d.Close()
	}
	return nil
}
