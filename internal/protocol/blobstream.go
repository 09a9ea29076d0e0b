package protocol

// This file is the wire format of application uploads, shared by the
// client (internal/deploy/manifest) and the node (internal/agent/blobstore):
//
//   - a Manifest lists an application directory: paths, types, the
//     executable bit, sizes, sha256 of files, symlink targets. It is sent
//     on every update, compressed, and its Digest identifies a release.
//   - a blob stream carries file contents the node lacks: a header naming
//     the codec (S2 or zstd), then a compressed stream of frames (hash,
//     size, bytes) and an end frame. The node verifies every blob against
//     its hash before it keeps it.
//
// Both are binary rather than JSON: 2,000 sha256 sums are 64 KB of
// incompressible bytes as binary and twice that as hex, and the manifest
// crosses the wire on every update.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Hash is the sha256 of a file's content.
type Hash [sha256.Size]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText writes the hash in hex (JSON carries hashes as strings).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a hash in hex.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("hash %q: want %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// EntryType is the kind of a manifest entry.
type EntryType uint8

// Entry types. Anything else (sockets, devices, fifos) is refused when
// the manifest is built.
const (
	EntryDir     EntryType = 1
	EntryFile    EntryType = 2
	EntrySymlink EntryType = 3
)

// String returns the type as the manifest documentation names it.
func (t EntryType) String() string {
	switch t {
	case EntryDir:
		return "dir"
	case EntryFile:
		return "file"
	case EntrySymlink:
		return "symlink"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is one path of an application directory.
type Entry struct {
	// Path is relative to the application directory, with "/" between
	// elements; see ValidPath.
	Path string
	Type EntryType
	// Exec is set for files with any executable bit. It is the only mode
	// bit kept: the node decides ownership and the rest of the mode.
	Exec bool
	// Size and Hash describe a file's content.
	Size int64
	Hash Hash
	// Target is a symlink's target, relative and inside the directory.
	Target string
}

// Manifest lists an application directory, sorted by Path (byte order,
// so a directory always comes before what it contains). The directory
// itself is not an entry.
type Manifest struct {
	Entries []Entry
}

// Limits that keep a hostile or broken manifest from using unbounded
// memory on the node.
const (
	MaxManifestEntries = 1 << 20
	MaxPathLen         = 4096
	// maxManifestWire bounds the compressed manifest; maxManifestRaw the
	// decoded one.
	maxManifestWire = 64 << 20
	maxManifestRaw  = 512 << 20
)

// ValidPath reports why p cannot be a manifest path, or nil: it must be
// relative, use "/" between non-empty elements other than "." and "..",
// be valid UTF-8 and contain no NUL, newline or carriage return (names
// with those break logs, line-based tools and people).
func ValidPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path longer than %d bytes", MaxPathLen)
	case !utf8.ValidString(p):
		return errors.New("path is not valid UTF-8")
	case strings.ContainsAny(p, "\x00\n\r"):
		return errors.New("path contains NUL, newline or carriage return")
	case p[0] == '/':
		return errors.New("path is absolute")
	}
	for elem := range strings.SplitSeq(p, "/") {
		switch elem {
		case "":
			return errors.New("path has an empty element")
		case ".", "..":
			return fmt.Errorf("path has a %q element", elem)
		}
	}
	return nil
}

// parentOf returns the directory part of a manifest path ("" at the top).
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// CheckSymlink reports whether the symlink at linkPath (a manifest path)
// with the given target stays inside the directory: the target must be
// relative, and resolving it must never leave the directory, also through
// other symlinks. readlink(p) returns the target of the symlink at
// manifest path p, or ok=false when p is not a symlink (or does not
// exist: the rest is then resolved lexically, which is where the link
// would point if it appeared).
func CheckSymlink(linkPath, target string, readlink func(p string) (target string, ok bool)) error {
	if target == "" {
		return errors.New("target is empty")
	}
	if len(target) > MaxPathLen || strings.ContainsAny(target, "\x00\n\r") || !utf8.ValidString(target) {
		return errors.New("target is too long, not UTF-8, or contains NUL or a line break")
	}
	if target[0] == '/' {
		return errors.New("target is absolute")
	}
	var stack []string
	if dir := parentOf(linkPath); dir != "" {
		stack = strings.Split(dir, "/")
	}
	queue := strings.Split(target, "/")
	// Linux gives up after 40 links in one lookup (ELOOP); so do we.
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return errors.New("target leads out of the directory")
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		t, isLink := readlink(strings.Join(stack, "/"))
		if !isLink {
			continue
		}
		if hops++; hops > 40 {
			return errors.New("too many levels of symbolic links")
		}
		if t == "" || t[0] == '/' {
			return fmt.Errorf("target goes through %s, which points to %q outside the directory", strings.Join(stack, "/"), t)
		}
		stack = stack[:len(stack)-1]
		queue = append(strings.Split(t, "/"), queue...)
	}
	return nil
}

// Validate checks what the node relies on before it writes anything:
// sorted unique valid paths, every parent present as a directory (so
// nothing is ever written through a symlink), symlinks that stay inside,
// sane sizes.
func (m *Manifest) Validate() error {
	if len(m.Entries) > MaxManifestEntries {
		return fmt.Errorf("manifest: %d entries, more than %d", len(m.Entries), MaxManifestEntries)
	}
	byPath := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := ValidPath(e.Path); err != nil {
			return fmt.Errorf("manifest entry %q: %w", e.Path, err)
		}
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return fmt.Errorf("manifest entry %q: not sorted or repeated", e.Path)
		}
		if dir := parentOf(e.Path); dir != "" {
			if p := byPath[dir]; p == nil || p.Type != EntryDir {
				return fmt.Errorf("manifest entry %q: parent %q is not a directory of the manifest", e.Path, dir)
			}
		}
		switch e.Type {
		case EntryDir:
			if e.Exec || e.Size != 0 || e.Target != "" || e.Hash != (Hash{}) {
				return fmt.Errorf("manifest entry %q: directory with file or link fields", e.Path)
			}
		case EntryFile:
			if e.Size < 0 || e.Target != "" {
				return fmt.Errorf("manifest entry %q: bad file fields", e.Path)
			}
		case EntrySymlink:
			if e.Exec || e.Size != 0 || e.Hash != (Hash{}) {
				return fmt.Errorf("manifest entry %q: symlink with file fields", e.Path)
			}
		default:
			return fmt.Errorf("manifest entry %q: unknown type %d", e.Path, e.Type)
		}
		byPath[e.Path] = e
	}
	readlink := func(p string) (string, bool) {
		if e := byPath[p]; e != nil && e.Type == EntrySymlink {
			return e.Target, true
		}
		return "", false
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != EntrySymlink {
			continue
		}
		if err := CheckSymlink(e.Path, e.Target, readlink); err != nil {
			return fmt.Errorf("manifest entry %q (symlink to %q): %w", e.Path, e.Target, err)
		}
	}
	return nil
}

// FileBytes returns the number of files and their total size.
func (m *Manifest) FileBytes() (files int, bytes int64) {
	for _, e := range m.Entries {
		if e.Type == EntryFile {
			files++
			bytes += e.Size
		}
	}
	return files, bytes
}

// manifestMagic starts the canonical encoding; the last byte is its
// version.
var manifestMagic = []byte("TPCM\x01")

// MarshalBinary returns the canonical encoding of the manifest, which
// Digest hashes. Paths are front-coded (length shared with the previous
// path, then the rest), which makes 2,000 entries of a typical tree a
// third smaller before compression.
func (m *Manifest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+len(m.Entries)*64)
	b = append(b, manifestMagic...)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	prev := ""
	for _, e := range m.Entries {
		if e.Type < EntryDir || e.Type > EntrySymlink {
			return nil, fmt.Errorf("manifest entry %q: unknown type %d", e.Path, e.Type)
		}
		var flags byte
		if e.Exec {
			flags |= 1
		}
		b = append(b, byte(e.Type), flags)
		n := commonPrefix(prev, e.Path)
		b = binary.AppendUvarint(b, uint64(n))
		b = binary.AppendUvarint(b, uint64(len(e.Path)-n))
		b = append(b, e.Path[n:]...)
		switch e.Type {
		case EntryFile:
			if e.Size < 0 {
				return nil, fmt.Errorf("manifest entry %q: negative size", e.Path)
			}
			b = binary.AppendUvarint(b, uint64(e.Size))
			b = append(b, e.Hash[:]...)
		case EntrySymlink:
			b = binary.AppendUvarint(b, uint64(len(e.Target)))
			b = append(b, e.Target...)
		}
		prev = e.Path
	}
	return b, nil
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// UnmarshalBinary decodes the canonical encoding. It checks the encoding,
// not the content: call Validate.
func (m *Manifest) UnmarshalBinary(b []byte) error {
	if !bytes.HasPrefix(b, manifestMagic) {
		return errors.New("manifest: not a toppcloud manifest (bad magic or version)")
	}
	d := decoder{b: b[len(manifestMagic):]}
	count := d.uvarint()
	if d.err == nil && count > MaxManifestEntries {
		return fmt.Errorf("manifest: %d entries, more than %d", count, MaxManifestEntries)
	}
	// Each entry takes at least 4 bytes; do not trust count for the
	// allocation beyond what the input could hold.
	entries := make([]Entry, 0, min(count, uint64(len(d.b)/4)))
	prev := ""
	for i := uint64(0); i < count && d.err == nil; i++ {
		var e Entry
		e.Type = EntryType(d.byte())
		flags := d.byte()
		if flags&^1 != 0 {
			d.fail("unknown flags")
		}
		e.Exec = flags&1 != 0
		shared := d.uvarint()
		rest := d.uvarint()
		if d.err == nil && (shared > uint64(len(prev)) || shared+rest > MaxPathLen) {
			d.fail("bad path length")
		}
		if d.err != nil {
			break
		}
		e.Path = prev[:shared] + string(d.bytes(rest))
		switch e.Type {
		case EntryFile:
			size := d.uvarint()
			if size > 1<<62 {
				d.fail("bad size")
			}
			e.Size = int64(size)
			copy(e.Hash[:], d.bytes(uint64(len(e.Hash))))
		case EntrySymlink:
			n := d.uvarint()
			if n > MaxPathLen {
				d.fail("bad target length")
			}
			e.Target = string(d.bytes(n))
		case EntryDir:
		default:
			d.fail(fmt.Sprintf("unknown entry type %d", e.Type))
		}
		entries = append(entries, e)
		prev = e.Path
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("manifest: %w", d.err)
	}
	m.Entries = entries
	return nil
}

// decoder reads the canonical encoding, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// Digest is the sha256 of the canonical encoding: two manifests have the
// same digest exactly when they describe the same tree.
func (m *Manifest) Digest() (Hash, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(b), nil
}

// manifestWireMagic starts a manifest on the wire; a big-endian uint32
// length of the zstd frame that follows makes it self-delimiting, so it
// can share a stream with what comes after.
var manifestWireMagic = []byte("TPCZ")

// WriteManifest writes m to w compressed, and returns the bytes written.
func WriteManifest(w io.Writer, m *Manifest) (int64, error) {
	raw, err := m.MarshalBinary()
	if err != nil {
		return 0, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, fmt.Errorf("manifest: %w", err)
	}
	z := enc.EncodeAll(raw, nil)
	enc.Close()
	if len(z) > maxManifestWire {
		return 0, fmt.Errorf("manifest: %d bytes compressed, more than %d", len(z), maxManifestWire)
	}
	buf := make([]byte, 0, len(manifestWireMagic)+4+len(z))
	buf = append(buf, manifestWireMagic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(z)))
	buf = append(buf, z...)
	n, err := w.Write(buf)
	if err != nil {
		return int64(n), fmt.Errorf("manifest: write: %w", err)
	}
	return int64(n), nil
}

// ReadManifest reads a manifest written by WriteManifest, reading no
// further than its end, and validates it.
func ReadManifest(r io.Reader) (*Manifest, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("manifest: read header: %w", noEOF(err))
	}
	if !bytes.Equal(hdr[:4], manifestWireMagic) {
		return nil, errors.New("manifest: not a toppcloud manifest (bad magic)")
	}
	n := binary.BigEndian.Uint32(hdr[4:])
	if n > maxManifestWire {
		return nil, fmt.Errorf("manifest: %d bytes compressed, more than %d", n, maxManifestWire)
	}
	// Read rather than allocate what the header claims: memory grows
	// only with bytes that actually arrive.
	z, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("manifest: read: %w", err)
	}
	if len(z) < int(n) {
		return nil, fmt.Errorf("manifest: read: %w", io.ErrUnexpectedEOF)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxManifestRaw))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest: decompress: %w", err)
	}
	m := new(Manifest)
	if err := m.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// noEOF turns a clean EOF where data was expected into ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

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
// decompressor.
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
		z, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(blobWindow*4), zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("blob stream: %w", err)
		}
		dec, br.close = z, z.Close
	default:
		return nil, fmt.Errorf("%w: unknown codec %q", ErrBlobStreamCorrupt, codec)
	}
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
