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
	// SyncTime is the time spent in fsync.
	SyncTime time.Duration
}

// A batch is made durable when it reaches this many files or bytes: a
// crash loses at most one batch of received work.
const (
	batchFiles = 1024
	batchBytes = 128 << 20
)

// Receive reads a blob stream from r and stores every blob whose bytes
// match its hash, as the variants the stream asks for. Durability is
// batched: each file is written, then one syncfs makes the whole batch
// durable, the files are renamed into
// place, and a second syncfs makes the names durable. A blob is therefore
// never visible under its name before its content is on disk, at the
// cost of two syncfs per batch instead of an fsync per file (see syncFS).
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
		tmp, err := s.receiveOne(br, hdr, buf)
		if err != nil {
			return fail(fmt.Errorf("receive blob %s: %w", hdr.Hash, err))
		}
		b.items = append(b.items, received{tmp: tmp, hdr: hdr})
		b.bytes += hdr.Size
		if len(b.items) >= batchFiles || b.bytes >= batchBytes {
			if err := b.flush(); err != nil {
				return st, err
			}
		}
	}
	return st, b.flush()
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

type received struct {
	tmp string
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
		os.Remove(it.tmp)
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
	for _, it := range b.items {
		first := it.hdr.Variants&protocol.VariantPlain == 0 // exec only
		files = append(files, file{it.tmp, it.hdr, first})
		if it.hdr.Variants == protocol.VariantPlain|protocol.VariantExec {
			tmp, err := s.copyTemp(it.tmp, true, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("store blob %s: %w", it.hdr.Hash, err))
				continue
			}
			files = append(files, file{tmp, it.hdr, true})
		}
	}
	// The temporary files now belong to files.
	b.items, b.bytes = nil, 0
	if !s.opts.NoSync {
		start := time.Now()
		err := syncFS(s.root)
		b.st.SyncTime += time.Since(start)
		if err != nil {
			for _, f := range files {
				os.Remove(f.tmp)
			}
			return errors.Join(append(errs, fmt.Errorf("store blobs: %w", err))...)
		}
	}
	stored := map[protocol.Hash]bool{}
	for _, f := range files {
		present, err := s.commit(f.tmp, s.blobPath(f.hdr.Hash, f.exec), f.hdr.Size)
		if err != nil {
			os.Remove(f.tmp)
			errs = append(errs, fmt.Errorf("store blob %s: %w", f.hdr.Hash, err))
			continue
		}
		if present {
			b.st.Present++
		}
		if !stored[f.hdr.Hash] {
			stored[f.hdr.Hash] = true
			b.st.Blobs++
			b.st.Bytes += f.hdr.Size
		}
	}
	if !s.opts.NoSync {
		start := time.Now()
		if err := syncFS(s.root); err != nil {
			errs = append(errs, fmt.Errorf("store blobs: %w", err))
		}
		b.st.SyncTime += time.Since(start)
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
