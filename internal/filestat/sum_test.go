package filestat

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// later is a clock past the racy window of files made by the test.
func later() time.Time { return time.Now().Add(time.Hour) }

func sumAt(t *testing.T, path, record string, save bool, now time.Time) (string, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, hashed, err := sumOpen(f, path, record, save, now)
	if err != nil {
		t.Fatal(err)
	}
	return sum, hashed
}

func needInodes(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("sum records need an inode and a ctime")
	}
}

func TestSumFile_RecordSkipsHashing(t *testing.T) {
	needInodes(t)
	dir := t.TempDir()
	bin, rec := filepath.Join(dir, "bin"), filepath.Join(dir, "cache", "bin.sum")
	content := []byte("the agent binary")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, hashed := sumAt(t, bin, rec, true, later())
	if sum != sumOf(content) || !hashed {
		t.Fatalf("first: sum %s hashed %v, want %s hashed", sum, hashed, sumOf(content))
	}
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("no record written: %v", err)
	}
	// Prove the record is what answers: a record with another sum for
	// the same stat is believed.
	r, err := readRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	r.SHA256 = sumOf([]byte("what the record says"))
	if err := writeRecord(rec, r); err != nil {
		t.Fatal(err)
	}
	sum, hashed = sumAt(t, bin, rec, true, later())
	if hashed || sum != r.SHA256 {
		t.Fatalf("second: sum %s hashed %v, want the record's sum without hashing", sum, hashed)
	}
	// SumFile itself (real clock) trusts the record too.
	sum, hashed, err = SumFile(bin, rec, false)
	if err != nil || hashed || sum != r.SHA256 {
		t.Fatalf("SumFile: %s %v %v", sum, hashed, err)
	}
}

func TestSumFile_StaleRecordIsRehashed(t *testing.T) {
	needInodes(t)
	cases := []struct {
		name   string
		change func(t *testing.T, bin string) []byte // returns the new content
	}{
		{"same size, new content", func(t *testing.T, bin string) []byte {
			b := []byte("THE AGENT BINARY")
			writeInPlace(t, bin, b)
			return b
		}},
		{"new content, mtime put back", func(t *testing.T, bin string) []byte {
			fi, _ := os.Stat(bin)
			b := []byte("another binary!!")
			writeInPlace(t, bin, b)
			// touch -d: mtime as before; only ctime tells.
			if err := os.Chtimes(bin, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"replaced by rename", func(t *testing.T, bin string) []byte {
			b := []byte("the agent binary") // same content, size: a new inode still counts
			tmp := bin + ".new"
			if err := os.WriteFile(tmp, b, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, bin); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"grown", func(t *testing.T, bin string) []byte {
			b := []byte("the agent binary, longer")
			writeInPlace(t, bin, b)
			return b
		}},
		{"chmod", func(t *testing.T, bin string) []byte {
			if err := os.Chmod(bin, 0o700); err != nil {
				t.Fatal(err)
			}
			return []byte("the agent binary")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin, rec := filepath.Join(dir, "bin"), filepath.Join(dir, "bin.sum")
			if err := os.WriteFile(bin, []byte("the agent binary"), 0o755); err != nil {
				t.Fatal(err)
			}
			sumAt(t, bin, rec, true, later())
			// Timestamps must be able to move: the coarse clock ticks every
			// few ms.
			time.Sleep(20 * time.Millisecond)
			content := tc.change(t, bin)
			sum, hashed := sumAt(t, bin, rec, true, later())
			if !hashed || sum != sumOf(content) {
				t.Fatalf("after change: sum %s hashed %v, want %s hashed", sum, hashed, sumOf(content))
			}
			// And the new record is used from then on.
			if _, hashed := sumAt(t, bin, rec, true, later()); hashed {
				t.Fatal("the record of the changed file was not written")
			}
		})
	}
}

func writeInPlace(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSumFile_UntrustedRecords(t *testing.T) {
	needInodes(t)
	dir := t.TempDir()
	bin, other, rec := filepath.Join(dir, "bin"), filepath.Join(dir, "other"), filepath.Join(dir, "bin.sum")
	content := []byte("the agent binary")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(bin, other); err != nil {
		t.Fatal(err)
	}
	sumAt(t, bin, rec, true, later())
	// Same inode under another path: a record is for the path it names.
	if _, hashed := sumAt(t, other, rec, false, later()); !hashed {
		t.Error("a record of another path was trusted")
	}
	for name, data := range map[string]string{"garbage": "{not json", "empty": "", "old version": `{"version":0}`} {
		if err := os.WriteFile(rec, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if sum, hashed := sumAt(t, bin, rec, false, later()); !hashed || sum != sumOf(content) {
			t.Errorf("%s record: sum %s hashed %v", name, sum, hashed)
		}
	}
	// No record at all, and no place given.
	os.Remove(rec)
	if sum, hashed := sumAt(t, bin, "", true, later()); !hashed || sum != sumOf(content) {
		t.Errorf("no record path: sum %s hashed %v", sum, hashed)
	}
}

func TestSumFile_RacyFileNotRecorded(t *testing.T) {
	needInodes(t)
	dir := t.TempDir()
	bin, rec := filepath.Join(dir, "bin"), filepath.Join(dir, "bin.sum")
	if err := os.WriteFile(bin, []byte("just built"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Modified within the racy window of now: it could change again
	// without its timestamps moving.
	if _, hashed := sumAt(t, bin, rec, true, time.Now()); !hashed {
		t.Fatal("not hashed")
	}
	if _, err := os.Stat(rec); err == nil {
		t.Fatal("a racily fresh file was recorded")
	}
}

func TestRecordSum(t *testing.T) {
	needInodes(t)
	dir := t.TempDir()
	bin, rec := filepath.Join(dir, "toppcloud"), SidecarPath(filepath.Join(dir, "toppcloud"))
	if rec != filepath.Join(dir, ".toppcloud.sha256") {
		t.Fatalf("SidecarPath = %s", rec)
	}
	content := []byte("uploaded agent")
	if err := os.WriteFile(bin, content, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	// Another inode than the one written: no record.
	if err := RecordSum(bin, rec, sumOf(content), Inode(fi)+1); err == nil {
		t.Fatal("RecordSum accepted another inode")
	}
	if _, err := os.Stat(rec); err == nil {
		t.Fatal("a record was written for another inode")
	}
	// The caller's own inode: recorded, and trusted at once although
	// the file is fresh (the caller checked the content).
	if err := RecordSum(bin, rec, sumOf(content), Inode(fi)); err != nil {
		t.Fatal(err)
	}
	sum, hashed, err := SumFile(bin, rec, false)
	if err != nil || hashed || sum != sumOf(content) {
		t.Fatalf("SumFile after RecordSum: %s %v %v", sum, hashed, err)
	}
	if fi, err := os.Stat(rec); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("record mode: %v %v", fi, err)
	}
}
