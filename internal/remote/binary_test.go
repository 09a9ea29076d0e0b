package remote

import (
	"os"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/filestat"
)

// TestBinary_CacheRecord: with a CacheDir, the checksum comes from the
// record while it matches the binary, and from hashing once it does not.
func TestBinary_CacheRecord(t *testing.T) {
	real := testBinary(t)
	want, err := real.SHA256()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	fi, err := os.Stat(real.Path)
	if err != nil {
		t.Fatal(err)
	}
	// A record with another sum, as if made earlier: believed.
	recorded := strings.Repeat("ab", 32)
	if err := filestat.RecordSum(real.Path, sumRecordPath(cache, real.Path), recorded, filestat.Inode(fi)); err != nil {
		t.Fatal(err)
	}
	cached := LocalBinary(real.Path)
	cached.CacheDir = cache
	if got, err := cached.SHA256(); err != nil || got != recorded {
		t.Fatalf("with a matching record: %s, %v; want the record's %s", got, err, recorded)
	}
	// The binary changes: the record no longer matches and the file is
	// hashed.
	data, err := os.ReadFile(real.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real.Path, append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	changed := LocalBinary(real.Path)
	changed.CacheDir = cache
	got, err := changed.SHA256()
	if err != nil || got == recorded || got == want {
		t.Fatalf("after a change: %s, %v (record %s, old sum %s)", got, err, recorded, want)
	}
}
