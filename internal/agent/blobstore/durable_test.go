package blobstore

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

func openBoot(t *testing.T, root, boot string) *Store {
	t.Helper()
	s, err := Open(root, Options{BootID: boot})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func markers(t *testing.T, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(s.unsyncedDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != recoverLock {
			names = append(names, de.Name())
		}
	}
	return names
}

// damage overwrites a stored blob the way a crash can leave it: the
// right size, other bytes (blocks that never reached the disk).
func damage(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, fi.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func TestReceive_MarkedUnsyncedUntilSync(t *testing.T) {
	s := openBoot(t, filepath.Join(t.TempDir(), "blobs"), "boot1")
	receive(t, s, tree{"a": "one", "b": "two"})
	m := markers(t, s)
	if len(m) != 1 || !strings.HasPrefix(m[0], "boot1-") {
		t.Fatalf("markers after a receive: %v, want one of boot1", m)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if m := markers(t, s); len(m) != 0 {
		t.Fatalf("markers after Sync: %v", m)
	}
	// Nothing received, nothing marked.
	receive(t, s, tree{"a": "one"})
	if m := markers(t, s); len(m) != 0 {
		t.Fatalf("a receive of nothing left markers: %v", m)
	}
}

func TestSync_KeepsTheMarkerOfAReceiveUnderWay(t *testing.T) {
	s := openBoot(t, filepath.Join(t.TempDir(), "blobs"), "boot1")
	running, err := s.markUnsynced() // holds the lock, as Receive does
	if err != nil {
		t.Fatal(err)
	}
	receive(t, s, tree{"a": "one"}) // finished: its marker is free
	if m := markers(t, s); len(m) != 2 {
		t.Fatalf("markers: %v, want 2", m)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	m := markers(t, s)
	// (running.Name() is the name it was created under.)
	if want := "boot1-" + strings.TrimPrefix(filepath.Base(running.Name()), unsyncedNew); len(m) != 1 || m[0] != want {
		t.Fatalf("after Sync: %v, want only the running receive's %s", m, want)
	}
	running.Close()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if m := markers(t, s); len(m) != 0 {
		t.Fatalf("after the receive ended and another Sync: %v", m)
	}
}

// TestOpen_RechecksUnsyncedBlobsAfterACrash: a crash (a new boot) while
// blobs were unsynced: Open re-hashes the blobs written since the marker,
// removes the damaged ones, and Missing asks for them again.
func TestOpen_RechecksUnsyncedBlobsAfterACrash(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	before := openBoot(t, root, "boot1")

	// An older blob, synced long ago: outside any unsynced window.
	old := tree{"old": "synced long ago"}
	receive(t, before, old)
	if err := before.Sync(); err != nil {
		t.Fatal(err)
	}
	oldHash := wire.Hash(sha256.Sum256([]byte("synced long ago")))
	oldPath := before.blobPath(oldHash, false)
	// Damage it too, then date it before the window: the recovery must
	// not read what was synced (it would re-hash the whole store).
	damage(t, oldPath)
	longAgo := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(oldPath, longAgo, longAgo); err != nil {
		t.Fatal(err)
	}

	tr := tree{"good": "reached the disk", "lost": "never reached the disk", "gone*": "#!/bin/sh\n", "both": "same", "both-x*": "same"}
	receive(t, before, tr)
	lost := before.blobPath(sha256.Sum256([]byte("never reached the disk")), false)
	damage(t, lost)
	bothX := before.blobPath(sha256.Sum256([]byte("same")), true)
	damage(t, bothX)
	// The same boot (an agent killed, the page cache intact): nothing to
	// check, the marker stays for Sync.
	same := openBoot(t, root, "boot1")
	if r := same.Recovered(); r.Checked != 0 || len(markers(t, same)) != 1 {
		t.Fatalf("same boot: recovery %+v, markers %v", r, markers(t, same))
	}

	after := openBoot(t, root, "boot2")
	r := after.Recovered()
	// good, lost, gone.x, both, both.x
	if r.Checked != 5 || r.Removed != 2 || r.Since.IsZero() {
		t.Fatalf("recovery = %+v, want 5 checked, 2 removed", r)
	}
	if _, err := os.Stat(lost); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the damaged blob is still there")
	}
	if _, err := os.Stat(bothX); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the damaged executable variant is still there")
	}
	if !after.has(sha256.Sum256([]byte("reached the disk")), false, int64(len("reached the disk"))) {
		t.Error("a good blob was removed")
	}
	if m := markers(t, after); len(m) != 0 {
		t.Errorf("markers left after recovery: %v", m)
	}
	// The lost content is asked for again (the plain variant of "same"
	// survived, so that content is not missing: Assemble copies it).
	missing, err := after.Missing(tr.manifest())
	if err != nil || len(missing) != 1 || missing[0] != sha256.Sum256([]byte("never reached the disk")) {
		t.Fatalf("missing after recovery: %v %v", missing, err)
	}
	receive(t, after, tr)
	if err := after.Sync(); err != nil {
		t.Fatal(err)
	}
	inst := filepath.Join(t.TempDir(), "www", "app.2026-01-01_001")
	os.MkdirAll(filepath.Dir(inst), 0o755)
	if _, err := after.Assemble(t.Context(), tr.manifest(), inst); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"lost": "never reached the disk", "both-x": "same", "gone": "#!/bin/sh\n"} {
		if b, err := os.ReadFile(filepath.Join(inst, name)); err != nil || string(b) != content {
			t.Errorf("%s after recovery and a new upload: %q %v", name, b, err)
		}
	}

	// What was synced before the window was not read: still damaged.
	if b, _ := os.ReadFile(oldPath); string(b) == "synced long ago" {
		t.Error("the recovery re-read a blob from before the unsynced window")
	}
	// Another open finds nothing to do.
	if r := openBoot(t, root, "boot2").Recovered(); r != (RecoveryStats{}) {
		t.Errorf("second open after recovery: %+v", r)
	}
}

func TestSync_NoSyncLeavesNoMarkers(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "blobs"), Options{NoSync: true, BootID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	receive(t, s, tree{"a": "one"})
	if m := markers(t, s); len(m) != 0 {
		t.Fatalf("NoSync left markers: %v", m)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestCleanTemp_RemovesHalfMadeMarkers(t *testing.T) {
	s := openBoot(t, filepath.Join(t.TempDir(), "blobs"), "b")
	old := filepath.Join(s.unsyncedDir(), unsyncedNew+"killed")
	fresh := filepath.Join(s.unsyncedDir(), unsyncedNew+"making")
	os.WriteFile(old, nil, 0o600)
	os.WriteFile(fresh, nil, 0o600)
	past := time.Now().Add(-2 * DefaultTempAge)
	os.Chtimes(old, past, past)
	if _, err := s.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Error("an old half-made marker was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a marker being made was removed")
	}
	// Half-made markers are no crash evidence: they never covered a blob.
	if r := openBoot(t, s.Root(), "other boot").Recovered(); r.Checked != 0 || !r.Since.IsZero() {
		t.Errorf("a half-made marker started a recovery: %+v", r)
	}
}
