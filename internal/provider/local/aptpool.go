package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The shared apt package pool (CACHE/apt-cache) saves downloading the same
// packages for every node: setup-node installs the same Caddy, PHP and
// Python packages each time.
//
// Bind-mounting one directory onto every node's /var/cache/apt/archives
// would be simpler but does not work: apt holds a lock on
// archives/lock for its whole run and fails at once (it does not wait)
// when another apt has it, so two nodes installing packages at the same
// time would fail. Instead each node gets its own archives directory,
// pre-filled with hard links to the pool when it is created (no copying,
// no disk), and the .deb files a node downloaded are hard-linked back into
// the pool when it is destroyed. apt checks every file it reuses against
// the archive's hashes, so a bad file in the pool costs a download, never a
// wrong package. The image's apt configuration keeps downloaded packages.
//
// Hard links need the pool and the node directories on one file system;
// where they are not, nothing is shared.

const aptArchivesRel = "var/cache/apt/archives"

func (d *Driver) aptPoolDir() string { return filepath.Join(d.cache, "apt-cache") }

// seedAptCache links the pool's packages into a node's (not yet mounted)
// upper layer.
func seedAptCache(pool, upper string) {
	entries, err := os.ReadDir(pool)
	if err != nil {
		return
	}
	dst := filepath.Join(upper, aptArchivesRel)
	if err := os.MkdirAll(filepath.Join(dst, "partial"), 0o755); err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".deb") {
			continue
		}
		err := os.Link(filepath.Join(pool, e.Name()), filepath.Join(dst, e.Name()))
		if errors.Is(err, unix.EXDEV) {
			return
		}
	}
}

// harvestAptCache links the .deb files in dir that the pool lacks into the
// pool. Only regular files count: overlayfs whiteouts (a package the node
// deleted) are character devices.
func harvestAptCache(dir, pool string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".deb") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(pool, e.Name()))
		if errors.Is(err, unix.EXDEV) {
			return
		}
	}
}
