package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// diffOp compares the client's manifest of an application directory with
// a deployed instance and sends the instance's side of every difference:
// `toppcloud diff`. It only reads.
func (a *Agent) diff(ctx context.Context, c *Call, args *protocol.DiffArgs) (*protocol.DiffResult, error) {
	if c.Input == nil {
		return nil, badRequest("diff: the manifest must follow the request")
	}
	local, err := wire.ReadManifest(c.Input)
	if err != nil {
		return nil, badRequest("diff: manifest: %v", err)
	}
	instance := args.Instance
	switch {
	case instance != "":
		if err := router.ValidateInstance(instance); err != nil {
			return nil, badRequest("%v", err)
		}
	case args.Location != "":
		loc, rt, err := a.routeAt(c, args.Location)
		if err != nil {
			return nil, err
		}
		if rt.Live == "" {
			return nil, notFound("no instance is live at %s (name one with --instance)", loc)
		}
		instance = rt.Live
	default:
		return nil, badRequest("diff: give a location or an instance")
	}
	dir := a.Host.Path(a.Layout.InstanceDir(instance))
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return nil, notFound("no instance %s on this node (query lists them)", instance)
	}
	remote, err := instanceEntries(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("diff %s: %w", instance, err)
	}
	app, _, _ := strings.Cut(instance, ".")
	res := &protocol.DiffResult{App: app, Instance: instance, Differ: []protocol.DiffEntry{}}
	mine := map[string]wire.Entry{}
	for _, e := range local.Entries {
		mine[e.Path] = e
	}
	var total int64
	for _, r := range remote {
		l, ok := mine[r.Path]
		delete(mine, r.Path)
		if ok && sameEntry(l, r) {
			res.Same++
			continue
		}
		res.Differ = append(res.Differ, diffEntry(r))
		if r.Type != wire.EntryFile || ok && l.Type == wire.EntryFile && l.Hash == r.Hash {
			continue // only the mode differs, or not a file
		}
		f := protocol.DiffFile{Path: r.Path}
		switch {
		case r.Size > protocol.DiffMaxFile:
			f.Omitted = "too large"
		case total+r.Size > protocol.DiffMaxTotal:
			f.Omitted = "too much differs to send in one diff"
		default:
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(r.Path)))
			if err != nil {
				return nil, fmt.Errorf("diff %s: %w", instance, err)
			}
			if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
				f.Omitted = "binary"
			} else {
				f.Data = data
				total += int64(len(data))
			}
		}
		b, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		if err := c.Out.Log(protocol.StreamDiffFile, string(b)); err != nil {
			return nil, err
		}
	}
	for p := range mine {
		res.Differ = append(res.Differ, protocol.DiffEntry{Path: p})
	}
	slices.SortFunc(res.Differ, func(x, y protocol.DiffEntry) int { return strings.Compare(x.Path, y.Path) })
	return res, nil
}

func sameEntry(l, r wire.Entry) bool {
	if l.Type != r.Type {
		return false
	}
	switch l.Type {
	case wire.EntryFile:
		return l.Hash == r.Hash && l.Exec == r.Exec
	case wire.EntrySymlink:
		return l.Target == r.Target
	}
	return true
}

func diffEntry(e wire.Entry) protocol.DiffEntry {
	d := protocol.DiffEntry{Path: e.Path, Type: e.Type.String(), Exec: e.Exec, Size: e.Size, Target: e.Target}
	if e.Type == wire.EntryFile {
		d.Hash = e.Hash
	}
	return d
}

// instanceEntries lists an instance directory as manifest entries,
// hashing every file. Symlinks are listed, never followed.
func instanceEntries(ctx context.Context, dir string) ([]wire.Entry, error) {
	var out []wire.Entry
	h := sha256.New()
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		e := wire.Entry{Path: filepath.ToSlash(rel)}
		switch {
		case d.IsDir():
			e.Type = wire.EntryDir
		case d.Type()&fs.ModeSymlink != 0:
			e.Type = wire.EntrySymlink
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			e.Type = wire.EntryFile
			st, err := d.Info()
			if err != nil {
				return err
			}
			e.Exec = st.Mode()&0o111 != 0
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h.Reset()
			n, err := io.CopyBuffer(h, f, buf)
			f.Close()
			if err != nil {
				return err
			}
			e.Size = n
			copy(e.Hash[:], h.Sum(nil))
		default:
			return nil
		}
		out = append(out, e)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return out, err
}
