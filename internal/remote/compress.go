package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encodings of the agent binary on its way to the node
// (protocol.InstallAgentArgs.Encoding and the upload script's $3).
const (
	// EncodingGzip is understood by every agent and by gzip -dc, which
	// every Debian and Ubuntu server has: for nodes without an agent, or
	// with one of protocol 1.
	EncodingGzip = "gzip"
	// EncodingZstd is understood by agents of protocol 2 on: about a
	// fifth fewer bytes than gzip, several times faster on both ends.
	EncodingZstd = "zstd"
)

// frameSize is how much of the binary each compressed frame holds. Each
// frame is a complete gzip member or zstd frame (a stream of them decodes
// as the whole), compressed at its own level: big enough to compress
// nearly as well as one stream (a ~56 MB agent: 13.2 MB as one zstd
// stream at the default level, a few percent more in frames), small
// enough that the level follows the link within a second or two.
const frameSize = 8 << 20

// codec compresses frames at a choice of levels, fastest first.
type codec interface {
	levels() int
	encode(dst, src []byte, level int) ([]byte, error)
}

type zstdCodec struct{ enc [4]*zstd.Encoder }

var zstdLevels = [4]zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression}

func (z *zstdCodec) levels() int { return len(zstdLevels) }

func (z *zstdCodec) encode(dst, src []byte, level int) ([]byte, error) {
	if z.enc[level] == nil {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevels[level]), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(frameSize))
		if err != nil {
			return nil, err
		}
		z.enc[level] = e
	}
	return z.enc[level].EncodeAll(src, dst), nil
}

type gzipCodec struct{}

// gzipLevels: gzip's best level costs about 7x its fastest for 15% fewer
// bytes, which pays only below a few Mbit/s.
var gzipLevels = []int{gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression}

func (gzipCodec) levels() int { return len(gzipLevels) }

func (gzipCodec) encode(dst, src []byte, level int) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	zw, err := gzip.NewWriterLevel(buf, gzipLevels[level])
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(src); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func newCodec(encoding string) (codec, error) {
	switch encoding {
	case EncodingZstd:
		return &zstdCodec{}, nil
	case EncodingGzip:
		return gzipCodec{}, nil
	}
	return nil, fmt.Errorf("unknown agent encoding %q", encoding)
}

// CompressStats say what an adaptive compression did.
type CompressStats struct {
	// In and Out are the bytes before and after compression.
	In, Out int64
	// Levels counts the frames compressed at each level, fastest first.
	Levels []int
}

// adaptiveCompressor compresses a stream in frames, choosing each frame's
// level from what held the previous one back: when the link is waiting
// for the compressor (the queue of compressed frames is empty), the next
// frame is compressed faster; when the compressor waits for the link (the
// queue is full), harder. So a slow link gets the smaller upload and a
// fast one is not held back by compression; the level starts at the
// codec's default. This is zstd's --adapt, which the Go libraries do not
// have, at frame granularity.
type adaptiveCompressor struct {
	codec codec
	level int
	stats CompressStats
	in    atomic.Int64
	out   atomic.Int64
	// idle is set while the sender waits for a frame.
	idle atomic.Bool
}

// compressAdaptive returns a reader of src compressed with encoding, and
// a function that returns the stats once the reader reached EOF.
func compressAdaptive(ctx context.Context, src io.Reader, encoding string) (io.ReadCloser, func() CompressStats, error) {
	c, err := newCodec(encoding)
	if err != nil {
		return nil, nil, err
	}
	a := &adaptiveCompressor{codec: c, level: 1, stats: CompressStats{Levels: make([]int, c.levels())}}
	pr, pw := io.Pipe()
	frames := make(chan []byte, 2)
	ctx, cancel := context.WithCancel(ctx)
	// The compressor.
	go func() {
		defer close(frames)
		buf := make([]byte, frameSize)
		for {
			n, rerr := io.ReadFull(src, buf)
			if n > 0 {
				out, err := a.codec.encode(nil, buf[:n], a.level)
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				a.stats.Levels[a.level]++
				a.in.Add(int64(n))
				waiting := a.idle.Load()
				select {
				case frames <- out:
					if waiting && a.in.Load() > int64(n) {
						// The link had nothing to send (after the first
						// frame, which it always waits for): go faster.
						a.level = max(a.level-1, 0)
					}
				default:
					// The sender is behind: compress harder.
					a.level = min(a.level+1, a.codec.levels()-1)
					select {
					case frames <- out:
					case <-ctx.Done():
						return
					}
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return
			}
			if rerr != nil {
				pw.CloseWithError(rerr)
				return
			}
		}
	}()
	// The sender.
	go func() {
		for {
			a.idle.Store(true)
			f, ok := <-frames
			a.idle.Store(false)
			if !ok {
				break
			}
			if _, err := pw.Write(f); err != nil {
				cancel()
				for range frames {
				}
				return
			}
			a.out.Add(int64(len(f)))
		}
		pw.Close()
	}()
	stats := func() CompressStats {
		s := a.stats
		s.In, s.Out = a.in.Load(), a.out.Load()
		return s
	}
	return &cancelReader{PipeReader: pr, cancel: cancel}, stats, nil
}

// cancelReader stops the compressor when the reader is closed early.
type cancelReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *cancelReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}
