package wire

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Blob stream errors. Errors from BlobReader wrap one of these (and the
// underlying cause) so the node can tell a broken connection from bad
// data.
var (
	// ErrBlobStreamTruncated: the stream ended before its end frame.
	ErrBlobStreamTruncated = errors.New("blob stream truncated")
	// ErrBlobStreamCorrupt: not a blob stream, or undecodable data.
	ErrBlobStreamCorrupt = errors.New("blob stream corrupt")
	// ErrBlobHashMismatch: a blob's bytes do not have its hash.
	ErrBlobHashMismatch = errors.New("blob content does not match its hash")
	// ErrBlobTooLarge: a frame announces more than the reader accepts.
	ErrBlobTooLarge = errors.New("blob larger than allowed")
)

// BlobVariants says which copies of a content the node should keep. Hard
// links share their inode's mode, so the same bytes used by an executable
// and by a plain file need two files in the store.
type BlobVariants uint8

// Variants.
const (
	VariantPlain BlobVariants = 1 << iota
	VariantExec
)

// BlobHeader introduces one blob in a stream.
type BlobHeader struct {
	Hash     Hash
	Size     int64
	Variants BlobVariants
}

// blobStreamMagic starts a blob stream, uncompressed; its last byte is
// the version. A codec byte follows.
var blobStreamMagic = []byte("TPCB\x01")

// BlobCodec is the compression of a blob stream, named by one byte after
// the magic.
type BlobCodec byte

// Codecs. Both come from github.com/klauspost/compress. S2 (a faster
// Snappy) is the default: bench/transfer measured it at 3-6x zstd's
// fastest level's speed for about 10% more bytes on a typical application
// (text compresses to ~42% instead of ~31%; images and archives do not
// compress with either), which wins whenever the link is faster than
// about 100 Mbit/s — a local node, a LAN, most data centres. zstd is there
// for slow links.
const (
	CodecS2   BlobCodec = 's'
	CodecZstd BlobCodec = 'z'
)

// Frame tags inside the compressed stream.
const (
	tagBlob = 'b'
	tagEnd  = 'e'
)

// DefaultMaxBlobSize is the largest blob a BlobReader accepts unless told
// otherwise.
const DefaultMaxBlobSize = 8 << 30

// blobWindow is the zstd window and maxS2Block the largest S2 block the
// reader accepts: enough to find repeats across the small files of an
// application, small enough that the node's decoder memory stays a few
// MB.
const (
	blobWindow = 4 << 20
	maxS2Block = 4 << 20
)

// BlobWriterOptions tune a BlobWriter; the zero value is what the client
// uses.
type BlobWriterOptions struct {
	// Codec is the compression; zero means CodecS2.
	Codec BlobCodec
	// Concurrency is the number of goroutines compressing; zero means
	// GOMAXPROCS.
	Concurrency int
	// Uncompressed keeps S2's framing and checksums but stores every
	// block as it is, so the reader needs nothing new (update --compress
	// none). Ignored with zstd.
	Uncompressed bool
}

// BlobWriter writes a blob stream. It is not safe for concurrent use.
type BlobWriter struct {
	enc   io.WriteCloser
	count uint64
	total uint64
	hdr   []byte
	buf   []byte
	h     hash.Hash
	err   error
}

// NewBlobWriter starts a blob stream on w. Close must be called to end it
// (it does not close w).
func NewBlobWriter(w io.Writer, opts BlobWriterOptions) (*BlobWriter, error) {
	if opts.Codec == 0 {
		opts.Codec = CodecS2
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	var enc io.WriteCloser
	switch opts.Codec {
	case CodecS2:
		s2opts := []s2.WriterOption{s2.WriterConcurrency(opts.Concurrency)}
		if opts.Uncompressed {
			s2opts = append(s2opts, s2.WriterUncompressed())
		}
		enc = s2.NewWriter(w, s2opts...)
	case CodecZstd:
		z, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(blobWindow),
			zstd.WithEncoderConcurrency(opts.Concurrency))
		if err != nil {
			return nil, fmt.Errorf("blob stream: %w", err)
		}
		enc = z
	default:
		return nil, fmt.Errorf("blob stream: unknown codec %q", opts.Codec)
	}
	if _, err := w.Write(append(bytes.Clone(blobStreamMagic), byte(opts.Codec))); err != nil {
		enc.Close()
		return nil, fmt.Errorf("blob stream: write header: %w", err)
	}
	return &BlobWriter{enc: enc, buf: make([]byte, 256<<10), h: sha256.New()}, nil
}

// WriteBlob writes one blob: exactly hdr.Size bytes read from r, whose
// sha256 must be hdr.Hash. If r yields other bytes (the file changed since
// the manifest was made), WriteBlob returns an error wrapping
// ErrBlobHashMismatch or io.ErrUnexpectedEOF; the stream is then unusable
// (the reader will refuse it) and the caller should abandon it.
func (w *BlobWriter) WriteBlob(hdr BlobHeader, r io.Reader) error {
	if w.err != nil {
		return w.err
	}
	if hdr.Size < 0 || hdr.Variants == 0 || hdr.Variants&^(VariantPlain|VariantExec) != 0 {
		return fmt.Errorf("blob %s: bad header (size %d, variants %d)", hdr.Hash, hdr.Size, hdr.Variants)
	}
	w.hdr = append(w.hdr[:0], tagBlob, byte(hdr.Variants))
	w.hdr = append(w.hdr, hdr.Hash[:]...)
	w.hdr = binary.AppendUvarint(w.hdr, uint64(hdr.Size))
	if _, err := w.enc.Write(w.hdr); err != nil {
		w.err = fmt.Errorf("blob stream: write: %w", err)
		return w.err
	}
	w.h.Reset()
	left := hdr.Size
	for left > 0 {
		n, err := r.Read(w.buf[:min(int64(len(w.buf)), left)])
		if n > 0 {
			w.h.Write(w.buf[:n])
			if _, werr := w.enc.Write(w.buf[:n]); werr != nil {
				w.err = fmt.Errorf("blob stream: write: %w", werr)
				return w.err
			}
			left -= int64(n)
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			w.err = fmt.Errorf("blob %s: read content: %w (%d of %d bytes)", hdr.Hash, err, hdr.Size-left, hdr.Size)
			return w.err
		}
	}
	if !bytes.Equal(w.h.Sum(nil), hdr.Hash[:]) {
		w.err = fmt.Errorf("blob %s: %w", hdr.Hash, ErrBlobHashMismatch)
		return w.err
	}
	w.count++
	w.total += uint64(hdr.Size)
	return nil
}

// Close writes the end frame and flushes the compressor. After a failed
// WriteBlob it only releases resources and returns that error: a stream
// without an end frame is refused by the reader.
func (w *BlobWriter) Close() error {
	if w.err != nil {
		w.enc.Close()
		return w.err
	}
	end := []byte{tagEnd}
	end = binary.AppendUvarint(end, w.count)
	end = binary.AppendUvarint(end, w.total)
	if _, err := w.enc.Write(end); err != nil {
		w.enc.Close()
		w.err = fmt.Errorf("blob stream: write: %w", err)
		return w.err
	}
	if err := w.enc.Close(); err != nil {
		w.err = fmt.Errorf("blob stream: flush: %w", err)
		return w.err
	}
	w.err = errors.New("blob stream: closed")
	return nil
}

// BlobReaderOptions bound what a BlobReader accepts.
type BlobReaderOptions struct {
	// MaxBlobSize is the largest blob accepted; zero means
	// DefaultMaxBlobSize.
	MaxBlobSize int64
}

// BlobReader reads a blob stream: call Next for each blob, then Read its
// bytes. Read returns an error wrapping ErrBlobHashMismatch instead of
// io.EOF at the end of a blob whose bytes do not match its hash, so a
// consumer that copies a blob to a file sees the error before it keeps
// the file. Memory is bounded by the codec's window or block size and a
// small buffer, whatever the blob sizes.
type BlobReader struct {
	src     *sourceReader
	close   func()
	br      *bufio.Reader
	max     int64
	cur     BlobHeader
	left    int64
	h       hash.Hash
	count   uint64
	total   uint64
	done    bool
	err     error
	inBlob  bool
	checked bool
}

// NewBlobReader reads a blob stream from r. Close releases the
// decompressor. It reads nothing from r past the stream's end, so the
// input can go on with something else (a JSON line) after the stream.
func NewBlobReader(r io.Reader, opts BlobReaderOptions) (*BlobReader, error) {
	if opts.MaxBlobSize <= 0 {
		opts.MaxBlobSize = DefaultMaxBlobSize
	}
	hdr := make([]byte, len(blobStreamMagic)+1)
	if _, err := io.ReadFull(r, hdr); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: no header", ErrBlobStreamTruncated)
		}
		return nil, fmt.Errorf("blob stream: read header: %w", err)
	}
	if !bytes.Equal(hdr[:len(blobStreamMagic)], blobStreamMagic) {
		return nil, fmt.Errorf("%w: bad magic or version %q", ErrBlobStreamCorrupt, hdr)
	}
	src := &sourceReader{r: r}
	br := &BlobReader{src: src, max: opts.MaxBlobSize, h: sha256.New()}
	var dec io.Reader
	switch codec := BlobCodec(hdr[len(hdr)-1]); codec {
	case CodecS2:
		dec = s2.NewReader(src, s2.ReaderMaxBlockSize(maxS2Block))
		br.close = func() {}
	case CodecZstd:
		// One decoder, run in the caller's goroutine: it reads exactly
		// the bytes of each block, and fetches a block only when asked
		// for bytes it has not got, so it stops at the end frame. With
		// more, a goroutine reads the next frame's header ahead and
		// swallows what follows the stream on the same input (a held
		// update's HoldDecision line).
		z, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(blobWindow*4), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("blob stream: %w", err)
		}
		dec, br.close = z, z.Close
	default:
		return nil, fmt.Errorf("%w: unknown codec %q", ErrBlobStreamCorrupt, codec)
	}
	// The buffer asks the decompressor for more only when it is empty,
	// and neither codec reads input for a Read it can answer from what it
	// has decoded, so nothing after the end frame is read.
	br.br = bufio.NewReaderSize(dec, 64<<10)
	return br, nil
}

// readErr classifies an error from the decompressed stream: a failure
// of the connection or a stream cut short is truncation; anything else
// the decompressor reports is corruption.
func (r *BlobReader) readErr(what string, err error) error {
	if r.src.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBlobStreamTruncated, what, r.src.err)
	}
	// S2 reports a cut stream as corrupt input; whatever the codec says,
	// input that ended before the end frame was cut.
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || r.src.eof {
		return fmt.Errorf("%w: %s", ErrBlobStreamTruncated, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrBlobStreamCorrupt, what, err)
}

// sourceReader remembers the first error of the connection other than
// EOF, and whether EOF was reached, which the decompressor would
// otherwise blur into its own errors.
type sourceReader struct {
	r   io.Reader
	err error
	eof bool
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.eof = true
	} else if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// Next advances to the next blob, skipping what is left of the current
// one. At the end frame it returns io.EOF, after checking that the frame's
// blob count and byte total match what was read.
func (r *BlobReader) Next() (BlobHeader, error) {
	if r.err != nil {
		return BlobHeader{}, r.err
	}
	if r.inBlob {
		if _, err := io.Copy(io.Discard, r); err != nil {
			r.err = err
			return BlobHeader{}, err
		}
	}
	r.inBlob = false
	tag, err := r.br.ReadByte()
	if err != nil {
		r.err = r.readErr("before end frame", err)
		return BlobHeader{}, r.err
	}
	switch tag {
	case tagBlob:
	case tagEnd:
		count, err1 := binary.ReadUvarint(r.br)
		total, err2 := binary.ReadUvarint(r.br)
		if err := errors.Join(err1, err2); err != nil {
			r.err = r.readErr("end frame", err)
			return BlobHeader{}, r.err
		}
		if count != r.count || total != r.total {
			r.err = fmt.Errorf("%w: end frame says %d blobs, %d bytes; read %d blobs, %d bytes", ErrBlobStreamCorrupt, count, total, r.count, r.total)
			return BlobHeader{}, r.err
		}
		r.done = true
		r.err = io.EOF
		return BlobHeader{}, io.EOF
	default:
		r.err = fmt.Errorf("%w: unknown frame tag %#x", ErrBlobStreamCorrupt, tag)
		return BlobHeader{}, r.err
	}
	var fixed [1 + sha256.Size]byte
	if _, err := io.ReadFull(r.br, fixed[:]); err != nil {
		r.err = r.readErr("blob header", err)
		return BlobHeader{}, r.err
	}
	size, err := binary.ReadUvarint(r.br)
	if err != nil {
		r.err = r.readErr("blob header", err)
		return BlobHeader{}, r.err
	}
	var hdr BlobHeader
	hdr.Variants = BlobVariants(fixed[0])
	copy(hdr.Hash[:], fixed[1:])
	if hdr.Variants == 0 || hdr.Variants&^(VariantPlain|VariantExec) != 0 {
		r.err = fmt.Errorf("%w: blob %s: bad variants %#x", ErrBlobStreamCorrupt, hdr.Hash, fixed[0])
		return BlobHeader{}, r.err
	}
	if size > uint64(r.max) {
		r.err = fmt.Errorf("blob %s: %w: %d bytes, limit %d", hdr.Hash, ErrBlobTooLarge, size, r.max)
		return BlobHeader{}, r.err
	}
	hdr.Size = int64(size)
	r.cur, r.left, r.inBlob, r.checked = hdr, hdr.Size, true, false
	r.h.Reset()
	return hdr, nil
}

// Read reads the current blob's bytes; see BlobReader.
func (r *BlobReader) Read(p []byte) (int, error) {
	if !r.inBlob {
		if r.err != nil {
			return 0, r.err
		}
		return 0, errors.New("blob stream: Read before Next")
	}
	if r.left == 0 {
		if !r.checked {
			r.checked = true
			var got Hash
			r.h.Sum(got[:0])
			if got != r.cur.Hash {
				r.err = fmt.Errorf("blob %s: %w (got %s)", r.cur.Hash, ErrBlobHashMismatch, got)
				r.inBlob = false
				return 0, r.err
			}
			r.count++
			r.total += uint64(r.cur.Size)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.h.Write(p[:n])
	r.left -= int64(n)
	if err != nil && r.left > 0 {
		r.err = r.readErr(fmt.Sprintf("blob %s", r.cur.Hash), err)
		r.inBlob = false
		return n, r.err
	}
	return n, nil
}

// Close releases the decompressor. It does not close the underlying
// reader.
func (r *BlobReader) Close() error {
	r.close()
	if r.err == nil {
		r.err = errors.New("blob stream: closed")
	}
	return nil
}
