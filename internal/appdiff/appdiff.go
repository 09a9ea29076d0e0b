// Package appdiff shows how an application directory differs from an
// instance deployed on a node (`toppcloud diff`), as a unified diff. The
// directory's manifest (internal/deploy/manifest, with its ignore rules
// and hash cache) goes to the agent's read-only diff operation, which
// hashes the instance and sends back only the paths that differ and the
// contents of the files among them, so an unchanged app costs one
// manifest upload and nothing more.
//
// The unified diffs come from github.com/aymanbagabas/go-udiff, a
// maintained copy of the Go team's diff package.
package appdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// Caller runs an agent operation: (*remote.Node).Call.
type Caller func(ctx context.Context, op string, args any, result any, o remote.CallOptions) error

// Options say what to compare.
type Options struct {
	// Dir is the application directory.
	Dir string
	// Location or Instance picks the instance (protocol.DiffArgs).
	Location string
	Instance string
	// CacheDir keeps the manifest's hash cache (as update does).
	CacheDir string
}

// Result summarises a diff.
type Result struct {
	App      string
	Instance string
	// Differ counts the differences shown; Same the paths that are equal.
	Differ int
	Same   int
}

// Run compares and writes the differences to w: the instance is the old
// side ("a", labelled INSTANCE/PATH), the directory the new one.
func Run(ctx context.Context, call Caller, o Options, w io.Writer) (Result, error) {
	m, _, err := manifest.Build(ctx, o.Dir, manifest.Options{CacheDir: o.CacheDir})
	if err != nil {
		return Result{}, err
	}
	ig, err := manifest.LoadIgnore(o.Dir)
	if err != nil {
		return Result{}, err
	}
	var mb bytes.Buffer
	if _, err := wire.WriteManifest(&mb, m); err != nil {
		return Result{}, err
	}
	remoteData := map[string]protocol.DiffFile{}
	var logErr error
	var res protocol.DiffResult
	err = call(ctx, protocol.OpDiff, protocol.DiffArgs{Location: o.Location, Instance: o.Instance}, &res, remote.CallOptions{
		Stream: &mb,
		Log: func(l protocol.Log) {
			if l.Stream != protocol.StreamDiffFile {
				return
			}
			var f protocol.DiffFile
			if err := json.Unmarshal([]byte(l.Text), &f); err != nil {
				logErr = fmt.Errorf("diff: a file from the node: %w", err)
				return
			}
			remoteData[f.Path] = f
		},
	})
	if err != nil {
		return Result{}, err
	}
	if logErr != nil {
		return Result{}, logErr
	}
	local := map[string]wire.Entry{}
	for _, e := range m.Entries {
		local[e.Path] = e
	}
	p := printer{w: w, a: res.Instance, b: filepath.Clean(o.Dir), dir: o.Dir, remote: remoteData}
	out := Result{App: res.App, Instance: res.Instance, Same: res.Same}
	// A directory must come before what is inside it for the inside to be
	// left out; sorting here keeps that true whatever order the node sent.
	sort.Slice(res.Differ, func(i, j int) bool { return res.Differ[i].Path < res.Differ[j].Path })
	var only []string // directories reported whole
	for _, r := range res.Differ {
		if under(r.Path, only) {
			continue
		}
		l, inLocal := local[r.Path]
		if !inLocal && r.Type != "" && ig.Match(r.Path, r.Type == "dir") {
			continue // now ignored here: not part of the app any more
		}
		n, err := p.entry(r, l, inLocal)
		if err != nil {
			return out, err
		}
		out.Differ += n
		if (r.Type == "dir") != (inLocal && l.Type == wire.EntryDir) {
			only = append(only, r.Path+"/")
		}
	}
	return out, nil
}

func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

type printer struct {
	w      io.Writer
	a, b   string // labels: the instance, the directory
	dir    string
	remote map[string]protocol.DiffFile
}

func typeName(t string) string {
	switch t {
	case "dir":
		return "a directory"
	case "symlink":
		return "a symbolic link"
	}
	return "a regular file"
}

// entry prints one difference and says how many it counted.
func (p printer) entry(r protocol.DiffEntry, l wire.Entry, inLocal bool) (int, error) {
	la, lb := p.a+"/"+r.Path, p.b+"/"+r.Path
	switch {
	case r.Type == "" && l.Type == wire.EntryFile:
		return 1, p.text(r.Path, la, lb, true, false)
	case r.Type == "":
		fmt.Fprintf(p.w, "Only in %s: %s\n", p.b, r.Path)
		return 1, nil
	case !inLocal && r.Type == "file":
		return 1, p.text(r.Path, la, lb, false, true)
	case !inLocal:
		fmt.Fprintf(p.w, "Only in %s: %s\n", p.a, r.Path)
		return 1, nil
	case r.Type != l.Type.String():
		fmt.Fprintf(p.w, "File %s is %s while file %s is %s\n", la, typeName(r.Type), lb, typeName(l.Type.String()))
		return 1, nil
	case r.Type == "symlink":
		fmt.Fprintf(p.w, "Symbolic links %s -> %s and %s -> %s differ\n", la, r.Target, lb, l.Target)
		return 1, nil
	case r.Type == "file":
		if r.Exec != l.Exec {
			fmt.Fprintf(p.w, "Mode of %s: %s in %s, %s in %s\n", r.Path, execName(r.Exec), p.a, execName(l.Exec), p.b)
		}
		if r.Hash != l.Hash {
			return 1, p.text(r.Path, la, lb, true, true)
		}
		return 1, nil
	}
	return 0, nil
}

func execName(x bool) string {
	if x {
		return "executable"
	}
	return "not executable"
}

// text prints a unified diff of a file; a side that is missing is
// /dev/null, as diff -N shows it.
func (p printer) text(rel, la, lb string, haveLocal, haveRemote bool) error {
	var a, b string
	if haveRemote {
		f, ok := p.remote[rel]
		switch {
		case !ok:
			return fmt.Errorf("diff: the node sent no content for %s", rel)
		case f.Omitted != "":
			fmt.Fprintf(p.w, "Files %s and %s differ (%s on the node)\n", la, lb, f.Omitted)
			return nil
		}
		a = string(f.Data)
	} else {
		la = "/dev/null"
	}
	if haveLocal {
		data, err := os.ReadFile(filepath.Join(p.dir, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
			fmt.Fprintf(p.w, "Binary files %s and %s differ\n", la, lb)
			return nil
		}
		b = string(data)
	} else {
		lb = "/dev/null"
	}
	_, err := io.WriteString(p.w, udiff.Unified(la, lb, a, b))
	return err
}
