package main

// The client side of the benchmark: the three requests of an update as
// the update command will make them, through an sshx.Runner.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/version"
)

// result is one measured update (or tar copy).
type result struct {
	total, build, req1, req2, req3 time.Duration
	manifestWire                   int64 // compressed manifest
	up, down                       int64 // bytes written to / read from the sessions
	blobs                          int
	content                        int64 // blob bytes before compression
	hashed                         int   // files read by the manifest build
	recv                           blobstore.ReceiveStats
}

type client struct {
	r     sshx.Runner
	dir   string
	cache string
	app   string
}

// call runs one agent request: stdin is the request line and what
// follows; the result's data is decoded into out.
func (c *client) call(ctx context.Context, op string, stdin io.Reader, out any, res *result) error {
	up := &countingReader{r: stdin}
	var stdout bytes.Buffer
	err := c.r.Run(ctx, []string{"toppcloud", "node", op}, sshx.RunOptions{Stdin: up, Stdout: &stdout})
	res.up += up.n.Load()
	res.down += int64(stdout.Len())
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	r, err := protocol.Read(&stdout, protocol.Handler{})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !r.OK {
		return fmt.Errorf("%s: %w", op, r.Error)
	}
	if out != nil {
		return json.Unmarshal(r.Data, out)
	}
	return nil
}

func request(op string) protocol.Request {
	return protocol.Request{Protocol: version.Protocol, Op: op}
}

// update is what `toppcloud update` does for the files.
func (c *client) update(ctx context.Context) (result, error) {
	var res result
	start := time.Now()
	m, st, err := manifest.Build(ctx, c.dir, manifest.Options{CacheDir: c.cache})
	if err != nil {
		return res, err
	}
	res.build = time.Since(start)
	res.hashed = st.Hashed

	// 1: manifest -> missing contents.
	t := time.Now()
	var in bytes.Buffer
	protocol.EncodeRequest(&in, request(opMissing), nil)
	if res.manifestWire, err = wire.WriteManifest(&in, m); err != nil {
		return res, err
	}
	var missing missingResult
	if err := c.call(ctx, opMissing, &in, &missing, &res); err != nil {
		return res, err
	}
	res.req1 = time.Since(t)

	// 2: the blobs, streamed after the request line.
	plan, err := manifest.NewPlan(m, missing.Missing)
	if err != nil {
		return res, err
	}
	if len(plan.Blobs) > 0 {
		t = time.Now()
		pr, pw := io.Pipe()
		sent := make(chan error, 1)
		go func() {
			err := protocol.EncodeRequest(pw, request(opReceive), nil)
			if err == nil {
				_, err = plan.Send(ctx, pw, c.dir, nil)
			}
			pw.CloseWithError(err)
			sent <- err
		}()
		err := c.call(ctx, opReceive, pr, &res.recv, &res)
		pr.CloseWithError(io.ErrClosedPipe)
		if serr := <-sent; serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return res, err
		}
		res.req2 = time.Since(t)
		res.blobs, res.content = len(plan.Blobs), plan.Bytes
	}

	// 3: assemble the instance from the kept manifest.
	t = time.Now()
	in.Reset()
	protocol.EncodeRequest(&in, request(opAssemble), assembleArgs{App: c.app, Digest: missing.Digest})
	var ar assembleResult
	if err := c.call(ctx, opAssemble, &in, &ar, &res); err != nil {
		return res, err
	}
	res.req3 = time.Since(t)
	res.total = time.Since(start)
	return res, nil
}

// tar copies the tree with `tar c | tar x` through the same runner.
func (c *client) tar(ctx context.Context, dest string) (result, error) {
	var res result
	start := time.Now()
	cmd := exec.CommandContext(ctx, "tar", "c", "-C", c.dir, ".")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	up := &countingReader{r: out}
	err = c.r.Run(ctx, []string{"tar", "x", "-C", dest}, sshx.RunOptions{Stdin: up})
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	res.total = time.Since(start)
	res.up = up.n.Load()
	return res, err
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
