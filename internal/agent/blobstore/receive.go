package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// ReceiveStats describe what Receive stored.
type ReceiveStats struct {
	// Blobs and Bytes count the contents received and verified.
	Blobs int
	Bytes int64
	// Present counts received contents the store already had (another
	// upload stored them meanwhile); the stored copy is kept.
	Present int
	// SyncTime is the time spent making the receive's unsynced marker
	// durable (see Sync).
	SyncTime time.Duration
}

// Receive reads a blob stream from r and stores every blob whose bytes
// match its hash, as the variants the stream asks for, each under its
// name as soon as it is verified. It does not wait for the disk: the
// blobs become durable at the next Sync, and until then a marker records
// that they may not be (see Sync), so that after a crash they are checked
// before the store trusts them.
//
// If the stream is cut, damaged or ctx ends, the blobs verified so far are
// kept (a retried upload sends only the rest) and the error says what
// happened; the blob being received is dropped. Temporary files of a
// receive that was killed are removed by a later Receive, by CleanTemp or
// by GC once they are older than TempAge.
func (s *Store) Receive(ctx context.Context, r io.Reader) (ReceiveStats, error) {
	var st ReceiveStats
	// Leftovers of killed receives; failing to remove them does not stop
	// this one.
	s.CleanTemp()
	br, err := protocol.NewBlobReader(r, protocol.BlobReaderOptions{})
	if err != nil {
		return st, fmt.Errorf("receive blobs: %w", err)
	}
	defer br.Close()
	var marker *os.File
	defer func() {
		if marker != nil {
			marker.Close() // releases its lock: this receive is over
		}
	}()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("receive blobs: %w", err)
		}
		hdr, err := br.Next()
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("receive blobs: %w", err)
		}
		// Marked before the first content is written: after a crash, the
		// blobs to check are those modified since the marker.
		if marker == nil && !s.opts.NoSync {
			start := time.Now()
			marker, err = s.markUnsynced()
			st.SyncTime += time.Since(start)
			if err != nil {
				return st, fmt.Errorf("receive blobs: %w", err)
			}
		}
		tmp, err := s.receiveOne(br, hdr, buf)
		if err != nil {
			return st, fmt.Errorf("receive blob %s: %w", hdr.Hash, err)
		}
		if err := s.store(tmp, hdr, &st); err != nil {
			return st, err
		}
	}
}

// receiveOne writes the current blob of br to a temporary file with its
// final mode and returns the file's name; on error nothing is left.
func (s *Store) receiveOne(br io.Reader, hdr protocol.BlobHeader, buf []byte) (string, error) {
	f, err := os.CreateTemp(s.tmpDir(), "recv-*")
	if err != nil {
		return "", err
	}
	// Hide *os.File's ReadFrom, which would ignore buf.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, br, buf)
	if err == nil {
		err = f.Chmod(modeFor(hdr.Variants&protocol.VariantPlain == 0))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// store puts the received temporary file tmp in place as the variants
// hdr asks for: a plain-and-executable content is stored twice, since
// hard links share their inode's mode.
func (s *Store) store(tmp string, hdr protocol.BlobHeader, st *ReceiveStats) error {
	type file struct {
		tmp  string
		exec bool
	}
	files := []file{{tmp, hdr.Variants&protocol.VariantPlain == 0}}
	if hdr.Variants == protocol.VariantPlain|protocol.VariantExec {
		x, err := s.copyTemp(tmp, true, false)
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("store blob %s: %w", hdr.Hash, err)
		}
		files = append(files, file{x, true})
	}
	var errs []error
	stored := false
	for _, f := range files {
		present, err := s.commit(f.tmp, s.blobPath(hdr.Hash, f.exec), hdr.Size)
		if err != nil {
			os.Remove(f.tmp)
			errs = append(errs, fmt.Errorf("store blob %s: %w", hdr.Hash, err))
			continue
		}
		if present {
			st.Present++
		}
		stored = true
	}
	if stored {
		st.Blobs++
		st.Bytes += hdr.Size
	}
	return errors.Join(errs...)
}

func modeFor(exec bool) fs.FileMode {
	if exec {
		return execBlobMode
	}
	return blobMode
}

// copyTemp copies a temporary blob into a new temporary file with the
// mode of the given variant, fsynced if sync.
func (s *Store) copyTemp(src string, exec, sync bool) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(s.tmpDir(), "copy-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(modeFor(exec))
	}
	if err == nil && sync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

// errNoReplaceUnsupported: the file system cannot rename without
// replacing (see renameNoReplace).
var errNoReplaceUnsupported = errors.New("rename without replacing is not supported")

// commit renames tmp to dst unless dst already holds the content (size
// is enough: names are hashes), in which case tmp is removed and the
// existing file, perhaps linked into instances, is kept.
func (s *Store) commit(tmp, dst string, size int64) (present bool, err error) {
	// A mkdir per blob would double the metadata calls of a receive;
	// remember the fan-out directories known to exist.
	dir := filepath.Dir(dst)
	if _, ok := s.dirs.Load(dir); !ok {
		if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		s.dirs.Store(dir, true)
	}
	err = renameNoReplace(tmp, dst)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, fs.ErrExist) && err != errNoReplaceUnsupported {
		return false, err
	}
	if fi, serr := os.Lstat(dst); serr == nil && fi.Mode().IsRegular() && fi.Size() == size {
		os.Remove(tmp)
		return true, nil
	}
	// Missing, or damaged: replace it.
	return false, os.Rename(tmp, dst)
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
