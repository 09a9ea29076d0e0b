package manifest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// Plan lists the blobs to send: each content the node lacks, once, with
// the variants (plain, executable) the manifest uses it as.
//
// The flow of an update, all in one agent request over SSH
// (protocol.OpUpdate, which internal/deploy.Update sends):
//
//	m, _, err := manifest.Build(ctx, appDir, manifest.Options{CacheDir: cache})
//	// 1. request line, then wire.WriteManifest(stdin, m); the agent
//	//    reads it with wire.ReadManifest, keeps it with
//	//    store.PutManifest, and replies with what store.Missing(m)
//	//    names (protocol.UpdateNeed).
//	plan, err := manifest.NewPlan(m, missing)
//	// 2. only if plan.Blobs is not empty: plan.Send(ctx, stdin, appDir,
//	//    onProgress) on the same stdin; the agent runs store.Receive
//	//    on the rest of it.
//	// 3. the agent loads the kept manifest with store.Manifest, takes
//	//    instance.NextName and runs store.Assemble.
type Plan struct {
	Blobs []PlanBlob
	// Bytes is the total size of the blobs, before compression.
	Bytes int64
	// Stream sets the blob stream's compression; the zero value is S2.
	Stream wire.BlobWriterOptions
}

// PlanBlob is one content to send and a file that has it.
type PlanBlob struct {
	wire.BlobHeader
	// Path is the manifest path of a file with this content.
	Path string
	// Dir, if set, is the directory Path is in, instead of the one Send
	// is given (the --config directory's blobs, in the app's stream).
	Dir string
}

// Append adds q's blobs, whose files are in dir, to p.
func (p *Plan) Append(q *Plan, dir string) {
	for _, b := range q.Blobs {
		b.Dir = dir
		p.Blobs = append(p.Blobs, b)
	}
	p.Bytes += q.Bytes
}

// NewPlan returns what to send for m when the node lacks missing (as
// answered by blobstore.Store.Missing). A hash that is not a file of m
// is an error: the node is answering about another manifest.
func NewPlan(m *wire.Manifest, missing []wire.Hash) (*Plan, error) {
	want := make(map[wire.Hash]bool, len(missing))
	for _, h := range missing {
		want[h] = true
	}
	index := map[wire.Hash]int{}
	p := &Plan{}
	for _, e := range m.Entries {
		if e.Type != wire.EntryFile || !want[e.Hash] {
			continue
		}
		v := wire.VariantPlain
		if e.Exec {
			v = wire.VariantExec
		}
		if i, ok := index[e.Hash]; ok {
			p.Blobs[i].Variants |= v
			continue
		}
		index[e.Hash] = len(p.Blobs)
		p.Blobs = append(p.Blobs, PlanBlob{BlobHeader: wire.BlobHeader{Hash: e.Hash, Size: e.Size, Variants: v}, Path: e.Path})
		p.Bytes += e.Size
	}
	if len(index) != len(want) {
		for _, h := range missing {
			if _, ok := index[h]; !ok {
				return nil, fmt.Errorf("node asks for blob %s, which is not a file of this manifest", h)
			}
		}
	}
	return p, nil
}

// Progress reports an upload under way.
type Progress struct {
	// Blobs and Bytes are what was sent so far (Bytes before
	// compression), out of TotalBlobs and TotalBytes.
	Blobs, TotalBlobs int
	Bytes, TotalBytes int64
	// WireBytes is what was written to the connection (compressed).
	WireBytes int64
	Elapsed   time.Duration
	// Done is set on the last report.
	Done bool
}

// Rate is the upload rate in content bytes per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Bytes) / p.Elapsed.Seconds()
}

// progressEvery spaces progress reports, so a live bar is smooth without
// costing anything.
const progressEvery = 100 * time.Millisecond

// Send writes the plan's blobs as a blob stream to w (the SSH session's
// stdin after the request line), reading them from the files under dir.
// progress, if not nil, is called at most every 100 ms and once at the
// end with Done set. A file that changed since the manifest was built
// makes Send fail (run the update again); so does ctx ending. After a
// failure the stream has no end frame, which the node treats as an
// interrupted upload: it keeps the blobs it verified, so the next attempt
// sends only the rest. Send does not close w.
func (p *Plan) Send(ctx context.Context, w io.Writer, dir string, progress func(Progress)) (Progress, error) {
	cw := &countingWriter{w: w}
	pr := Progress{TotalBlobs: len(p.Blobs), TotalBytes: p.Bytes}
	start := time.Now()
	last := start
	report := func(force bool) {
		if progress == nil {
			return
		}
		now := time.Now()
		if !force && now.Sub(last) < progressEvery {
			return
		}
		last = now
		pr.WireBytes = cw.n.Load()
		pr.Elapsed = now.Sub(start)
		progress(pr)
	}
	bw, err := wire.NewBlobWriter(cw, p.Stream)
	if err != nil {
		return pr, err
	}
	for _, b := range p.Blobs {
		if err := ctx.Err(); err != nil {
			bw.Close()
			return pr, fmt.Errorf("upload: %w", err)
		}
		if err := sendFile(ctx, bw, b, dir, func(n int) { pr.Bytes += int64(n); report(false) }); err != nil {
			bw.Close()
			return pr, err
		}
		pr.Blobs++
	}
	if err := bw.Close(); err != nil {
		return pr, fmt.Errorf("upload: %w", err)
	}
	pr.Done = true
	report(true)
	pr.WireBytes, pr.Elapsed = cw.n.Load(), time.Since(start)
	return pr, nil
}

func sendFile(ctx context.Context, bw *wire.BlobWriter, b PlanBlob, dir string, sent func(int)) error {
	if b.Dir != "" {
		dir = b.Dir
	}
	name := filepath.Join(dir, filepath.FromSlash(b.Path))
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("upload %s: %w", b.Path, err)
	}
	defer f.Close()
	if err := bw.WriteBlob(b.BlobHeader, &progressReader{ctx: ctx, r: f, sent: sent}); err != nil {
		return fmt.Errorf("upload %s: %w (did the file change since the manifest was made? run the update again)", b.Path, err)
	}
	return nil
}

// progressReader counts what is read and stops when ctx ends, so a large
// file does not delay cancellation.
type progressReader struct {
	ctx  context.Context
	r    io.Reader
	sent func(int)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.sent(n)
	return n, err
}

// countingWriter counts bytes written; atomically, because the
// compressor writes from its own goroutine.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
