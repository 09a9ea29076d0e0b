package local

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts an overlayfs at target: lower read-only, upper
// and work the node's own layer.
func mountOverlay(lower, upper, work, target string) error {
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	return unix.Mount("overlay", target, "overlay", 0, opts)
}

// detachMount unmounts dir lazily: it disappears from the tree now and
// is freed when its last user goes.
func detachMount(dir string) error { return unix.Unmount(dir, unix.MNT_DETACH) }

// syncFS writes out the whole file system that holds dir.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
