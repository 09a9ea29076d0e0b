package existing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// storeVersion is the version of the servers file this code writes.
// Reading a newer one is refused rather than half understood.
const storeVersion = 1

// storeFile is the record of registered servers, in env.StateDir.
const storeFile = "servers.json"

// Server is one registered server as saved.
type Server struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Port is sshd's port; 0 means 22.
	Port int `json:"port,omitempty"`
	// User is the login user; "" means root.
	User  string    `json:"user,omitempty"`
	Added time.Time `json:"added"`
}

type storeData struct {
	Version int      `json:"version"`
	Servers []Server `json:"servers"`
}

// store reads and writes the servers file. Every change is a
// read-modify-write under an exclusive flock on a lock file beside it, so
// two toppcloud processes cannot lose each other's registrations, and the
// file itself is replaced atomically (temp file, fsync, rename).
type store struct {
	dir string
}

func (s store) path() string { return filepath.Join(s.dir, storeFile) }

// load returns the saved servers; a missing file is an empty list.
func (s store) load() ([]Server, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registered servers: %w", err)
	}
	var d storeData
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("read registered servers from %s: %w (fix or remove the file)", s.path(), err)
	}
	if d.Version > storeVersion {
		return nil, fmt.Errorf("%s was written by a newer toppcloud (version %d, this one reads up to %d)", s.path(), d.Version, storeVersion)
	}
	return d.Servers, nil
}

// update applies change to the saved list under the lock and saves the
// result if change returns nil.
func (s store) update(change func([]Server) ([]Server, error)) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.dir, storeFile+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock registered servers: %w", err)
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock registered servers: %w", err)
	}
	// Closing the file releases the lock too; unlock first anyway.
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	servers, err := s.load()
	if err != nil {
		return err
	}
	servers, err = change(servers)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(storeData{Version: storeVersion, Servers: servers}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode registered servers: %w", err)
	}
	return atomicfile.WriteFile(s.path(), append(b, '\n'), 0o600)
}
