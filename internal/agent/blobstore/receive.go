package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
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
	// Leftovers of killed receives; failing to remove them does not stop
	// this one.
	s.CleanTemp()
	br, err := wire.NewBlobReader(r, wire.BlobReaderOptions{})
	if err != nil {
		return ReceiveStats{}, fmt.Errorf("receive blobs: %w", err)
	}
	defer br.Close()
	w := newWriters(s)
	err = s.receive(ctx, br, w)
	werr := w.wait()
	st := w.stats()
	if err == nil {
		err = werr
	}
	return st, err
}

// receive reads br and hands each blob to w; small ones are read into
// memory here and written by w's goroutines, large ones are written here.
func (s *Store) receive(ctx context.Context, br *wire.BlobReader, w *writers) error {
	var marker *os.File
	defer func() {
		if marker != nil {
			marker.Close() // releases its lock: this receive is over
		}
	}()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("receive blobs: %w", err)
		}
		if w.failed() {
			return nil // wait reports the writer's error
		}
		hdr, err := br.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive blobs: %w", err)
		}
		// Marked before the first content is written: after a crash, the
		// blobs to check are those modified since the marker.
		if marker == nil && !s.opts.NoSync {
			start := time.Now()
			marker, err = s.markUnsynced()
			w.addSyncTime(time.Since(start))
			if err != nil {
				return fmt.Errorf("receive blobs: %w", err)
			}
		}
		if hdr.Size <= smallBlob {
			data, err := w.read(br, hdr.Size)
			if err != nil {
				return fmt.Errorf("receive blob %s: %w", hdr.Hash, err)
			}
			w.put(hdr, data)
			continue
		}
		tmp, err := s.receiveOne(br, hdr, buf)
		if err != nil {
			return fmt.Errorf("receive blob %s: %w", hdr.Hash, err)
		}
		if err := w.store(tmp, hdr); err != nil {
			return err
		}
	}
}

// smallBlob is the largest blob Receive reads into memory and leaves to
// its writer goroutines.
const smallBlob = 1 << 20

// writers write received blobs to the store from a few goroutines.
//
// A receive is bound by one core otherwise: decompressing and hashing the
// stream, then for each blob creating, writing and renaming a file, whose
// kernel time (inode allocation above all) was half the agent's time in a
// 2,000-file upload. Reading the stream stays sequential; the files are
// written beside it. Memory is bounded: at most six buffers per writer
// (queued, being written, kept for reuse) of at most smallBlob each, so
// 24 MB with the most writers.
type writers struct {
	s     *Store
	queue chan blobJob
	free  chan []byte
	wg    sync.WaitGroup

	mu  sync.Mutex
	st  ReceiveStats
	err error
	bad atomic.Bool
}

type blobJob struct {
	hdr  wire.BlobHeader
	data []byte
}

func newWriters(s *Store) *writers {
	// Measured on two cores; the cap bounds memory on big machines.
	n := min(max(runtime.GOMAXPROCS(0), 2), 4)
	w := &writers{s: s, queue: make(chan blobJob, 2*n), free: make(chan []byte, 3*n)}
	for range n {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

func (w *writers) run() {
	defer w.wg.Done()
	for j := range w.queue {
		if !w.bad.Load() {
			w.fail(w.write(j))
		}
		select {
		case w.free <- j.data[:0]:
		default:
		}
	}
}

// read reads the current blob of br, size bytes, into a recycled buffer.
// It reads to the end of the blob, where br checks its hash.
func (w *writers) read(br io.Reader, size int64) ([]byte, error) {
	var b []byte
	select {
	case b = <-w.free:
	default:
	}
	if int64(cap(b)) < size+1 {
		b = make([]byte, 0, max(size+1, 64<<10))
	}
	b = b[:size+1]
	n, err := io.ReadFull(br, b)
	switch {
	case (err == io.ErrUnexpectedEOF || err == io.EOF) && int64(n) == size:
		return b[:n], nil
	case err == nil:
		return nil, errors.New("blob longer than its header says")
	default:
		return nil, err
	}
}

func (w *writers) put(hdr wire.BlobHeader, data []byte) {
	w.queue <- blobJob{hdr, data}
}

// write stores one blob read into memory.
func (w *writers) write(j blobJob) error {
	// A bytes.Reader writes itself out: receiveOne needs no buffer.
	tmp, err := w.s.receiveOne(bytes.NewReader(j.data), j.hdr, nil)
	if err != nil {
		return fmt.Errorf("receive blob %s: %w", j.hdr.Hash, err)
	}
	return w.store(tmp, j.hdr)
}

// store puts a received temporary file in place and counts it.
func (w *writers) store(tmp string, hdr wire.BlobHeader) error {
	var st ReceiveStats
	err := w.s.store(tmp, hdr, &st)
	w.mu.Lock()
	w.st.Blobs += st.Blobs
	w.st.Bytes += st.Bytes
	w.st.Present += st.Present
	w.mu.Unlock()
	return err
}

func (w *writers) fail(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.bad.Store(true)
}

func (w *writers) failed() bool { return w.bad.Load() }

func (w *writers) addSyncTime(d time.Duration) {
	w.mu.Lock()
	w.st.SyncTime += d
	w.mu.Unlock()
}

// wait lets the writers finish what was queued and returns their first
// error.
func (w *writers) wait() error {
	close(w.queue)
	w.wg.Wait()
	return w.err
}

func (w *writers) stats() ReceiveStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

// receiveOne writes the current blob of br to a temporary file with its
// final mode and returns the file's name; on error nothing is left.
func (s *Store) receiveOne(br io.Reader, hdr wire.BlobHeader, buf []byte) (string, error) {
	f, err := os.CreateTemp(s.tmpDir(), "recv-*")
	if err != nil {
		return "", err
	}
	// Hide *os.File's ReadFrom, which would ignore buf.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, br, buf)
	if err == nil {
		err = f.Chmod(modeFor(hdr.Variants&wire.VariantPlain == 0))
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
func (s *Store) store(tmp string, hdr wire.BlobHeader, st *ReceiveStats) error {
	type file struct {
		tmp  string
		exec bool
	}
	files := []file{{tmp, hdr.Variants&wire.VariantPlain == 0}}
	if hdr.Variants == wire.VariantPlain|wire.VariantExec {
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
