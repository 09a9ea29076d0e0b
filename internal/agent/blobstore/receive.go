package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

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
	// SyncTime is the time spent in fsync.
	SyncTime time.Duration
}

// Batches bound how many received files wait, open, for their fsync.
const (
	batchFiles = 128
	batchBytes = 64 << 20
)

// Receive reads a blob stream from r and stores every blob whose bytes
// match its hash, as the variants the stream asks for. Durability is
// batched: the files of a batch are written, then each is fsynced (the
// first fsync commits the file system's journal for all of them, the
// others find little left to do), renamed into place, and each directory
// that changed is fsynced once. A blob is therefore never visible under
// its name before its content is on disk.
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
	b := &batch{s: s, st: &st}
	defer b.discard()
	buf := make([]byte, 256<<10)
	fail := func(err error) (ReceiveStats, error) {
		return st, errors.Join(err, b.flush())
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("receive blobs: %w", err))
		}
		hdr, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("receive blobs: %w", err))
		}
		f, err := os.CreateTemp(s.tmpDir(), "recv-*")
		if err != nil {
			return fail(fmt.Errorf("receive blob %s: %w", hdr.Hash, err))
		}
		// Hide *os.File's ReadFrom, which would ignore buf.
		if _, err := io.CopyBuffer(struct{ io.Writer }{f}, br, buf); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fail(fmt.Errorf("receive blob %s: %w", hdr.Hash, err))
		}
		b.items = append(b.items, received{f: f, hdr: hdr})
		b.bytes += hdr.Size
		if len(b.items) >= batchFiles || b.bytes >= batchBytes {
			if err := b.flush(); err != nil {
				return st, err
			}
		}
	}
	return st, b.flush()
}

type received struct {
	f   *os.File
	hdr protocol.BlobHeader
}

// batch is the received files waiting to be made durable and renamed.
type batch struct {
	s     *Store
	st    *ReceiveStats
	items []received
	bytes int64
}

// discard removes the temporary files of a batch that was not flushed.
func (b *batch) discard() {
	for _, it := range b.items {
		it.f.Close()
		os.Remove(it.f.Name())
	}
	b.items, b.bytes = nil, 0
}

// flush makes the batch's files durable and puts them in place.
func (b *batch) flush() error {
	if len(b.items) == 0 {
		return nil
	}
	defer b.discard()
	s := b.s
	var errs []error
	type file struct {
		tmp  string
		hdr  protocol.BlobHeader
		exec bool
	}
	var files []file
	start := time.Now()
	for _, it := range b.items {
		f, hdr := it.f, it.hdr
		first := hdr.Variants&protocol.VariantPlain == 0 // exec only
		err := f.Chmod(modeFor(first))
		if err == nil && !s.opts.NoSync {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("store blob %s: %w", hdr.Hash, err))
			os.Remove(f.Name())
			continue
		}
		files = append(files, file{f.Name(), hdr, first})
		if hdr.Variants == protocol.VariantPlain|protocol.VariantExec {
			tmp, err := s.copyTemp(f.Name(), true)
			if err != nil {
				errs = append(errs, fmt.Errorf("store blob %s: %w", hdr.Hash, err))
				continue
			}
			files = append(files, file{tmp, hdr, true})
		}
	}
	b.items, b.bytes = nil, 0
	syncTime := time.Since(start)

	dirs := map[string]bool{}
	stored := map[protocol.Hash]bool{}
	for _, f := range files {
		dst := s.blobPath(f.hdr.Hash, f.exec)
		present, created, err := s.commit(f.tmp, dst, f.hdr.Size)
		if err != nil {
			os.Remove(f.tmp)
			errs = append(errs, fmt.Errorf("store blob %s: %w", f.hdr.Hash, err))
			continue
		}
		if created {
			dirs[s.objectsDir()] = true
		}
		if present {
			b.st.Present++
		} else {
			dirs[filepath.Dir(dst)] = true
		}
		if !stored[f.hdr.Hash] {
			stored[f.hdr.Hash] = true
			b.st.Blobs++
			b.st.Bytes += f.hdr.Size
		}
	}
	if !s.opts.NoSync {
		start := time.Now()
		for d := range dirs {
			if err := syncDir(d); err != nil {
				errs = append(errs, err)
			}
		}
		syncTime += time.Since(start)
	}
	b.st.SyncTime += syncTime
	return errors.Join(errs...)
}

func modeFor(exec bool) fs.FileMode {
	if exec {
		return execBlobMode
	}
	return blobMode
}

// copyTemp copies a temporary blob into a new temporary file with the
// mode of the other variant (fsynced unless NoSync).
func (s *Store) copyTemp(src string, exec bool) (string, error) {
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
	if err == nil && !s.opts.NoSync {
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

// commit renames tmp to dst unless dst already holds the content (size
// is enough: names are hashes), in which case tmp is removed and the
// existing file, perhaps linked into instances, is kept. createdDir
// reports that dst's fan-out directory was made.
func (s *Store) commit(tmp, dst string, size int64) (present, createdDir bool, err error) {
	dir := filepath.Dir(dst)
	if err := os.Mkdir(dir, dirMode); err == nil {
		createdDir = true
	} else if !errors.Is(err, fs.ErrExist) {
		return false, false, err
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return false, createdDir, nil
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// EINVAL/ENOSYS: the file system cannot refuse to replace; look.
		if fi, serr := os.Lstat(dst); serr == nil && fi.Mode().IsRegular() && fi.Size() == size {
			os.Remove(tmp)
			return true, createdDir, nil
		}
		// Missing, or damaged: replace it.
		return false, createdDir, os.Rename(tmp, dst)
	default:
		return false, createdDir, err
	}
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
