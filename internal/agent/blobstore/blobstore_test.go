package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

// tree is a test application: path -> content; "dir/" is a directory,
// "-> x" a symlink, a name ending in "*" an executable.
type tree map[string]string

func (tr tree) manifest() *wire.Manifest {
	m := &wire.Manifest{}
	for name, content := range tr {
		switch {
		case strings.HasSuffix(name, "/"):
			m.Entries = append(m.Entries, wire.Entry{Path: strings.TrimSuffix(name, "/"), Type: wire.EntryDir})
		case strings.HasPrefix(content, "-> "):
			m.Entries = append(m.Entries, wire.Entry{Path: name, Type: wire.EntrySymlink, Target: content[3:]})
		default:
			p, exec := strings.CutSuffix(name, "*")
			m.Entries = append(m.Entries, wire.Entry{Path: p, Type: wire.EntryFile, Exec: exec, Size: int64(len(content)), Hash: sha256.Sum256([]byte(content))})
		}
	}
	slices.SortFunc(m.Entries, func(a, b wire.Entry) int { return strings.Compare(a.Path, b.Path) })
	return m
}

// content returns the bytes of a hash in the tree.
func (tr tree) content(h wire.Hash) []byte {
	for _, c := range tr {
		if sha256.Sum256([]byte(c)) == h {
			return []byte(c)
		}
	}
	panic("no content for " + h.String())
}

// stream builds the blob stream a client sends for missing, with the
// variants the manifest uses.
func (tr tree) stream(t *testing.T, missing []wire.Hash) []byte {
	t.Helper()
	m := tr.manifest()
	variants := map[wire.Hash]wire.BlobVariants{}
	for _, e := range m.Entries {
		if e.Type == wire.EntryFile {
			if e.Exec {
				variants[e.Hash] |= wire.VariantExec
			} else {
				variants[e.Hash] |= wire.VariantPlain
			}
		}
	}
	var buf bytes.Buffer
	w, err := wire.NewBlobWriter(&buf, wire.BlobWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range missing {
		c := tr.content(h)
		if err := w.WriteBlob(wire.BlobHeader{Hash: h, Size: int64(len(c)), Variants: variants[h]}, bytes.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var sample = tree{
	"app.ini":         "[production]\napp_name = demo\n",
	"bin/":            "",
	"bin/run*":        "#!/bin/sh\necho hi\n",
	"bin/same*":       "shared content\n",
	"lib/":            "",
	"lib/__init__.py": "",
	"lib/same.txt":    "shared content\n",
	"lib/copy.txt":    "[production]\napp_name = demo\n",
	"static/":         "",
	"static/app":      "-> ../app.ini",
	"static/index":    "<h1>hi</h1>\n",
	"empty/":          "",
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "blobs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func receive(t *testing.T, s *Store, tr tree) ReceiveStats {
	t.Helper()
	missing, err := s.Missing(tr.manifest())
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Receive(context.Background(), bytes.NewReader(tr.stream(t, missing)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func tmpFiles(t *testing.T, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(s.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestReceive_MissingThenNothingMissing(t *testing.T) {
	s := openStore(t)
	m := sample.manifest()
	missing, err := s.Missing(m)
	if err != nil {
		t.Fatal(err)
	}
	// Unique non-empty contents: app.ini (= lib/copy.txt), run, shared, index.
	if len(missing) != 4 {
		t.Fatalf("missing = %d hashes, want 4", len(missing))
	}
	st := receive(t, s, sample)
	if st.Blobs != 4 || st.Present != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if again, _ := s.Missing(m); len(again) != 0 {
		t.Fatalf("after receive, missing = %v", again)
	}
	if n := tmpFiles(t, s); len(n) != 0 {
		t.Fatalf("temporary files left: %v", n)
	}
	shared := wire.Hash(sha256.Sum256([]byte("shared content\n")))
	for _, exec := range []bool{false, true} {
		fi, err := os.Stat(s.blobPath(shared, exec))
		if err != nil {
			t.Fatalf("variant exec=%v: %v", exec, err)
		}
		if want := modeFor(exec); fi.Mode().Perm() != want {
			t.Errorf("variant exec=%v: mode %v, want %v", exec, fi.Mode().Perm(), want)
		}
	}
	if a, b := statIno(t, s.blobPath(shared, false)), statIno(t, s.blobPath(shared, true)); a == b {
		t.Error("the two variants share an inode")
	}
	// Receiving the same blobs again keeps the stored files.
	before := statIno(t, s.blobPath(shared, false))
	st, err = s.Receive(context.Background(), bytes.NewReader(sample.stream(t, missing)))
	if err != nil || st.Present != 5 {
		t.Fatalf("second receive: %+v %v", st, err)
	}
	if statIno(t, s.blobPath(shared, false)) != before {
		t.Error("an existing blob was replaced")
	}
}

func statIno(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestReceive_Interrupted(t *testing.T) {
	s := openStore(t)
	// Codecs decode whole blocks (S2: 1 MB): blobs bigger than that show
	// that the part before a cut is kept.
	tr := tree{"a": strings.Repeat("a", 1500000), "b": strings.Repeat("b", 1500000), "c": strings.Repeat("c", 3000000)}
	missing, _ := s.Missing(tr.manifest())
	full := tr.stream(t, missing)
	// Cut in the last blob: the first ones arrive, the cut one does not.
	for _, cut := range []int{len(full) - 20, len(full) / 2, 10, 3} {
		st, err := s.Receive(context.Background(), bytes.NewReader(full[:cut]))
		if !errors.Is(err, wire.ErrBlobStreamTruncated) {
			t.Fatalf("cut at %d: err = %v, want truncated", cut, err)
		}
		if n := tmpFiles(t, s); len(n) != 0 {
			t.Fatalf("cut at %d: temporary files left: %v", cut, n)
		}
		_ = st
	}
	rest, _ := s.Missing(tr.manifest())
	if len(rest) == 0 || len(rest) == len(missing) {
		t.Fatalf("after cuts, %d of %d missing: verified blobs should be kept, the cut one not", len(rest), len(missing))
	}
	// The retry sends only the rest.
	if _, err := s.Receive(context.Background(), bytes.NewReader(tr.stream(t, rest))); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Missing(tr.manifest()); len(again) != 0 {
		t.Fatalf("still missing %v", again)
	}
}

func TestReceive_BadBlobNotStored(t *testing.T) {
	s := openStore(t)
	good := wire.Hash(sha256.Sum256([]byte("good")))
	evil := wire.Hash(sha256.Sum256([]byte("evil")))
	// A writer whose source changed under it sends the changed bytes
	// under the announced hash, then stops without an end frame.
	var buf bytes.Buffer
	w, _ := wire.NewBlobWriter(&buf, wire.BlobWriterOptions{})
	if err := w.WriteBlob(wire.BlobHeader{Hash: good, Size: 4, Variants: wire.VariantPlain}, strings.NewReader("good")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlob(wire.BlobHeader{Hash: evil, Size: 4, Variants: wire.VariantPlain}, strings.NewReader("EVIL")); err == nil {
		t.Fatal("writer accepted wrong content")
	}
	w.Close()
	st, err := s.Receive(context.Background(), bytes.NewReader(buf.Bytes()))
	if !errors.Is(err, wire.ErrBlobHashMismatch) {
		t.Fatalf("err = %v, want hash mismatch", err)
	}
	if st.Blobs != 1 || !s.has(good, false, 4) {
		t.Fatalf("the verified blob before the bad one was not kept: %+v", st)
	}
	if _, err := os.Lstat(s.blobPath(evil, false)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a blob with wrong content was stored")
	}
	if n := tmpFiles(t, s); len(n) != 0 {
		t.Fatalf("temporary files left: %v", n)
	}
}

func TestReceive_CleansStaleTemp(t *testing.T) {
	s := openStore(t)
	old := filepath.Join(s.tmpDir(), "recv-killed")
	fresh := filepath.Join(s.tmpDir(), "recv-running")
	os.WriteFile(old, []byte("half"), 0o600)
	os.WriteFile(fresh, []byte("half"), 0o600)
	past := time.Now().Add(-2 * DefaultTempAge)
	os.Chtimes(old, past, past)
	receive(t, s, tree{"a": "x"})
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Error("stale temporary file not removed")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a fresh temporary file (an upload under way) was removed")
	}
}

func TestReceive_Concurrent(t *testing.T) {
	s := openStore(t)
	tr := tree{"a": strings.Repeat("x", 50000), "b": "y", "c*": "z"}
	missing, _ := s.Missing(tr.manifest())
	stream := tr.stream(t, missing)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := s.Receive(context.Background(), bytes.NewReader(stream))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := s.Missing(tr.manifest()); len(again) != 0 {
		t.Fatalf("missing after concurrent receives: %v", again)
	}
}

func TestManifestKeep(t *testing.T) {
	s := openStore(t)
	m := sample.manifest()
	d, err := s.PutManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := m.Digest(); d != want {
		t.Fatal("digest differs")
	}
	got, err := s.Manifest(d)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := got.Digest(); g != d {
		t.Fatal("kept manifest differs")
	}
	os.WriteFile(filepath.Join(s.manifestsDir(), d.String()), []byte("junk"), 0o600)
	if _, err := s.Manifest(d); err == nil {
		t.Fatal("damaged manifest accepted")
	}
	s.RemoveManifest(d)
	if _, err := s.Manifest(d); !errors.Is(err, ErrNoManifest) {
		t.Fatalf("err = %v, want ErrNoManifest", err)
	}
	if err := s.RemoveManifest(d); err != nil {
		t.Fatal(err)
	}
}

func TestAssemble(t *testing.T) {
	s := openStore(t)
	receive(t, s, sample)
	www := t.TempDir()
	inst := filepath.Join(www, "demo.2026-01-02_001")
	st, err := s.Assemble(context.Background(), sample.manifest(), inst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 7 || st.Linked != 6 || st.Copied != 0 || st.Dirs != 4 || st.Symlinks != 1 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := os.Stat(PartialPath(inst)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("partial directory left")
	}
	root := os.Geteuid() == 0
	err = filepath.WalkDir(inst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(inst, p)
		switch {
		case fi.IsDir():
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want 0755", rel, fi.Mode().Perm())
			}
		case fi.Mode().IsRegular():
			if fi.Mode().Perm()&0o222 != 0 {
				t.Errorf("%s: writable (%v)", rel, fi.Mode().Perm())
			}
			wantExec := strings.HasPrefix(rel, "bin/")
			if (fi.Mode().Perm()&0o111 != 0) != wantExec {
				t.Errorf("%s: mode %v, exec want %v", rel, fi.Mode().Perm(), wantExec)
			}
		}
		if root {
			if sys := fi.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
				t.Errorf("%s: owned by %d:%d, want root", rel, sys.Uid, sys.Gid)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"app.ini": sample["app.ini"], "lib/copy.txt": sample["app.ini"], "bin/same": "shared content\n",
		"lib/same.txt": "shared content\n", "static/app": sample["app.ini"], "lib/__init__.py": "",
	} {
		got, err := os.ReadFile(filepath.Join(inst, p))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	if target, _ := os.Readlink(filepath.Join(inst, "static/app")); target != "../app.ini" {
		t.Errorf("symlink target %q", target)
	}
	// Files are the store's inodes.
	h := wire.Hash(sha256.Sum256([]byte(sample["app.ini"])))
	if statIno(t, filepath.Join(inst, "app.ini")) != statIno(t, s.blobPath(h, false)) {
		t.Error("app.ini is not a hard link to its blob")
	}
	if !root {
		t.Log("not root: ownership not checked")
	}

	// A second instance links the same blobs; the first is untouched.
	inst2 := filepath.Join(www, "demo.2026-01-02_002")
	if _, err := s.Assemble(context.Background(), sample.manifest(), inst2); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(s.blobPath(h, false))
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 5 {
		t.Errorf("app.ini blob has %d links, want 5 (store + 2 per instance)", n)
	}
	// An existing instance is never overwritten.
	if _, err := s.Assemble(context.Background(), sample.manifest(), inst); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("assemble over an instance: err = %v", err)
	}
}

func TestAssemble_MissingBlobLeavesNothing(t *testing.T) {
	s := openStore(t)
	receive(t, s, tree{"a": "present"})
	www := t.TempDir()
	inst := filepath.Join(www, "demo.2026-01-02_001")
	_, err := s.Assemble(context.Background(), tree{"a": "present", "d/": "", "d/b": "absent"}.manifest(), inst)
	if !errors.Is(err, ErrBlobMissing) || !strings.Contains(err.Error(), "d/b") {
		t.Fatalf("err = %v, want ErrBlobMissing naming d/b", err)
	}
	if des, _ := os.ReadDir(www); len(des) != 0 {
		t.Fatalf("left in www: %v", des)
	}
}

func TestAssemble_OtherVariant(t *testing.T) {
	s := openStore(t)
	receive(t, s, tree{"tool": "binary"})
	m := tree{"tool*": "binary"}.manifest()
	if missing, _ := s.Missing(m); len(missing) != 0 {
		t.Fatalf("content held as the other variant counted missing: %v", missing)
	}
	inst := filepath.Join(t.TempDir(), "demo.2026-01-02_001")
	st, err := s.Assemble(context.Background(), m, inst)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(inst, "tool"))
	if st.Variants != 1 || fi.Mode().Perm() != execBlobMode {
		t.Fatalf("stats %+v, mode %v", st, fi.Mode().Perm())
	}
}

func TestAssemble_CrossDevice(t *testing.T) {
	s := openStore(t)
	shm := "/dev/shm"
	var a, b syscall.Stat_t
	if syscall.Stat(shm, &a) != nil || syscall.Stat(s.Root(), &b) != nil || a.Dev == b.Dev {
		t.Skip("no second file system at /dev/shm")
	}
	www, err := os.MkdirTemp(shm, "blobstore-test-")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(www) })
	receive(t, s, sample)
	inst := filepath.Join(www, "demo.2026-01-02_001")
	st, err := s.Assemble(context.Background(), sample.manifest(), inst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Linked != 0 || st.Copied != 6 || !strings.Contains(st.CopyReason, "different file systems") {
		t.Fatalf("stats = %+v", st)
	}
	got, _ := os.ReadFile(filepath.Join(inst, "bin/run"))
	fi, _ := os.Stat(filepath.Join(inst, "bin/run"))
	if string(got) != sample["bin/run*"] || fi.Mode().Perm() != execBlobMode {
		t.Fatalf("copied bin/run: %q %v", got, fi.Mode())
	}
}

func TestAssemble_RefusesBadManifest(t *testing.T) {
	s := openStore(t)
	m := &wire.Manifest{Entries: []wire.Entry{
		{Path: "evil", Type: wire.EntrySymlink, Target: "/etc"},
	}}
	if _, err := s.Assemble(context.Background(), m, filepath.Join(t.TempDir(), "x.2026-01-01_001")); err == nil {
		t.Fatal("escaping symlink accepted")
	}
}

// TestAssemble_FillsAReservation: whoever names an instance reserves the
// name with its partial directory (instance.NextName); Assemble fills an
// empty one and refuses one with content.
func TestAssemble_FillsAReservation(t *testing.T) {
	s := openStore(t)
	receive(t, s, tree{"a": "x"})
	www := t.TempDir()
	names := []string{"demo.2026-01-01_001", "demo.2026-01-01_002"}
	for _, name := range names {
		if err := os.Mkdir(PartialPath(filepath.Join(www, name)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Assemble(context.Background(), tree{"a": "x"}.manifest(), filepath.Join(www, names[0])); err != nil {
		t.Fatal(err)
	}
	// A reservation that has content is not reused.
	p := PartialPath(filepath.Join(www, names[1]))
	os.WriteFile(filepath.Join(p, "junk"), nil, 0o644)
	if _, err := s.Assemble(context.Background(), tree{"a": "x"}.manifest(), filepath.Join(www, names[1])); err == nil {
		t.Fatal("assembled into a non-empty partial directory")
	}
}

func TestCleanPartial(t *testing.T) {
	www := t.TempDir()
	old := filepath.Join(www, ".demo.2026-01-01_001.partial")
	fresh := filepath.Join(www, ".demo.2026-01-01_002.partial")
	live := filepath.Join(www, "demo.2026-01-01_003")
	for _, d := range []string{old, fresh, live} {
		os.MkdirAll(filepath.Join(d, "sub"), 0o755)
		os.WriteFile(filepath.Join(d, "sub", "f"), nil, 0o444)
	}
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	os.Chtimes(live, past, past)
	n, err := CleanPartial(www, time.Hour, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	for d, want := range map[string]bool{old: false, fresh: true, live: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}

func TestGC(t *testing.T) {
	s := openStore(t)
	v1 := tree{"app.ini": "v1", "common": "same in both", "old": "only in v1"}
	v2 := tree{"app.ini": "v2", "common": "same in both", "new": "only in v2"}
	receive(t, s, v1)
	receive(t, s, v2)
	www := t.TempDir()
	i1, i2 := filepath.Join(www, "demo.2026-01-01_001"), filepath.Join(www, "demo.2026-01-01_002")
	if _, err := s.Assemble(context.Background(), v1.manifest(), i1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Assemble(context.Background(), v2.manifest(), i2); err != nil {
		t.Fatal(err)
	}
	st, err := s.GC(context.Background(), GCOptions{})
	if err != nil || st.Blobs != 0 {
		t.Fatalf("with both instances: %+v %v", st, err)
	}
	os.RemoveAll(i1)
	st, err = s.GC(context.Background(), GCOptions{DryRun: true})
	if err != nil || st.Blobs != 2 || st.Bytes != int64(len("v1")+len("only in v1")) {
		t.Fatalf("dry run: %+v %v", st, err)
	}
	if missing, _ := s.Missing(v1.manifest()); len(missing) != 0 {
		t.Fatal("dry run removed blobs")
	}
	// Keep spares what it names.
	st, _ = s.GC(context.Background(), GCOptions{DryRun: true, Keep: KeepManifests(tree{"x": "v1"}.manifest())})
	if st.Blobs != 1 || st.Kept != 1 {
		t.Fatalf("keep: %+v", st)
	}
	// An update under way (kept manifest) protects its blobs.
	d, _ := s.PutManifest(v1.manifest())
	st, _ = s.GC(context.Background(), GCOptions{})
	if st.Blobs != 0 || st.Kept != 2 {
		t.Fatalf("pending: %+v", st)
	}
	// Once stale, it no longer does, and goes itself.
	past := time.Now().Add(-2 * DefaultPendingAge)
	os.Chtimes(filepath.Join(s.manifestsDir(), d.String()), past, past)
	st, err = s.GC(context.Background(), GCOptions{})
	if err != nil || st.Blobs != 2 || st.Manifests != 1 {
		t.Fatalf("after stale: %+v %v", st, err)
	}
	missing, _ := s.Missing(v1.manifest())
	if len(missing) != 2 {
		t.Fatalf("missing after gc = %d, want 2", len(missing))
	}
	if again, _ := s.Missing(v2.manifest()); len(again) != 0 {
		t.Fatal("gc removed blobs of the remaining instance")
	}
	// The remaining instance still reads.
	if b, err := os.ReadFile(filepath.Join(i2, "common")); err != nil || string(b) != "same in both" {
		t.Fatal(err)
	}
}

// TestReceive_ManyBlobs covers the writer goroutines: many small blobs,
// an empty one, one larger than smallBlob (written by the reading
// goroutine) and one stored as both variants, then a bad blob, after
// which everything verified before it must be stored whole.
func TestReceive_ManyBlobs(t *testing.T) {
	s := openStore(t)
	type blob struct {
		data     []byte
		variants wire.BlobVariants
	}
	var blobs []blob
	for i := range 500 {
		blobs = append(blobs, blob{[]byte(strings.Repeat(fmt.Sprintf("blob %d\n", i), i%300)), wire.VariantPlain})
	}
	blobs = append(blobs,
		blob{bytes.Repeat([]byte("large "), smallBlob/4), wire.VariantExec},
		blob{[]byte("both variants\n"), wire.VariantPlain | wire.VariantExec},
	)
	var buf bytes.Buffer
	w, err := wire.NewBlobWriter(&buf, wire.BlobWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		h := wire.Hash(sha256.Sum256(b.data))
		if err := w.WriteBlob(wire.BlobHeader{Hash: h, Size: int64(len(b.data)), Variants: b.variants}, bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	bad := wire.Hash(sha256.Sum256([]byte("announced")))
	if err := w.WriteBlob(wire.BlobHeader{Hash: bad, Size: 4, Variants: wire.VariantPlain}, strings.NewReader("sent")); err == nil {
		t.Fatal("writer accepted wrong content")
	}
	w.Close()

	st, err := s.Receive(context.Background(), bytes.NewReader(buf.Bytes()))
	if !errors.Is(err, wire.ErrBlobHashMismatch) {
		t.Fatalf("err = %v, want hash mismatch", err)
	}
	// Blob 300 is empty like blob 0: counted, and present.
	if st.Blobs != len(blobs) || st.Present != 1 {
		t.Errorf("stats %+v for %d blobs, one of them twice", st, len(blobs))
	}
	for i, b := range blobs {
		h := wire.Hash(sha256.Sum256(b.data))
		for _, exec := range []bool{false, true} {
			want := b.variants&wire.VariantPlain != 0
			if exec {
				want = b.variants&wire.VariantExec != 0
			}
			if !want {
				continue
			}
			p := s.blobPath(h, exec)
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("blob %d (exec %v): %v", i, exec, err)
			}
			if !bytes.Equal(got, b.data) {
				t.Fatalf("blob %d (exec %v): %d bytes stored, want %d", i, exec, len(got), len(b.data))
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != modeFor(exec) {
				t.Errorf("blob %d (exec %v): mode %v", i, exec, fi.Mode())
			}
		}
	}
	if _, err := os.Lstat(s.blobPath(bad, false)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a blob with wrong content was stored")
	}
	if n := tmpFiles(t, s); len(n) != 0 {
		t.Fatalf("temporary files left: %v", n)
	}
}

// TestAssembleFor: an app's trees are not every local user's. Instance
// code is root's, its app group's and Caddy's (an ACL on the top
// directory, the gate); a private tree (the --config upload) is copies,
// directories 0750 and files 0640 of the app's group, never a blob's
// shared inode.
func TestAssembleFor(t *testing.T) {
	s := openStore(t)
	receive(t, s, sample)
	www := t.TempDir()
	const appGID, caddyGID = 4242, 4343
	var mu sync.Mutex
	owners := map[string]int{}
	// By final path: the tree is made under its partial name.
	chown := func(p string, uid, gid int) error {
		mu.Lock()
		defer mu.Unlock()
		dir, name := filepath.Split(p)
		for d := filepath.Clean(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if base := filepath.Base(d); strings.HasPrefix(base, ".") && strings.HasSuffix(base, PartialSuffix) {
				rel, _ := filepath.Rel(d, p)
				p = filepath.Join(filepath.Dir(d), strings.TrimSuffix(base[1:], PartialSuffix), rel)
				break
			}
		}
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, PartialSuffix) {
			p = filepath.Join(dir, strings.TrimSuffix(name[1:], PartialSuffix))
		}
		owners[p] = gid
		return nil
	}
	code := filepath.Join(www, "demo.2026-01-02_001")
	if _, err := s.AssembleFor(context.Background(), sample.manifest(), code, Access{Group: appGID, Readers: caddyGID, Chown: chown}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(code); fi.Mode().Perm() != 0o750 || owners[code] != appGID {
		t.Errorf("instance directory: mode %v group %d, want 0750 group %d", fi.Mode().Perm(), owners[code], appGID)
	}
	if !host.GroupReadGranted(code, caddyGID) {
		t.Error("Caddy's group may not read the instance directory")
	}
	h := wire.Hash(sha256.Sum256([]byte(sample["app.ini"])))
	if statIno(t, filepath.Join(code, "app.ini")) != statIno(t, s.blobPath(h, false)) {
		t.Error("instance code is not linked to its blobs")
	}

	config := filepath.Join(t.TempDir(), "config")
	st, err := s.AssembleFor(context.Background(), sample.manifest(), config, Access{Group: appGID, Readers: -1, Private: true, Chown: chown})
	if err != nil {
		t.Fatal(err)
	}
	if st.Linked != 0 {
		t.Errorf("%d files of a private tree are linked to blobs", st.Linked)
	}
	err = filepath.WalkDir(config, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(config, p)
		want := fs.FileMode(0o640)
		switch {
		case fi.IsDir():
			want = 0o750
		case fi.Mode()&fs.ModeSymlink != 0:
			want = fi.Mode().Perm()
		case strings.HasPrefix(rel, "bin/"):
			want = 0o750
		}
		if fi.Mode().Perm() != want || owners[p] != appGID {
			t.Errorf("%s: mode %v group %d, want %v group %d", rel, fi.Mode().Perm(), owners[p], want, appGID)
		}
		if fi.Mode().IsRegular() && fi.Size() > 0 {
			if sys := fi.Sys().(*syscall.Stat_t); sys.Nlink != 1 {
				t.Errorf("%s: %d links; a private file must be a copy", rel, sys.Nlink)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(config, "app.ini")); string(got) != sample["app.ini"] {
		t.Errorf("app.ini = %q", got)
	}
	if _, err := s.AssembleFor(context.Background(), sample.manifest(), filepath.Join(www, "x"), Access{Group: -1, Readers: -1, Private: true}); err == nil {
		t.Error("a private tree without a group was assembled")
	}
}
