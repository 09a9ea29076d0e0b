package backuparchive

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/service"
)

// makeBackup writes a backup directory with a manifest that vouches for
// its files.
func makeBackup(t *testing.T, dir string) *service.Manifest {
	t.Helper()
	files := map[string][]byte{
		"postgresql/postgresql.pgdump":     bytes.Repeat([]byte("PGDMP\x00\x01"), 50000),
		"postgresql/postgresql.README.txt": []byte("made by pg_dump\n"),
		"files/files.tar":                  bytes.Repeat([]byte{0, 1, 2, 3, 255}, 100000),
	}
	m := &service.Manifest{Format: service.BackupFormat, Version: service.BackupVersion, App: "blog", Created: time.Now().UTC().Truncate(time.Second)}
	for _, svc := range []string{"files", "postgresql"} {
		sf := service.ServiceFiles{Name: svc}
		for p, data := range files {
			if !strings.HasPrefix(p, svc+"/") {
				continue
			}
			real := filepath.Join(dir, p)
			os.MkdirAll(filepath.Dir(real), 0o700)
			if err := os.WriteFile(real, data, 0o600); err != nil {
				t.Fatal(err)
			}
			size, sum, _ := service.SumFile(real)
			sf.Files = append(sf.Files, service.FileEntry{Path: p, Size: size, SHA256: sum})
		}
		m.Services = append(m.Services, sf)
	}
	data, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, service.ManifestName), data, 0o600)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("a backup\n"), 0o600)
	return m
}

func sameTree(t *testing.T, a, b string) {
	t.Helper()
	filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs: %v", rel, err)
		}
		return nil
	})
}

func TestRoundTrip(t *testing.T) {
	work := t.TempDir()
	src := filepath.Join(work, "src")
	want := makeBackup(t, src)

	// node -> client, as a directory and as a .tar.gz
	var stream bytes.Buffer
	if err := WriteDir(&stream, src); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "got")
	m, err := ReceiveDir(bytes.NewReader(stream.Bytes()), dir)
	if err != nil || m.App != "blog" || m.Size() != want.Size() {
		t.Fatalf("receive dir: %v", err)
	}
	sameTree(t, src, dir)
	archive := filepath.Join(work, "b.tar.gz")
	if _, err := ReceiveArchive(bytes.NewReader(stream.Bytes()), archive); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(archive); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v", fi.Mode())
	}

	// client -> node, from both
	for _, p := range []string{dir, archive} {
		l, err := OpenLocal(p)
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		var up bytes.Buffer
		if err := l.Send(&up); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(work, "up-"+filepath.Base(p))
		if _, err := ExtractDir(&up, out); err != nil {
			t.Fatalf("extract from %s: %v", p, err)
		}
		sameTree(t, src, out)
	}
}

func TestRefused(t *testing.T) {
	work := t.TempDir()
	src := filepath.Join(work, "src")
	makeBackup(t, src)
	var stream bytes.Buffer
	WriteDir(&stream, src)
	data := stream.Bytes()

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:len(data)/2], "truncated"},
		{"cut in the last file", data[:len(data)-3000], "truncated"},
		{"garbage", []byte("hello"), "truncated or not a tar"},
		{"empty", nil, "not a toppcloud backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(work, "x-"+strings.ReplaceAll(tc.name, " ", "-"))
			_, err := ExtractDir(bytes.NewReader(tc.data), out)
			if !errors.Is(err, service.ErrBadBackup) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a partial directory was left")
			}
		})
	}

	// A file changed after the manifest was made.
	os.WriteFile(filepath.Join(src, "files/files.tar"), []byte("other"), 0o600)
	if _, err := OpenLocal(src); !errors.Is(err, service.ErrBadBackup) || !strings.Contains(err.Error(), "files/files.tar") {
		t.Errorf("tampered: %v", err)
	}
	// A truncated .tar.gz.
	archive := filepath.Join(work, "b.tar.gz")
	if _, err := ReceiveArchive(bytes.NewReader(data), archive); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(archive)
	os.WriteFile(archive, raw[:len(raw)-100], 0o600)
	if _, err := OpenLocal(archive); !errors.Is(err, service.ErrBadBackup) {
		t.Errorf("truncated archive: %v", err)
	}
	if _, err := OpenLocal(filepath.Join(work, "nothing")); err == nil {
		t.Error("a missing backup was accepted")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		kind Kind
		ok   bool
	}{
		{"remote:nightly-1", Remote, true},
		{"remote:../x", Remote, false},
		{"remote:", Remote, false},
		{"backup/", Dir, true},
		{"b.tar.gz", Archive, true},
		{"b.tgz", Archive, true},
		{"b.zip", Dir, false},
		{"ssh://host/x", Dir, false},
		{"rsync:x", Dir, false},
		{"./a:b", Dir, true},
	} {
		kind, _, err := Parse(tc.arg)
		if (err == nil) != tc.ok || (tc.ok && kind != tc.kind) {
			t.Errorf("%s: %v %v", tc.arg, kind, err)
		}
	}
}
