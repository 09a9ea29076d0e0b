// Package wire is the binary wire format of application uploads, shared by
// the client (internal/deploy/manifest) and the node
// (internal/agent/blobstore), beside the JSON-lines protocol that carries
// it:
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
package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

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
	// MaxManifestText bounds the bytes of every path and symlink target
	// together once decoded. Paths are front-coded, so a few bytes on the
	// wire can stand for a path of MaxPathLen bytes; without this bound a
	// 113-byte manifest made the node allocate 402 MiB, and one at
	// MaxManifestEntries about 4 GiB. A million files averaging 128 bytes
	// of path fit.
	MaxManifestText = 128 << 20
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
	text := uint64(0)
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
		// Counted before the path is made: the allocation is what the
		// bound is for.
		text += shared + rest
		if d.err == nil && text > MaxManifestText {
			d.fail(fmt.Sprintf("paths and targets longer than %d bytes in all", MaxManifestText))
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
			if text += n; text > MaxManifestText {
				d.fail(fmt.Sprintf("paths and targets longer than %d bytes in all", MaxManifestText))
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
