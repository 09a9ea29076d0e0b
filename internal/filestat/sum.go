package filestat

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// Hashing a ~70 MB binary costs ~50 ms of CPU and its pages in the cache,
// on every client run and on every agent run (each SSH command of an
// update starts the agent). A sum record lets both skip it: a small file
// saying "the file with this device, inode, size, mtime and ctime has
// this sha256". Any write to the file changes mtime and ctime, a
// replacement has a new inode, and ctime cannot be set from user space,
// so a record that matches the file's stat describes its content. A
// missing, unreadable or stale record only costs hashing.

// sumRecordVersion changes when the meaning of a record changes; a record
// of another version is ignored.
const sumRecordVersion = 1

type sumRecord struct {
	Version int    `json:"version"`
	Path    string `json:"path"`
	ID
	SHA256 string `json:"sha256"`
}

// statID returns f's ID; ok is false where the system does not give an
// inode and a ctime, and records are then never trusted.
func statID(f *os.File) (id ID, ok bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return ID{}, false, err
	}
	id, ok = Of(fi)
	return id, ok, nil
}

// SumFile returns the sha256 (hex) of the file at path. If recordPath
// holds a record matching the file as it is now, the record's sum is
// returned without reading the file; otherwise the file is hashed and,
// when save is set, a record is written to recordPath (atomically; a
// failure to write it is ignored, it only costs hashing next time).
// hashed reports whether the file was read.
func SumFile(path, recordPath string, save bool) (sum string, hashed bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	return sumOpen(f, path, recordPath, save, time.Now())
}

// SumOpenFile is SumFile on a file already open (the running executable,
// through /proc/self/exe); path names it in the record.
func SumOpenFile(f *os.File, path, recordPath string, save bool) (sum string, hashed bool, err error) {
	return sumOpen(f, path, recordPath, save, time.Now())
}

// sumOpen is SumFile on an open file; now decides raciness.
func sumOpen(f *os.File, path, recordPath string, save bool, now time.Time) (sum string, hashed bool, err error) {
	id, ok, err := statID(f)
	if err != nil {
		return "", false, err
	}
	if ok && recordPath != "" {
		if rec, err := readRecord(recordPath); err == nil && rec.Path == path && rec.ID == id {
			return rec.SHA256, false, nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", true, fmt.Errorf("sha256 of %s: %w", path, err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if !save || !ok || recordPath == "" {
		return sum, true, nil
	}
	// Recorded only if the file did not change while it was read and is
	// not racily fresh.
	after, _, err := statID(f)
	ns := now.UnixNano()
	if err == nil && after == id && ns-id.MtimeNs > int64(RacyWindow) && ns-id.CtimeNs > int64(RacyWindow) {
		_ = writeRecord(recordPath, sumRecord{Version: sumRecordVersion, Path: path, ID: id, SHA256: sum})
	}
	return sum, true, nil
}

// RecordSum writes to recordPath that the file at path has the sha256
// sum, for a file whose content the caller knows (it wrote it and
// checked its sum on the way, as install-agent does). The file is opened
// and the record describes that open file, so a file renamed over path
// meanwhile gets no record of a sum that is not its own: inode, when not
// zero, must be the inode the caller wrote.
func RecordSum(path, recordPath, sum string, inode uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	id, ok, err := statID(f)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("record sum: the file system gives no inode and ctime")
	}
	if inode != 0 && id.Ino != inode {
		return fmt.Errorf("record sum: %s was replaced meanwhile", path)
	}
	return writeRecord(recordPath, sumRecord{Version: sumRecordVersion, Path: path, ID: id, SHA256: sum})
}

// Inode returns the inode number in fi (0 where the system has none),
// for RecordSum.
func Inode(fi os.FileInfo) uint64 {
	id, _ := Of(fi)
	return id.Ino
}

func readRecord(p string) (sumRecord, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return sumRecord{}, err
	}
	var r sumRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return sumRecord{}, err
	}
	if r.Version != sumRecordVersion || len(r.SHA256) != 64 {
		return sumRecord{}, errors.New("not a sum record of this version")
	}
	return r, nil
}

// writeRecord replaces the record at p: a temporary file in the same
// directory renamed over it, so a reader sees a whole record or none. It
// is not fsynced: a record lost in a crash only costs hashing, and a
// torn one does not parse.
func writeRecord(p string, r sumRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// Readable by everyone: the agent reads its record as the deploy user.
	return atomicfile.Write(p, append(b, '\n'), atomicfile.Options{Perm: 0o644, NoSync: true, MkdirAll: true})
}

// SidecarPath names the sum record kept beside the executable exe (see
// SumFile): /usr/local/bin/.toppcloud.sha256 for the agent. Whoever
// installs the agent writes it; the agent trusts it while it matches the
// binary.
func SidecarPath(exe string) string {
	dir, base := filepath.Split(exe)
	return filepath.Join(dir, "."+base+".sha256")
}
