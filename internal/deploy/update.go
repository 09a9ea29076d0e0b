// Package deploy is the client side of `toppcloud update`: Prepare checks
// everything that can be checked on this machine (app.ini, the app name,
// the location, the node, the --config directory, the files) before any
// connection is made, and Update sends the node what it lacks and has it
// make and switch to the new instance.
//
// An update is one request, protocol.OpUpdate, described in
// internal/protocol; the node's side is internal/agent.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/service"
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
	// Compress is --compress; empty means CompressS2 (Update resolves
	// CompressAuto for the node first).
	Compress Compression
}

// Compression is how update compresses the contents it sends.
type Compression string

// Compressions for --compress. Auto, the default, is S2 on a link of a
// few milliseconds (a node on this machine: bench/deploy measured a first
// update uncompressed there no faster, the SSH copy of the extra bytes
// costs what S2 saves) and zstd on any longer one: zstd's fastest level
// still compresses a few hundred MB/s, more than links to a server
// elsewhere carry, and sends about a tenth fewer bytes.
const (
	// CompressAuto picks one of the others for the node (Resolve).
	CompressAuto Compression = "auto"
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
var Compressions = []Compression{CompressAuto, CompressS2, CompressZstd, CompressNone}

// FastLink is the round-trip time under which Resolve takes a link for
// one to a node on this machine or the same LAN, faster than zstd
// compresses.
const FastLink = 5 * time.Millisecond

// Resolve turns CompressAuto (and the zero value) into S2 for a link of
// round-trip time rtt under FastLink, zstd for any other; the others
// stay. A negative rtt (unknown) counts as slow.
func (c Compression) Resolve(rtt time.Duration) Compression {
	if c != CompressAuto && c != "" {
		return c
	}
	if rtt >= 0 && rtt < FastLink {
		return CompressS2
	}
	return CompressZstd
}

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
	// A service this toppcloud refuses is refused here too, before
	// anything is uploaded or installed (the node checks again).
	for _, sv := range cfg.Services {
		if info, ok := service.Lookup(sv.Name); ok && info.Unavailable != "" {
			return nil, inputf("%s line %d: service.%s: %s", filepath.Join(o.AppDir, appconfig.FileName), sv.Line, sv.Name, info.Unavailable)
		}
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

// Caller runs agent operations; *remote.Node is one. CallCurrent is
// Call for an operation that names the client's agent (see
// remote.Node.CallCurrent).
type Caller interface {
	Call(ctx context.Context, op string, args any, result any, o remote.CallOptions) error
	CallCurrent(ctx context.Context, op string, args any, result any, o remote.CallOptions) error
}

// UploadStats say what an update sent.
type UploadStats struct {
	// Files and Bytes are the app's; Blobs and Content what the node
	// lacked (Content before compression).
	Files   int
	Bytes   int64
	Blobs   int
	Content int64
	// Sent is every byte written to the agent's stdin: the request line,
	// the manifests and the compressed blob stream.
	Sent int64
	// Compression is the blob stream's (CompressAuto resolved); empty
	// when nothing was sent.
	Compression Compression
}

// UpdateOptions are the callbacks of Update.
type UpdateOptions struct {
	// Progress hears the blob stream (at most every 100 ms, and once at
	// the end).
	Progress func(manifest.Progress)
	// Uploaded is called once everything is sent, before the node has
	// started the instance: the rest of the update is the node's.
	Uploaded func(UploadStats)
	// Events stream the node's steps and the application's output.
	Events remote.CallOptions
	// RTT, if set, is the link's round-trip time for CompressAuto, asked
	// for when the blob stream starts (a negative one is unknown).
	RTT func() time.Duration

	// The rest serve a site's rolling update (package site).

	// Hold asks the node to stop short of the switch: once the new
	// instance runs, answered its health check and ran update_fetch
	// (unless SkipFetch), Held is called, on its own goroutine, with the
	// new instance; its answer decides: true switches, false (or an
	// error, or ctx ending) removes the new instance and leaves the live
	// one. Update returns once the node has done either.
	Hold bool
	Held func(instance string) bool
	// SkipFetch: the node runs no update_fetch (a site runs it once).
	SkipFetch bool
	// Jobs is the share of the app's crons and workers this node runs;
	// nil runs them all (a node of its own).
	Jobs *protocol.JobPlacement
	// ServiceEnv are the CONFIG_* variables of the app's services on a
	// site's services node (protocol.UpdateArgs.ServiceEnv).
	ServiceEnv map[string]string
}

// Update sends the node the app's manifest (and the --config
// directory's), then the contents it lacks, and has it make, start and
// switch to the new instance: one operation (protocol.OpUpdate), whose
// only wait besides the data is for the node's list of what it lacks.
func Update(ctx context.Context, n Caller, p *Plan, o UpdateOptions) (*protocol.UpdateResult, UploadStats, error) {
	var st UploadStats
	lock := p.Opts.LockTimeout
	if lock == 0 {
		lock = DefaultLockTimeout
	}
	if o.Hold && o.Held == nil {
		return nil, st, errors.New("update: Hold without Held")
	}
	args := protocol.UpdateArgs{
		App: p.App, Location: p.Location.String(), Config: p.ConfigManifest != nil, NeedConfig: p.NeedConfig,
		Clear: p.Opts.Clear, LockWait: protocol.Duration(lock), SkipUnchanged: !p.Opts.Force,
		HealthTimeout: protocol.Duration(p.Opts.HealthTimeout),
		Hold:          o.Hold, SkipFetch: o.SkipFetch, Jobs: o.Jobs, ServiceEnv: o.ServiceEnv,
	}
	call := o.Events
	call.Input = func(w io.Writer, replies <-chan json.RawMessage) error {
		st = UploadStats{}
		st.Files, st.Bytes = p.Manifest.FileBytes()
		cw := &countingWriter{w: w}
		err := p.send(ctx, cw, replies, o, &st)
		st.Sent = cw.n
		if err != nil {
			return err
		}
		if o.Uploaded != nil {
			o.Uploaded(st)
		}
		if o.Hold {
			return hold(ctx, w, replies, o.Held)
		}
		return nil
	}
	var res protocol.UpdateResult
	if err := n.CallCurrent(ctx, protocol.OpUpdate, args, &res, call); err != nil {
		return nil, st, err
	}
	return &res, st, nil
}

// send writes the manifests, waits for the node's UpdateNeed and sends
// one blob stream of what it names.
func (p *Plan) send(ctx context.Context, w io.Writer, replies <-chan json.RawMessage, o UpdateOptions, st *UploadStats) error {
	if _, err := wire.WriteManifest(w, p.Manifest); err != nil {
		return err
	}
	if p.ConfigManifest != nil {
		if _, err := wire.WriteManifest(w, p.ConfigManifest); err != nil {
			return err
		}
	}
	var raw json.RawMessage
	var ok bool
	select {
	case raw, ok = <-replies:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !ok {
		// The node ended the operation first (refused it, or failed):
		// its result says why.
		return nil
	}
	var need protocol.UpdateNeed
	if err := json.Unmarshal(raw, &need); err != nil {
		return fmt.Errorf("the node's list of missing contents: %w", err)
	}
	plan, err := planOf(p.Manifest, need.App)
	if err != nil {
		return err
	}
	if p.ConfigManifest != nil {
		cp, err := planOf(p.ConfigManifest, need.Config)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		plan.Append(cp, p.ConfigDir)
	}
	if len(plan.Blobs) == 0 {
		return nil
	}
	rtt := time.Duration(-1)
	if o.RTT != nil {
		rtt = o.RTT()
	}
	st.Compression = p.Opts.Compress.Resolve(rtt)
	plan.Stream = st.Compression.stream()
	if _, err := plan.Send(ctx, w, p.Dir, o.Progress); err != nil {
		return err
	}
	st.Blobs, st.Content = len(plan.Blobs), plan.Bytes
	return nil
}

// hold waits for a held update's UpdateHeld reply, asks held and writes
// its decision. The node ending the operation first (it failed before
// the switch) is no error here: its result says why. ctx ending writes
// an abort, so the node removes the new instance even if the connection
// outlives the client's wait.
func hold(ctx context.Context, w io.Writer, replies <-chan json.RawMessage, held func(string) bool) error {
	var raw json.RawMessage
	var ok bool
	select {
	case raw, ok = <-replies:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), writeDecision(w, false))
	}
	if !ok {
		return nil
	}
	var h protocol.UpdateHeld
	if err := json.Unmarshal(raw, &h); err != nil || h.Instance == "" {
		// Abort rather than leave the node waiting for a decision.
		return errors.Join(fmt.Errorf("the node's held reply %q: %v", raw, err), writeDecision(w, false))
	}
	answer := make(chan bool, 1)
	go func() { answer <- held(h.Instance) }()
	var commit bool
	select {
	case commit = <-answer:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), writeDecision(w, false))
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(err, writeDecision(w, false))
	}
	return writeDecision(w, commit)
}

// writeDecision writes one HoldDecision line.
func writeDecision(w io.Writer, commit bool) error {
	b, err := json.Marshal(protocol.HoldDecision{Commit: commit})
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send the hold decision: %w", err)
	}
	return nil
}

// planOf is what to send of m when the node lacks the contents of the
// entries at idx.
func planOf(m *wire.Manifest, idx []int) (*manifest.Plan, error) {
	hashes := make([]wire.Hash, 0, len(idx))
	for _, i := range idx {
		if i < 0 || i >= len(m.Entries) || m.Entries[i].Type != wire.EntryFile {
			return nil, fmt.Errorf("the node asked for entry %d, which is not a file of the manifest", i)
		}
		hashes = append(hashes, m.Entries[i].Hash)
	}
	return manifest.NewPlan(m, hashes)
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

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
