package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/filestat"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// cacheVersion changes when the meaning of a cache file changes; a file
// of another version is ignored. (2: entries are filestat IDs.)
const cacheVersion = 2

// hashCache maps a path to the hash of its content when it had a given
// filestat.ID. An entry whose mtime is within filestat.RacyWindow of the
// moment the Build that wrote it began is not trusted.
type hashCache struct {
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	// Snapshot is when the Build that wrote the cache began, in ns.
	Snapshot int64                 `json:"snapshot"`
	Files    map[string]cacheEntry `json:"files"`
}

type cacheEntry struct {
	filestat.ID
	Hash wire.Hash `json:"hash"`
}

// cachePath names the cache file of an application directory: one file
// per directory, so several applications share a cache directory.
func cachePath(cacheDir, absDir string) string {
	sum := sha256.Sum256([]byte(absDir))
	return filepath.Join(cacheDir, "manifest-"+hex.EncodeToString(sum[:8])+".json")
}

// loadCache returns the cache of absDir, or an empty one when there is
// none or it cannot be used: a broken cache only costs hashing.
func loadCache(cacheDir, absDir string) *hashCache {
	b, err := os.ReadFile(cachePath(cacheDir, absDir))
	if err != nil {
		return &hashCache{}
	}
	var c hashCache
	if json.Unmarshal(b, &c) != nil || c.Version != cacheVersion || c.Dir != absDir {
		return &hashCache{}
	}
	return &c
}

// lookup returns the cached hash of path if the file is unchanged.
func (c *hashCache) lookup(path string, s filestat.ID) (wire.Hash, bool) {
	if c == nil {
		return wire.Hash{}, false
	}
	e, ok := c.Files[path]
	if !ok || e.ID != s {
		return wire.Hash{}, false
	}
	// Only mtime decides raciness, as in git: a write after our stat
	// moves mtime to the current time, which differs from the recorded
	// one unless that was itself within the window. ctime is compared
	// for equality only, so a fresh checkout whose mtimes were set back
	// (tar, rsync -t) is trusted after one build.
	if s.MtimeNs >= c.Snapshot-int64(filestat.RacyWindow) {
		return wire.Hash{}, false
	}
	return e.Hash, true
}

// stale reports whether the cache should be rewritten even though no
// file was hashed: there was none, or it holds files that are gone.
func (c *hashCache) stale(files int) bool {
	return c.Files == nil || len(c.Files) > files
}

// saveCache writes the hashes of m's files atomically.
func saveCache(cacheDir, absDir string, snapshot time.Time, m *wire.Manifest, stats map[string]filestat.ID) error {
	c := hashCache{Version: cacheVersion, Dir: absDir, Snapshot: snapshot.UnixNano(), Files: make(map[string]cacheEntry, len(stats))}
	for _, e := range m.Entries {
		if e.Type == wire.EntryFile {
			c.Files[e.Path] = cacheEntry{ID: stats[e.Path], Hash: e.Hash}
		}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return fmt.Errorf("hash cache: %w", err)
	}
	return atomicfile.WriteFile(cachePath(cacheDir, absDir), b, 0o600)
}
