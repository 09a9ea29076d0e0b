// Package backups keeps apps' backups on a node: one directory per
// backup in the layout's Backups directory (root 0700), named as the
// original named them (backup-APP-YYYY-MM-DD, then _001, _002, ...) or as
// the user did (remote:NAME). It makes them with service.Backup, sends
// them as a tar stream and receives uploaded ones (backuparchive), and
// removes them.
package backups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/backuparchive"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
)

// ErrNotFound is a backup name with no backup.
var ErrNotFound = errors.New("no such backup")

// Store is the node's backups.
type Store struct {
	Host *host.Host
	// Dir is the backups' directory (a node path).
	Dir string
}

// Path is the node path of the backup name.
func (s Store) Path(name string) string { return path.Join(s.Dir, name) }

func (s Store) ensure() error {
	_, err := s.Host.EnsureDir(s.Dir, host.Attr{Mode: 0o700})
	return err
}

// NewName returns a free name for a backup of app made now:
// backup-APP-YYYY-MM-DD, else with _001, _002, ... appended.
func (s Store) NewName(app string) (string, error) {
	base := "backup-" + app + "-" + s.Host.Time().UTC().Format("2006-01-02")
	for i := 0; i < 1000; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s_%03d", base, i)
		}
		ok, err := s.Host.Exists(s.Path(name))
		if err != nil {
			return "", err
		}
		if !ok {
			return name, nil
		}
	}
	return "", fmt.Errorf("a thousand backups of %s today: remove some", app)
}

// Make backs up the bound services of app as backup name (a new one when
// name is ""). An existing name is refused: a kept backup is never
// overwritten.
func (s Store) Make(ctx context.Context, app, name string, bound []service.Bound, version string, progress func(string)) (protocol.BackupResult, error) {
	if err := s.ensure(); err != nil {
		return protocol.BackupResult{}, err
	}
	if name == "" {
		var err error
		if name, err = s.NewName(app); err != nil {
			return protocol.BackupResult{}, err
		}
	} else if err := backuparchive.CheckName(name); err != nil {
		return protocol.BackupResult{}, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	} else if ok, err := s.Host.Exists(s.Path(name)); err != nil {
		return protocol.BackupResult{}, err
	} else if ok {
		return protocol.BackupResult{}, &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("remote:%s exists on this node: choose another name, or remove it first", name)}
	}
	m, err := service.Backup(ctx, s.Host, app, bound, s.Path(name), version, progress)
	if err != nil {
		return protocol.BackupResult{}, err
	}
	return Result(name, s.Path(name), m), nil
}

// Result describes a backup for the client.
func Result(name, p string, m *service.Manifest) protocol.BackupResult {
	r := protocol.BackupResult{App: m.App, Name: name, Path: p, Created: m.Created}
	for _, sf := range m.Services {
		part := protocol.BackupPart{Service: sf.Name, Files: len(sf.Files)}
		for _, f := range sf.Files {
			part.Bytes += f.Size
		}
		r.Services = append(r.Services, part)
		r.Bytes += part.Bytes
	}
	return r
}

// Open reads backup name's manifest.
func (s Store) Open(name string) (*service.Manifest, error) {
	if err := backuparchive.CheckName(name); err != nil {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	}
	if ok, err := s.Host.Exists(s.Path(name)); err != nil {
		return nil, err
	} else if !ok {
		return nil, &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("no backup remote:%s on this node", name)}
	}
	return service.ReadManifest(s.Host, s.Path(name))
}

// Send writes backup name to w as a tar stream.
func (s Store) Send(w io.Writer, name string) error {
	if _, err := s.Open(name); err != nil {
		return err
	}
	return backuparchive.WriteDir(w, s.Host.Path(s.Path(name)))
}

// Remove deletes backup name.
func (s Store) Remove(name string) error {
	if err := backuparchive.CheckName(name); err != nil {
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
	}
	real := s.Host.Path(s.Path(name))
	if _, err := os.Lstat(real); errors.Is(err, fs.ErrNotExist) {
		return &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("no backup remote:%s on this node", name)}
	}
	return os.RemoveAll(real)
}

// Receive unpacks an uploaded backup (a tar stream, checked against its
// manifest as it arrives) into a new hidden directory of the store and
// returns its node path; the caller removes it when done. A damaged
// upload leaves nothing behind.
func (s Store) Receive(r io.Reader) (string, *service.Manifest, error) {
	if err := s.ensure(); err != nil {
		return "", nil, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	p := s.Path(".upload-" + hex.EncodeToString(b))
	m, err := backuparchive.ExtractDir(r, s.Host.Path(p))
	if err != nil {
		return "", nil, err
	}
	return p, m, nil
}

// RemoveUploads removes what interrupted uploads left that is older than
// age (clean-node; a restore receiving now is younger).
func (s Store) RemoveUploads(age time.Duration) (int, error) {
	entries, err := os.ReadDir(s.Host.Path(s.Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".upload-") {
			continue
		}
		fi, err := e.Info()
		if err != nil || s.Host.Time().Sub(fi.ModTime()) < age {
			continue
		}
		errs = append(errs, os.RemoveAll(s.Host.Path(s.Path(e.Name()))))
		n++
	}
	return n, errors.Join(errs...)
}
