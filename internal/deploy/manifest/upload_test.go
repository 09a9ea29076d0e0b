package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

func TestNewPlan(t *testing.T) {
	sum := func(s string) wire.Hash { return sha256.Sum256([]byte(s)) }
	m := &wire.Manifest{Entries: []wire.Entry{
		{Path: "a", Type: wire.EntryFile, Size: 1, Hash: sum("x")},
		{Path: "b", Type: wire.EntryFile, Size: 1, Hash: sum("x")},
		{Path: "c", Type: wire.EntryFile, Size: 1, Hash: sum("x"), Exec: true},
		{Path: "d", Type: wire.EntryFile, Size: 2, Hash: sum("yy"), Exec: true},
		{Path: "e", Type: wire.EntryFile, Size: 3, Hash: sum("zzz")},
	}}
	p, err := NewPlan(m, []wire.Hash{sum("yy"), sum("x")})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blobs) != 2 || p.Bytes != 3 {
		t.Fatalf("plan = %+v", p)
	}
	if b := p.Blobs[0]; b.Path != "a" || b.Variants != wire.VariantPlain|wire.VariantExec {
		t.Errorf("first blob = %+v", b)
	}
	if b := p.Blobs[1]; b.Path != "d" || b.Variants != wire.VariantExec {
		t.Errorf("second blob = %+v", b)
	}
	if _, err := NewPlan(m, []wire.Hash{sum("other")}); err == nil {
		t.Fatal("hash outside the manifest accepted")
	}
	if p, err := NewPlan(m, nil); err != nil || len(p.Blobs) != 0 {
		t.Fatalf("nothing missing: %+v %v", p, err)
	}
}

// TestUpdateFlow runs the three steps of an update in process: the
// client side of this package against the node side of blobstore, through
// the wire encodings, twice (first upload, then one file changed).
func TestUpdateFlow(t *testing.T) {
	ctx := context.Background()
	app, cache := t.TempDir(), t.TempDir()
	writeTree(t, app, map[string]string{
		"app.ini":           "[production]\napp_name = demo\n",
		"main.py":           strings.Repeat("print('hello')\n", 1000),
		"bin/start*":        "#!/bin/sh\nexec python3 main.py\n",
		"static/style.css":  "body{}",
		"static/copy.css":   "body{}",
		"static/empty.txt":  "",
		"static/link":       "-> style.css",
		"lib/python/pkg/x/": "",
	})
	store, err := blobstore.Open(filepath.Join(t.TempDir(), "blobs"), blobstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	www := t.TempDir()

	update := func() (string, Progress) {
		m, _, err := Build(ctx, app, Options{CacheDir: cache, Now: later})
		if err != nil {
			t.Fatal(err)
		}
		// Request 1: manifest -> missing.
		var onWire bytes.Buffer
		if _, err := wire.WriteManifest(&onWire, m); err != nil {
			t.Fatal(err)
		}
		nm, err := wire.ReadManifest(&onWire)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := store.PutManifest(nm)
		if err != nil {
			t.Fatal(err)
		}
		missing, err := store.Missing(nm)
		if err != nil {
			t.Fatal(err)
		}
		// Request 2: blobs.
		plan, err := NewPlan(m, missing)
		if err != nil {
			t.Fatal(err)
		}
		var stream bytes.Buffer
		var last Progress
		pr, err := plan.Send(ctx, &stream, app, func(p Progress) { last = p })
		if err != nil {
			t.Fatal(err)
		}
		if !last.Done || last.Blobs != len(plan.Blobs) || last.Bytes != plan.Bytes || pr.WireBytes != int64(stream.Len()) {
			t.Fatalf("progress = %+v, final %+v, plan %d blobs %d bytes, wire %d", last, pr, len(plan.Blobs), plan.Bytes, stream.Len())
		}
		if _, err := store.Receive(ctx, &stream); err != nil {
			t.Fatal(err)
		}
		// Request 3: assemble from the kept manifest.
		km, err := store.Manifest(digest)
		if err != nil {
			t.Fatal(err)
		}
		name, err := instance.NextName(www, "demo", later())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Assemble(ctx, km, filepath.Join(www, name)); err != nil {
			t.Fatal(err)
		}
		store.RemoveManifest(digest)
		return filepath.Join(www, name), pr
	}

	inst, pr := update()
	if pr.Blobs != 4 {
		t.Errorf("first upload sent %d blobs, want 4 (app.ini, main.py, start, css once)", pr.Blobs)
	}
	sameTree(t, app, inst)

	if err := os.WriteFile(filepath.Join(app, "static/style.css"), []byte("body{color:red}"), 0o644); err != nil {
		t.Fatal(err)
	}
	inst2, pr := update()
	if pr.Blobs != 1 || pr.Bytes != int64(len("body{color:red}")) {
		t.Errorf("second upload: %+v, want only the changed file", pr)
	}
	sameTree(t, app, inst2)

	_, pr = update()
	if pr.Blobs != 0 {
		t.Errorf("unchanged upload sent %d blobs", pr.Blobs)
	}
}

// sameTree compares an app directory with an assembled instance: the same
// paths, types, contents, executable bits and link targets.
func sameTree(t *testing.T, src, inst string) {
	t.Helper()
	seen := map[string]bool{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(src, p)
		seen[rel] = true
		a, _ := os.Lstat(p)
		b, err := os.Lstat(filepath.Join(inst, rel))
		if err != nil {
			t.Errorf("%s: missing in instance", rel)
			return nil
		}
		if a.Mode().Type() != b.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, b.Mode().Type(), a.Mode().Type())
			return nil
		}
		switch {
		case a.Mode().IsRegular():
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(filepath.Join(inst, rel))
			if !bytes.Equal(x, y) {
				t.Errorf("%s: content differs", rel)
			}
			if (a.Mode()&0o111 != 0) != (b.Mode()&0o111 != 0) {
				t.Errorf("%s: executable bit differs", rel)
			}
		case a.Mode()&fs.ModeSymlink != 0:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(filepath.Join(inst, rel))
			if x != y {
				t.Errorf("%s: link target %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	filepath.WalkDir(inst, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(inst, p)
		if !seen[rel] {
			t.Errorf("%s: in the instance, not in the app", rel)
		}
		return nil
	})
}

func TestSend_FileChangedAfterManifest(t *testing.T) {
	ctx := context.Background()
	app := t.TempDir()
	writeTree(t, app, map[string]string{"a": "original", "b": "other"})
	m, _, err := Build(ctx, app, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var missing []wire.Hash
	for _, e := range m.Entries {
		missing = append(missing, e.Hash)
	}
	plan, _ := NewPlan(m, missing)
	os.WriteFile(filepath.Join(app, "a"), []byte("ORIGINAL"), 0o644)
	var stream bytes.Buffer
	_, err = plan.Send(ctx, &stream, app, nil)
	if !errors.Is(err, wire.ErrBlobHashMismatch) || !strings.Contains(err.Error(), "upload a:") {
		t.Fatalf("err = %v, want a hash mismatch naming a", err)
	}
	store, _ := blobstore.Open(t.TempDir(), blobstore.Options{NoSync: true})
	if _, err := store.Receive(ctx, &stream); err == nil {
		t.Fatal("node accepted the stream of a failed send")
	}
}

func TestSend_Canceled(t *testing.T) {
	app := t.TempDir()
	writeTree(t, app, map[string]string{"a": "x"})
	m, _, _ := Build(context.Background(), app, Options{})
	plan, _ := NewPlan(m, []wire.Hash{m.Entries[0].Hash})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := plan.Send(ctx, io.Discard, app, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
