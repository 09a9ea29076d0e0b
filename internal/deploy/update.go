// Package deploy is the client side of `toppcloud update`: Prepare checks
// everything that can be checked on this machine (app.ini, the app name,
// the location, the node, the --config directory, the files) before any
// connection is made, Upload sends the node what it lacks, and Deploy asks
// it to make and switch to the new instance.
//
// The three requests of an update (protocol.OpDeployManifest,
// OpDeployBlobs, OpDeploy) are described in internal/protocol; the node's
// side is internal/agent.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// DefaultLockTimeout is how long an update waits for another operation
// on the same app on the node (--lock-timeout).
const DefaultLockTimeout = 10 * time.Minute

// Options are what `toppcloud update` was asked.
type Options struct {
	// AppDir is the application directory; Location the optional
	// LOCATION argument.
	AppDir   string
	Location string
	// Node is --node; Name is --name (deploy under another app name).
	Node string
	Name string
	// ConfigDir is --config: a directory uploaded as the app's config.
	ConfigDir string
	Clear     bool
	// Force makes a new instance even when nothing changed.
	Force       bool
	LockTimeout time.Duration
	// HealthTimeout bounds the wait for the new instance (0: the node's
	// default, protocol.DefaultHealthTimeout).
	HealthTimeout time.Duration
	// Compress is --compress; empty means CompressS2.
	Compress Compression
}

// Compression is how update compresses the contents it sends.
type Compression string

// Compressions for --compress. S2 is the default even for a node on this
// machine: bench/deploy measured a first update uncompressed there no
// faster (the SSH copy of the extra bytes costs what S2 saves).
const (
	// CompressS2 is fast and compresses text to about 40%: the right
	// choice for links faster than about 100 Mbit/s.
	CompressS2 Compression = "s2"
	// CompressZstd is several times slower for about 10% fewer bytes:
	// for slow links.
	CompressZstd Compression = "zstd"
	// CompressNone sends the contents as they are (already compressed
	// media, say).
	CompressNone Compression = "none"
)

// Compressions lists the values --compress accepts.
var Compressions = []Compression{CompressS2, CompressZstd, CompressNone}

// ParseCompression checks a --compress value.
func ParseCompression(s string) (Compression, error) {
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("--compress %q: use one of %v", s, Compressions)
}

// stream is the blob stream's options for c.
func (c Compression) stream() wire.BlobWriterOptions {
	switch c {
	case CompressZstd:
		return wire.BlobWriterOptions{Codec: wire.CodecZstd}
	case CompressNone:
		return wire.BlobWriterOptions{Codec: wire.CodecS2, Uncompressed: true}
	}
	return wire.BlobWriterOptions{Codec: wire.CodecS2}
}

// Nodes answers whether a node name is one the client knows.
type Nodes interface {
	Known(name string) (bool, error)
}

// inputf makes a mistake in the command line or the app directory, found
// before anything remote happened, a *usage.Error.
func inputf(format string, args ...any) error { return usage.Errorf(format, args...) }

// Plan is an update checked locally: what goes where.
type Plan struct {
	Dir    string
	Config *appconfig.Config
	// App is the name deployed under (--name, else app_name).
	App      string
	Location location.Location
	// Node is the node's name in the client's records.
	Node string
	// Manifest is the app directory's, with Stats of its build.
	Manifest *wire.Manifest
	Stats    manifest.Stats
	// ConfigDir and ConfigManifest are the --config upload, if any.
	ConfigDir      string
	ConfigManifest *wire.Manifest
	// Warnings are app.ini's (deprecated keys, ...).
	Warnings []string
	// NeedConfig: config.required without config.default or --config;
	// the node must already have one.
	NeedConfig bool
	Opts       Options
}

// Prepare checks an update locally and builds its manifests. Every
// problem is a *usage.Error naming what to fix, returned before any
// connection. cacheDir keeps the manifest hash cache ("" for none).
func Prepare(ctx context.Context, o Options, nodes Nodes, cacheDir string) (*Plan, error) {
	if o.AppDir == "" {
		return nil, inputf("update: no application directory given")
	}
	dir, err := filepath.Abs(o.AppDir)
	if err != nil {
		return nil, inputf("application directory %s: %v", o.AppDir, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, inputf("application directory %s: %v", o.AppDir, err)
	}
	cfg, err := appconfig.Load(dir)
	if err != nil {
		return nil, usage.Wrap(err)
	}
	if err := cfg.Validate(dir); err != nil {
		return nil, usage.Wrap(err)
	}
	p := &Plan{Dir: dir, Config: cfg, App: cfg.AppName, Opts: o}
	for _, w := range cfg.Warnings {
		p.Warnings = append(p.Warnings, w.String())
	}
	if o.Name != "" {
		if err := appconfig.CheckAppName(o.Name); err != nil {
			return nil, inputf("--name: %v", err)
		}
		p.App = o.Name
	}
	if p.App == "" {
		return nil, inputf("%s has no app_name: set app_name in its [production] section or give --name", filepath.Join(o.AppDir, appconfig.FileName))
	}

	locArg := o.Location
	if locArg == "" {
		locArg = cfg.DefaultLocation
	}
	if locArg == "" {
		return nil, inputf("no location: give one (toppcloud update %s example.com[/path]) or set default_location in %s", o.AppDir, filepath.Join(o.AppDir, appconfig.FileName))
	}
	if p.Location, err = location.Parse(locArg); err != nil {
		return nil, usage.Wrap(err)
	}
	if p.Node, err = ResolveNode(p.Location, o.Node, nodes); err != nil {
		return nil, err
	}

	if o.ConfigDir != "" {
		if st, err := os.Stat(o.ConfigDir); err != nil || !st.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, inputf("--config %s: %v", o.ConfigDir, err)
		}
		p.ConfigDir = o.ConfigDir
	} else if cfg.ConfigRequired && cfg.ConfigDefault == "" {
		p.NeedConfig = true
	}
	if o.LockTimeout < 0 || o.HealthTimeout < 0 {
		return nil, inputf("--lock-timeout and --health-timeout must not be negative")
	}

	p.Manifest, p.Stats, err = manifest.Build(ctx, dir, manifest.Options{CacheDir: cacheDir})
	if err != nil {
		var re *manifest.RefusedError
		if errors.As(err, &re) {
			return nil, usage.Wrap(err)
		}
		return nil, err
	}
	if p.ConfigDir != "" {
		if p.ConfigManifest, _, err = manifest.Build(ctx, p.ConfigDir, manifest.Options{}); err != nil {
			return nil, inputf("--config %s: %w", p.ConfigDir, err)
		}
	}
	return p, nil
}

// ResolveNode picks the node a location-based command talks to: --node
// if given (it must be a known node), else the location's host, which must
// be the name of a node the client knows.
func ResolveNode(loc location.Location, flag string, nodes Nodes) (string, error) {
	name := flag
	if name == "" {
		name = loc.NodeHost()
		if name == "" {
			return "", inputf("location %s names no node (its host is *): give --node NODE", loc)
		}
	}
	ok, err := nodes.Known(name)
	if err != nil {
		return "", err
	}
	if !ok {
		if flag != "" {
			return "", inputf("--node %s: no node by that name (list-nodes shows them; create-node makes or registers one)", name)
		}
		return "", inputf("%s is not the name of a node toppcloud knows: give --node NODE for %s (list-nodes shows the nodes)", name, loc)
	}
	return name, nil
}

// Caller runs agent operations; *remote.Node is one.
type Caller interface {
	Call(ctx context.Context, op string, args any, result any, o remote.CallOptions) error
}

// UploadStats say what an upload sent.
type UploadStats struct {
	// Files and Bytes are the app's; Blobs and Content what the node
	// lacked (Content before compression).
	Files   int
	Bytes   int64
	Blobs   int
	Content int64
	// Sent is every byte written to the agent's stdin: request lines,
	// manifests and the compressed blob stream.
	Sent int64
	// Digest and ConfigDigest name the kept manifests for Deploy.
	Digest       wire.Hash
	ConfigDigest *wire.Hash
}

// Upload sends the node the app's manifest and the contents it lacks,
// then the same for the --config directory. progress hears the blob
// stream (at most every 100 ms, and once at the end).
func Upload(ctx context.Context, n Caller, p *Plan, progress func(manifest.Progress)) (UploadStats, error) {
	var st UploadStats
	st.Files, st.Bytes = p.Manifest.FileBytes()
	opts := p.Opts.Compress.stream()
	d, err := upload(ctx, n, p.App, p.Dir, p.Manifest, false, p.NeedConfig, opts, progress, &st)
	if err != nil {
		return st, err
	}
	st.Digest = d
	if p.ConfigManifest != nil {
		d, err := upload(ctx, n, p.App, p.ConfigDir, p.ConfigManifest, true, false, opts, progress, &st)
		if err != nil {
			return st, fmt.Errorf("--config: %w", err)
		}
		st.ConfigDigest = &d
	}
	return st, nil
}

func upload(ctx context.Context, n Caller, app, dir string, m *wire.Manifest, isConfig, needConfig bool, opts wire.BlobWriterOptions, progress func(manifest.Progress), st *UploadStats) (wire.Hash, error) {
	var buf bytes.Buffer
	if _, err := wire.WriteManifest(&buf, m); err != nil {
		return wire.Hash{}, err
	}
	var mr protocol.DeployManifestResult
	sent := &countingReader{r: &buf}
	err := n.Call(ctx, protocol.OpDeployManifest, protocol.DeployManifestArgs{App: app, Config: isConfig, NeedConfig: needConfig}, &mr, remote.CallOptions{Stream: sent})
	st.Sent += sent.n.Load()
	if err != nil {
		return wire.Hash{}, err
	}
	plan, err := manifest.NewPlan(m, mr.Missing)
	if err != nil {
		return wire.Hash{}, err
	}
	if len(plan.Blobs) == 0 {
		return mr.Digest, nil
	}
	plan.Stream = opts
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := plan.Send(ctx, pw, dir, progress)
		pw.CloseWithError(err)
		done <- err
	}()
	stream := &countingReader{r: pr}
	var br protocol.DeployBlobsResult
	err = n.Call(ctx, protocol.OpDeployBlobs, nil, &br, remote.CallOptions{Stream: stream})
	pr.CloseWithError(io.ErrClosedPipe)
	serr := <-done
	st.Sent += stream.n.Load()
	if err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return wire.Hash{}, err
	}
	st.Blobs += len(plan.Blobs)
	st.Content += plan.Bytes
	return mr.Digest, nil
}

// Deploy asks the node to make the instance from the uploaded manifests,
// start it and switch the location to it; o streams the node's steps and
// the application's output.
func Deploy(ctx context.Context, n Caller, p *Plan, up UploadStats, o remote.CallOptions) (*protocol.DeployResult, error) {
	lock := p.Opts.LockTimeout
	if lock == 0 {
		lock = DefaultLockTimeout
	}
	args := protocol.DeployArgs{
		App: p.App, Location: p.Location.String(), Digest: up.Digest, ConfigDigest: up.ConfigDigest,
		Clear: p.Opts.Clear, LockWait: protocol.Duration(lock), SkipUnchanged: !p.Opts.Force,
		HealthTimeout: protocol.Duration(p.Opts.HealthTimeout),
	}
	var res protocol.DeployResult
	if err := n.Call(ctx, protocol.OpDeploy, args, &res, o); err != nil {
		return nil, err
	}
	return &res, nil
}

// URL is where the deployed location answers.
func URL(loc location.Location) string {
	host := loc.HostPort()
	switch {
	case loc.Wildcard():
		host = strings.TrimPrefix(host, ".")
	case loc.CatchAll():
		host = "NODE"
	}
	return loc.Scheme + "://" + host + loc.Path
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
