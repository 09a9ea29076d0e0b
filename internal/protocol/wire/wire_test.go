package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestHash_TextRoundTrip(t *testing.T) {
	h := sha256.Sum256([]byte("x"))
	b, err := Hash(h).MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var got Hash
	if err := got.UnmarshalText(b); err != nil || got != Hash(h) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("zz", 32)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q): want error", bad)
		}
	}
}

func fileEntry(path string, content string, exec bool) Entry {
	return Entry{Path: path, Type: EntryFile, Size: int64(len(content)), Hash: sha256.Sum256([]byte(content)), Exec: exec}
}

func sampleManifest() *Manifest {
	return &Manifest{Entries: []Entry{
		fileEntry("app.ini", "[production]\n", false),
		{Path: "bin", Type: EntryDir},
		fileEntry("bin/run", "#!/bin/sh\n", true),
		{Path: "current", Type: EntrySymlink, Target: "static"},
		{Path: "static", Type: EntryDir},
		fileEntry("static/empty", "", false),
		{Path: "static/up", Type: EntrySymlink, Target: "../app.ini"},
		{Path: "static/ü", Type: EntryDir},
	}}
}

func TestManifest_BinaryRoundTripAndDigest(t *testing.T) {
	m := sampleManifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Manifest
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != len(m.Entries) {
		t.Fatalf("entries = %d, want %d", len(got.Entries), len(m.Entries))
	}
	for i := range m.Entries {
		if got.Entries[i] != m.Entries[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got.Entries[i], m.Entries[i])
		}
	}
	d1, _ := m.Digest()
	d2, _ := got.Digest()
	if d1 != d2 {
		t.Fatal("digest changed through a round trip")
	}
	// Any change of content, mode or target changes the digest.
	changes := []func(*Manifest){
		func(m *Manifest) { m.Entries[0].Hash[0] ^= 1 },
		func(m *Manifest) { m.Entries[2].Exec = false },
		func(m *Manifest) { m.Entries[3].Target = "bin" },
		func(m *Manifest) { m.Entries[5].Size = 1 },
		func(m *Manifest) { m.Entries = m.Entries[:len(m.Entries)-1] },
	}
	for i, change := range changes {
		c := sampleManifest()
		change(c)
		if d, _ := c.Digest(); d == d1 {
			t.Errorf("change %d: digest unchanged", i)
		}
	}
	// Every truncation of the encoding is refused.
	for n := range len(b) {
		var m Manifest
		if err := m.UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("truncated at %d: no error", n)
		}
	}
	if err := got.UnmarshalBinary(append(b, 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
}

func TestManifest_WireRoundTrip(t *testing.T) {
	m := sampleManifest()
	var buf bytes.Buffer
	n, err := WriteManifest(&buf, m)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteManifest = %d, %v (buffer %d)", n, err, buf.Len())
	}
	buf.WriteString("after")
	got, err := ReadManifest(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if d1, _ := m.Digest(); func() Hash { d, _ := got.Digest(); return d }() != d1 {
		t.Fatal("digest differs")
	}
	if buf.String() != "after" {
		t.Fatalf("ReadManifest read past its end: left %q", buf.String())
	}
	var wire bytes.Buffer
	WriteManifest(&wire, m)
	w := wire.Bytes()
	for _, n := range []int{0, 3, 8, len(w) - 1} {
		if _, err := ReadManifest(bytes.NewReader(w[:n])); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: err = %v, want unexpected EOF", n, err)
		}
	}
	bad := append([]byte(nil), w...)
	bad[len(bad)-3] ^= 0xff
	if _, err := ReadManifest(bytes.NewReader(bad)); err == nil {
		t.Error("corrupted: no error")
	}
}

func TestManifest_Validate(t *testing.T) {
	dir := func(p string) Entry { return Entry{Path: p, Type: EntryDir} }
	link := func(p, t string) Entry { return Entry{Path: p, Type: EntrySymlink, Target: t} }
	file := func(p string) Entry { return fileEntry(p, "x", false) }
	tests := []struct {
		name    string
		entries []Entry
		want    string // "" for valid
	}{
		{"empty", nil, ""},
		{"sample", sampleManifest().Entries, ""},
		{"unsorted", []Entry{file("b"), file("a")}, "not sorted"},
		{"duplicate", []Entry{file("a"), file("a")}, "not sorted"},
		{"missing parent", []Entry{file("a/b")}, "parent"},
		{"parent is a file", []Entry{file("a"), file("a/b")}, "parent"},
		{"write through symlink", []Entry{link("a", "d"), file("a/b"), dir("d")}, "parent"},
		{"absolute path", []Entry{file("/etc")}, "absolute"},
		{"dotdot", []Entry{file("../x")}, `".." element`},
		{"dot", []Entry{dir("a"), file("a/./b")}, `"." element`},
		{"double slash", []Entry{dir("a"), file("a//b")}, "empty element"},
		{"trailing slash", []Entry{dir("a/")}, "empty element"},
		{"newline", []Entry{file("a\nb")}, "newline"},
		{"nul", []Entry{file("a\x00b")}, "NUL"},
		{"bad utf8", []Entry{file("a\xffb")}, "UTF-8"},
		{"unknown type", []Entry{{Path: "a", Type: 9}}, "unknown type"},
		{"dir with size", []Entry{{Path: "a", Type: EntryDir, Size: 3}}, "directory with"},
		{"negative size", []Entry{{Path: "a", Type: EntryFile, Size: -1}}, "bad file"},
		{"link absolute", []Entry{link("a", "/etc/passwd")}, "absolute"},
		{"link escapes", []Entry{link("a", "../x")}, "out of the directory"},
		{"link escapes deep", []Entry{dir("d"), link("d/a", "../../x")}, "out of the directory"},
		{"link inside via dotdot", []Entry{dir("d"), link("d/a", "../x")}, ""},
		{"link through link", []Entry{dir("d"), link("d/up", ".."), link("x", "d/up/..")}, "out of the directory"},
		{"link via absolute link", []Entry{link("abs", "/"), link("x", "abs/etc")}, "absolute"},
		{"link loop", []Entry{link("a", "b"), link("b", "a")}, "too many levels"},
		{"link dangling inside", []Entry{link("a", "nothere/x")}, ""},
		{"link empty", []Entry{link("a", "")}, "target is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Manifest{Entries: tt.entries}).Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

type blob struct {
	data     []byte
	variants BlobVariants
}

func header(b blob) BlobHeader {
	return BlobHeader{Hash: sha256.Sum256(b.data), Size: int64(len(b.data)), Variants: b.variants}
}

var codecs = []BlobCodec{CodecS2, CodecZstd}

func writeStream(t *testing.T, blobs []blob) []byte {
	t.Helper()
	return writeStreamCodec(t, blobs, 0)
}

func writeStreamCodec(t *testing.T, blobs []blob, codec BlobCodec) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewBlobWriter(&buf, BlobWriterOptions{Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := w.WriteBlob(header(b), bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads a whole stream the way the node does and returns the
// blobs or the first error.
func readAll(r io.Reader, opts BlobReaderOptions) ([]blob, error) {
	br, err := NewBlobReader(r, opts)
	if err != nil {
		return nil, err
	}
	defer br.Close()
	var out []blob
	for {
		hdr, err := br.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		data, err := io.ReadAll(br)
		if err != nil {
			return out, err
		}
		out = append(out, blob{data, hdr.Variants})
	}
}

func testBlobs() []blob {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<20+17)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	return []blob{
		{[]byte("hello\n"), VariantPlain},
		{nil, VariantPlain},
		{random, VariantExec},
		{bytes.Repeat([]byte("text compresses "), 10000), VariantPlain | VariantExec},
	}
}

func TestBlobStream_RoundTrip(t *testing.T) {
	blobs := testBlobs()
	for _, codec := range codecs {
		stream := writeStreamCodec(t, blobs, codec)
		if stream[len(blobStreamMagic)] != byte(codec) {
			t.Fatalf("codec %c: header says %q", codec, stream[len(blobStreamMagic)])
		}
		got, err := readAll(bytes.NewReader(stream), BlobReaderOptions{})
		if err != nil {
			t.Fatalf("codec %c: %v", codec, err)
		}
		if len(got) != len(blobs) {
			t.Fatalf("codec %c: got %d blobs, want %d", codec, len(got), len(blobs))
		}
		for i := range blobs {
			if !bytes.Equal(got[i].data, blobs[i].data) || got[i].variants != blobs[i].variants {
				t.Errorf("codec %c: blob %d differs", codec, i)
			}
		}
		// Empty stream: only the end frame.
		if got, err := readAll(bytes.NewReader(writeStreamCodec(t, nil, codec)), BlobReaderOptions{}); err != nil || len(got) != 0 {
			t.Fatalf("codec %c: empty stream: %v %v", codec, got, err)
		}
	}
	if _, err := NewBlobWriter(io.Discard, BlobWriterOptions{Codec: 'x'}); err == nil {
		t.Fatal("unknown codec accepted by the writer")
	}
}

func TestBlobStream_SkipUnreadBlob(t *testing.T) {
	blobs := testBlobs()
	br, err := NewBlobReader(bytes.NewReader(writeStream(t, blobs)), BlobReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	n := 0
	for {
		_, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(blobs) {
		t.Fatalf("skipped through %d blobs, want %d", n, len(blobs))
	}
}

func TestBlobStream_Truncated(t *testing.T) {
	for _, codec := range codecs {
		stream := writeStreamCodec(t, []blob{{[]byte("one"), VariantPlain}, {bytes.Repeat([]byte("ab"), 3000), VariantPlain}}, codec)
		// Every cut is an error, never a shorter successful stream.
		for n := range len(stream) {
			_, err := readAll(bytes.NewReader(stream[:n]), BlobReaderOptions{})
			if err == nil {
				t.Fatalf("codec %c: cut at %d of %d: no error", codec, n, len(stream))
			}
			if !errors.Is(err, ErrBlobStreamTruncated) && !errors.Is(err, ErrBlobStreamCorrupt) {
				t.Fatalf("codec %c: cut at %d: err = %v, want truncated or corrupt", codec, n, err)
			}
		}
		// A cut inside the compressed data is reported as truncation.
		_, err := readAll(bytes.NewReader(stream[:len(stream)/2]), BlobReaderOptions{})
		if !errors.Is(err, ErrBlobStreamTruncated) {
			t.Fatalf("codec %c: cut in the middle: err = %v, want truncated", codec, err)
		}
	}
}

type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestBlobStream_ConnectionError(t *testing.T) {
	for _, codec := range codecs {
		stream := writeStreamCodec(t, testBlobs(), codec)
		broken := errors.New("connection reset")
		_, err := readAll(&failingReader{r: bytes.NewReader(stream), n: len(stream) / 2, err: broken}, BlobReaderOptions{})
		if !errors.Is(err, broken) || !errors.Is(err, ErrBlobStreamTruncated) {
			t.Fatalf("codec %c: err = %v, want the connection error as truncation", codec, err)
		}
	}
}

func TestBlobStream_CorruptedPayload(t *testing.T) {
	for _, codec := range codecs {
		stream := writeStreamCodec(t, testBlobs(), codec)
		rnd := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 200; i++ {
			bad := append([]byte(nil), stream...)
			pos := len(blobStreamMagic) + rnd.IntN(len(bad)-len(blobStreamMagic))
			bad[pos] ^= byte(1 + rnd.IntN(255))
			got, err := readAll(bytes.NewReader(bad), BlobReaderOptions{})
			if err == nil {
				// The codecs' checksums and our hashes leave no way for
				// a flipped byte to go unnoticed.
				t.Fatalf("codec %c: flip at %d: accepted %d blobs", codec, pos, len(got))
			}
		}
	}
}

// rawStream builds a stream from hand-made frames, to test what a correct
// writer never produces.
func rawStream(t *testing.T, frames []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return append(append(bytes.Clone(blobStreamMagic), byte(CodecZstd)), enc.EncodeAll(frames, nil)...)
}

func blobFrame(variants byte, h Hash, size uint64, data []byte) []byte {
	f := append([]byte{tagBlob, variants}, h[:]...)
	f = binary.AppendUvarint(f, size)
	return append(f, data...)
}

func endFrame(count, total uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint([]byte{tagEnd}, count), total)
}

func TestBlobStream_BadFrames(t *testing.T) {
	data := []byte("content")
	good := Hash(sha256.Sum256(data))
	wrong := Hash(sha256.Sum256([]byte("other")))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		stream []byte
		opts   BlobReaderOptions
		want   error
		blobs  int // accepted before the error
	}{
		{"valid", rawStream(t, cat(blobFrame(1, good, 7, data), endFrame(1, 7))), BlobReaderOptions{}, nil, 1},
		{"hash mismatch", rawStream(t, cat(blobFrame(1, wrong, 7, data), endFrame(1, 7))), BlobReaderOptions{}, ErrBlobHashMismatch, 0},
		{"second blob mismatch", rawStream(t, cat(blobFrame(1, good, 7, data), blobFrame(1, wrong, 7, data), endFrame(2, 14))), BlobReaderOptions{}, ErrBlobHashMismatch, 1},
		{"oversize", rawStream(t, cat(blobFrame(1, good, 7, data), endFrame(1, 7))), BlobReaderOptions{MaxBlobSize: 6}, ErrBlobTooLarge, 0},
		{"huge size", rawStream(t, cat(blobFrame(1, good, 1<<62, data))), BlobReaderOptions{}, ErrBlobTooLarge, 0},
		{"no end frame", rawStream(t, blobFrame(1, good, 7, data)), BlobReaderOptions{}, ErrBlobStreamTruncated, 1},
		{"short blob", rawStream(t, blobFrame(1, good, 8, data)), BlobReaderOptions{}, ErrBlobStreamTruncated, 0},
		{"end count wrong", rawStream(t, cat(blobFrame(1, good, 7, data), endFrame(2, 7))), BlobReaderOptions{}, ErrBlobStreamCorrupt, 1},
		{"end total wrong", rawStream(t, cat(blobFrame(1, good, 7, data), endFrame(1, 8))), BlobReaderOptions{}, ErrBlobStreamCorrupt, 1},
		{"unknown tag", rawStream(t, []byte("x")), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"no variants", rawStream(t, cat(blobFrame(0, good, 7, data), endFrame(1, 7))), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"unknown variant", rawStream(t, cat(blobFrame(4, good, 7, data), endFrame(1, 7))), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"bad magic", []byte("TPCB\x02rest"), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"unknown codec", append(bytes.Clone(blobStreamMagic), "plain text"...), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"not zstd", append(append(bytes.Clone(blobStreamMagic), 'z'), "plain text"...), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"not s2", append(append(bytes.Clone(blobStreamMagic), 's'), "plain text"...), BlobReaderOptions{}, ErrBlobStreamCorrupt, 0},
		{"empty", nil, BlobReaderOptions{}, ErrBlobStreamTruncated, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(bytes.NewReader(tt.stream), tt.opts)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(got) != tt.blobs {
				t.Fatalf("accepted %d blobs, want %d", len(got), tt.blobs)
			}
		})
	}
}

func TestBlobWriter_ContentChanged(t *testing.T) {
	b := blob{[]byte("original"), VariantPlain}
	tests := []struct {
		name    string
		content string
		want    error
	}{
		{"same size other bytes", "ORIGINAL", ErrBlobHashMismatch},
		{"shorter", "orig", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewBlobWriter(&buf, BlobWriterOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteBlob(header(b), strings.NewReader(tt.content)); !errors.Is(err, tt.want) {
				t.Fatalf("WriteBlob err = %v, want %v", err, tt.want)
			}
			if err := w.Close(); err == nil {
				t.Fatal("Close after a failed blob: want error")
			}
			if _, err := readAll(&buf, BlobReaderOptions{}); err == nil {
				t.Fatal("reader accepted the stream of a failed writer")
			}
		})
	}
	// A longer source is read only up to the announced size.
	var buf bytes.Buffer
	w, _ := NewBlobWriter(&buf, BlobWriterOptions{})
	if err := w.WriteBlob(header(b), strings.NewReader("original and more")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got, err := readAll(&buf, BlobReaderOptions{}); err != nil || string(got[0].data) != "original" {
		t.Fatalf("got %v, %v", got, err)
	}
}

// TestBlobStream_Uncompressed: the same reader takes an uncompressed S2
// stream, which carries every byte (a compressed one is much smaller for
// these blobs).
func TestBlobStream_Uncompressed(t *testing.T) {
	blobs := testBlobs()
	var content int
	for _, b := range blobs {
		content += len(b.data)
	}
	sizes := map[bool]int{}
	for _, unc := range []bool{false, true} {
		var buf bytes.Buffer
		w, err := NewBlobWriter(&buf, BlobWriterOptions{Uncompressed: unc})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			if err := w.WriteBlob(header(b), bytes.NewReader(b.data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sizes[unc] = buf.Len()
		got, err := readAll(&buf, BlobReaderOptions{})
		if err != nil || len(got) != len(blobs) {
			t.Fatalf("uncompressed %v: %d blobs, %v", unc, len(got), err)
		}
		for i := range blobs {
			if !bytes.Equal(got[i].data, blobs[i].data) {
				t.Errorf("uncompressed %v: blob %d differs", unc, i)
			}
		}
	}
	if sizes[true] < content || sizes[false] > content*9/10 {
		t.Errorf("stream sizes: %d uncompressed, %d compressed, for %d content bytes", sizes[true], sizes[false], content)
	}
}

// TestManifest_DecodeAmplification: front-coded paths let a tiny
// manifest name huge ones; decoding must stop at MaxManifestText instead
// of allocating them all.
func TestManifest_DecodeAmplification(t *testing.T) {
	const entries = 200_000 // 800 MB of paths were the decoder to make them all
	b := append([]byte(nil), manifestMagic...)
	b = binary.AppendUvarint(b, entries)
	long := strings.Repeat("a", MaxPathLen)
	b = append(b, byte(EntryDir), 0)
	b = binary.AppendUvarint(b, 0)
	b = binary.AppendUvarint(b, uint64(len(long)))
	b = append(b, long...)
	for range entries - 1 {
		// The whole previous path again: 4 bytes on the wire, 4 KiB decoded.
		b = append(b, byte(EntryDir), 0)
		b = binary.AppendUvarint(b, uint64(len(long)))
		b = binary.AppendUvarint(b, 0)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var m Manifest
	err := m.UnmarshalBinary(b)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a %d-byte manifest of %d paths of %d bytes decoded: %v", len(b), entries, len(long), err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*MaxManifestText {
		t.Errorf("decoding a %d-byte manifest allocated %d MiB", len(b), got>>20)
	}
}

// countingReader counts the bytes taken from r.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestBlobStream_ReadsNothingAfterEnd: a held update writes a JSON line
// right after the blob stream, on the same input; the reader must leave
// it there, whatever the codec (a decoder reading ahead would swallow it).
func TestBlobStream_ReadsNothingAfterEnd(t *testing.T) {
	line := []byte(`{"commit":true}` + "\n")
	for _, tc := range []struct {
		name  string
		blobs []blob
		opts  BlobWriterOptions
	}{
		{"s2", testBlobs(), BlobWriterOptions{Codec: CodecS2}},
		{"s2-empty", nil, BlobWriterOptions{Codec: CodecS2}},
		{"s2-uncompressed", testBlobs(), BlobWriterOptions{Codec: CodecS2, Uncompressed: true}},
		{"zstd", testBlobs(), BlobWriterOptions{Codec: CodecZstd}},
		{"zstd-empty", nil, BlobWriterOptions{Codec: CodecZstd}},
		{"zstd-one-thread", testBlobs(), BlobWriterOptions{Codec: CodecZstd, Concurrency: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewBlobWriter(&buf, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range tc.blobs {
				if err := w.WriteBlob(header(b), bytes.NewReader(b.data)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			streamLen := buf.Len()
			buf.Write(line)
			src := &countingReader{r: &buf}
			got, err := readAll(src, BlobReaderOptions{})
			if err != nil || len(got) != len(tc.blobs) {
				t.Fatalf("read %d blobs, want %d: %v", len(got), len(tc.blobs), err)
			}
			// Give a decoder goroutine that reads ahead its chance.
			time.Sleep(10 * time.Millisecond)
			if src.n != streamLen {
				t.Errorf("reader took %d bytes of a %d-byte stream", src.n, streamLen)
			}
			rest, err := io.ReadAll(&buf)
			if err != nil || !bytes.Equal(rest, line) {
				t.Errorf("after the stream: %q, %v; want %q", rest, err, line)
			}
		})
	}
}
