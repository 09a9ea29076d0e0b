package remote

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// TestCompressAdaptive: the frames decode, as one stream, to the input,
// whatever levels they were compressed at; the stats count them.
func TestCompressAdaptive(t *testing.T) {
	// Two and a half frames, half text and half random bytes.
	src := make([]byte, frameSize*5/2)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		if (i/4096)%2 == 0 {
			src[i] = "toppcloud agent "[i%16]
		} else {
			src[i] = byte(r.Uint32())
		}
	}
	for _, enc := range []string{EncodingZstd, EncodingGzip} {
		z, stats, err := compressAdaptive(context.Background(), bytes.NewReader(src), enc)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(z)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		var d io.Reader
		if enc == EncodingZstd {
			zr, err := zstd.NewReader(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			d = zr
		} else {
			zr, err := gzip.NewReader(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			d = zr
		}
		got, err := io.ReadAll(d)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%s: decoded %d bytes (%v), want the %d sent", enc, len(got), err, len(src))
		}
		st := stats()
		frames := 0
		for _, n := range st.Levels {
			frames += n
		}
		if st.In != int64(len(src)) || st.Out != int64(len(out)) || st.Out >= st.In*3/4 || frames != 3 {
			t.Errorf("%s: stats %+v for %d bytes in, %d out", enc, st, len(src), len(out))
		}
	}
	if _, _, err := compressAdaptive(context.Background(), bytes.NewReader(nil), "brotli"); err == nil {
		t.Error("an unknown encoding was accepted")
	}
}

// TestCompressAdaptive_ClosedEarly: closing the reader stops the
// compressor instead of leaving it blocked.
func TestCompressAdaptive_ClosedEarly(t *testing.T) {
	src := bytes.Repeat([]byte("x"), frameSize*4)
	z, _, err := compressAdaptive(context.Background(), bytes.NewReader(src), EncodingZstd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(z, buf); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Read(buf); err == nil {
		t.Error("read after close succeeded")
	}
}
