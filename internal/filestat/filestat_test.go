package filestat

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func stat(t *testing.T, p string) (ID, bool) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return Of(fi)
}

// TestOf: a write changes the ID even when the mtime is put back, and so
// does replacing the file by rename.
func TestOf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(p, past, past)
	first, full := stat(t, p)
	if want := runtime.GOOS == "linux" || runtime.GOOS == "darwin"; full != want {
		t.Fatalf("full = %v on %s", full, runtime.GOOS)
	}
	if again, _ := stat(t, p); again != first {
		t.Fatalf("the ID of an untouched file changed: %+v -> %+v", first, again)
	}
	if !full {
		t.Skip("no inode and ctime here")
	}
	// Same size, mtime set back: only ctime tells.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, past, past)
	second, _ := stat(t, p)
	if second == first || second.MtimeNs != first.MtimeNs || second.CtimeNs == first.CtimeNs {
		t.Errorf("rewrite with the mtime put back: %+v -> %+v", first, second)
	}
	// A replacement has another inode.
	q := filepath.Join(dir, "g")
	os.WriteFile(q, []byte("two"), 0o644)
	os.Chtimes(q, past, past)
	if err := os.Rename(q, p); err != nil {
		t.Fatal(err)
	}
	if third, _ := stat(t, p); third.Ino == second.Ino {
		t.Errorf("replacement kept the inode: %+v", third)
	}
}
