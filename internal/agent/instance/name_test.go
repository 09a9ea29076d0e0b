package instance

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
)

func TestNextName(t *testing.T) {
	day := time.Date(2026, 3, 19, 23, 59, 0, 0, time.Local)
	tests := []struct {
		name     string
		existing []string
		app      string
		want     string
	}{
		{"first", nil, "blog", "blog.2026-03-19_001"},
		{"after others", []string{"blog.2026-03-19_001", "blog.2026-03-19_002"}, "blog", "blog.2026-03-19_003"},
		{"max not count", []string{"blog.2026-03-19_001", "blog.2026-03-19_007"}, "blog", "blog.2026-03-19_008"},
		{"new day restarts", []string{"blog.2026-03-18_004"}, "blog", "blog.2026-03-19_001"},
		{"other apps ignored", []string{"blog-x.2026-03-19_005", "blo.2026-03-19_006", "blogx.2026-03-19_009"}, "blog", "blog.2026-03-19_001"},
		{"partial counts", []string{".blog.2026-03-19_004.partial"}, "blog", "blog.2026-03-19_005"},
		{"junk ignored", []string{"blog.2026-03-19_abc", "blog.2026-03-19_", "blog.2026-03-19_-5"}, "blog", "blog.2026-03-19_001"},
		{"past 999", []string{"blog.2026-03-19_999"}, "blog", "blog.2026-03-19_1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			www := t.TempDir()
			for _, e := range tt.existing {
				os.Mkdir(filepath.Join(www, e), 0o755)
			}
			got, err := NextName(www, tt.app, day)
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			if fi, err := os.Stat(blobstore.PartialPath(filepath.Join(www, got))); err != nil || !fi.IsDir() {
				t.Fatal("name not reserved")
			}
		})
	}
	// A failed instance's directory is removed; its number is not issued
	// again (systemd still knows the unit of that name, its journal lines
	// carry it).
	www := t.TempDir()
	first, _ := NextName(www, "blog", day)
	if err := os.Remove(blobstore.PartialPath(filepath.Join(www, first))); err != nil {
		t.Fatal(err)
	}
	if second, err := NextName(www, "blog", day); err != nil || second != "blog.2026-03-19_002" {
		t.Errorf("after removing %s: got %q, %v; want blog.2026-03-19_002", first, second, err)
	}
	if next, _ := NextName(www, "blog", day.Add(24*time.Hour)); next != "blog.2026-03-20_001" {
		t.Errorf("next day: got %q, want numbering to restart", next)
	}
	for _, bad := range []string{"", "a.b", "../x", "A", "a/b"} {
		if _, err := NextName(t.TempDir(), bad, day); err == nil {
			t.Errorf("app %q accepted", bad)
		}
	}
}

func TestNextName_Concurrent(t *testing.T) {
	www := t.TempDir()
	now := time.Now()
	const n = 16
	names := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name, err := NextName(www, "demo", now)
			if err != nil {
				t.Error(err)
			}
			names[i] = name
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			t.Fatalf("name %s given twice: %v", name, names)
		}
		seen[name] = true
	}
}

func ExampleNextName() {
	www, _ := os.MkdirTemp("", "www")
	defer os.RemoveAll(www)
	day := time.Date(2010, 3, 19, 12, 0, 0, 0, time.Local)
	a, _ := NextName(www, "blog", day)
	b, _ := NextName(www, "blog", day)
	fmt.Println(a, b)
	// Output: blog.2010-03-19_001 blog.2010-03-19_002
}
