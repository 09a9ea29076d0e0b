package files_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/files"
	"github.com/toppcloud/toppcloud/internal/service/servicetest"
)

// testHost is a fake node with two app users.
func testHost(t *testing.T) *host.Host {
	h := hosttest.New(t, nil)
	hosttest.WriteFile(t, h.Root, "/etc/passwd", hosttest.Passwd+
		"app-blog:x:1001:1001::/nonexistent:/usr/sbin/nologin\n"+
		"app-wiki:x:1002:1002::/nonexistent:/usr/sbin/nologin\n")
	hosttest.WriteFile(t, h.Root, "/etc/group", hosttest.Group+"app-blog:x:1001:\napp-wiki:x:1002:\ncaddy:x:110:\n")
	return h
}

func apps() [2]service.App {
	return [2]service.App{
		{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog", User: "app-blog"},
		{Name: "wiki", DataDir: "/var/lib/toppcloud/apps/wiki", User: "app-wiki"},
	}
}

// WriteTree writes a round's files under dir (a real path): a nested
// file, a binary one, an empty one, an executable, a symlink.
func WriteTree(t testing.TB, dir, round string) {
	t.Helper()
	sub := filepath.Join(dir, round, "deep", "er")
	if err := os.MkdirAll(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 70000)
	for i := range bin {
		bin[i] = byte(i*7 + len(round))
	}
	for name, data := range map[string][]byte{
		round + "/note.txt":      []byte("round " + round + "\n"),
		round + "/deep/er/b.bin": bin,
		round + "/empty":         nil,
		round + "/run.sh":        []byte("#!/bin/sh\necho hi\n"),
		round + "/ünïcødé name":  []byte("x"),
		round + "/deep/er/.dot":  []byte("hidden"),
	} {
		mode := fs.FileMode(0o640)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o750
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("note.txt", filepath.Join(dir, round, "link")); err != nil {
		t.Fatal(err)
	}
}

// ReadTree lists every entry under dir with its type, mode and sha256.
func ReadTree(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, target))
		case fi.IsDir():
			lines = append(lines, fmt.Sprintf("%s/ %v", rel, fi.Mode().Perm()))
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %x %s", rel, fi.Mode().Perm(), sha256.Sum256(data), fi.ModTime().UTC()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestFiles_Contract(t *testing.T) {
	h := testHost(t)
	s := files.New(service.Node{Host: h})
	servicetest.Run(t, servicetest.Opt{
		Service:   s,
		Host:      h,
		Apps:      apps(),
		Vars:      []string{"CONFIG_FILES"},
		BackupDir: "/var/lib/toppcloud/backups",
		Write: func(t testing.TB, app service.App, env map[string]string, round string) {
			WriteTree(t, h.Path(env["CONFIG_FILES"]), round)
		},
		Read: func(t testing.TB, app service.App, env map[string]string) string {
			return ReadTree(t, h.Path(files.Dir(app)))
		},
		// Without root there are no real users: the fake node shows the
		// owner and mode that keep other apps out.
		CrossRead: func(t testing.TB, app service.App, env map[string]string, victim service.App) error {
			a, _, err := h.Stat(files.Dir(victim))
			if err != nil {
				return err
			}
			if a.User == app.User || a.Group == app.User || a.Mode&0o007 != 0 {
				return nil
			}
			return fmt.Errorf("%s is %s", files.Dir(victim), a)
		},
	})
}

func TestFiles_Setup(t *testing.T) {
	h := testHost(t)
	s := files.New(service.Node{Host: h})
	app := apps()[0]
	env, err := s.Setup(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	if env["CONFIG_FILES"] != "/var/lib/toppcloud/apps/blog/files" {
		t.Errorf("env %v", env)
	}
	if a, _, _ := h.Stat("/var/lib/toppcloud/apps/blog/files"); a.String() != "app-blog:app-blog 0750" {
		t.Errorf("directory %s", a)
	}
}

// writeArchive writes a tar with the given headers (and contents).
func writeArchive(t *testing.T, p string, entries []tar.Header) {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range entries {
		e.Size = int64(len(e.Linkname))
		body := e.Linkname
		if e.Typeflag != tar.TypeReg {
			e.Size, body = 0, ""
		} else {
			e.Linkname = ""
		}
		if err := tw.WriteHeader(&e); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	f.Close()
}

func TestFiles_RestoreRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		want    string
	}{
		{"dotdot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"}}, "not a plain relative path"},
		{"absolute", []tar.Header{{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"}}, "not a plain relative path"},
		{"device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Mode: 0o644}}, "not a file, directory or symlink"},
		{"hardlink", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, "not a file, directory or symlink"},
		{"through a symlink", []tar.Header{
			{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/etc", Mode: 0o777},
			{Name: "out/evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		}, "out/evil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHost(t)
			s := files.New(service.Node{Host: h})
			app := apps()[0]
			env, err := s.Setup(context.Background(), app)
			if err != nil {
				t.Fatal(err)
			}
			WriteTree(t, h.Path(env["CONFIG_FILES"]), "live")
			before := ReadTree(t, h.Path(files.Dir(app)))
			dir := "/backup/files"
			os.MkdirAll(h.Path(dir), 0o700)
			writeArchive(t, h.Path(path.Join(dir, files.Archive)), tc.entries)
			err = s.Restore(context.Background(), app, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("restore: %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(h.Path("/etc/evil")); err == nil {
				t.Error("a file was written outside the directory")
			}
			if after := ReadTree(t, h.Path(files.Dir(app))); after != before {
				t.Errorf("a refused restore changed the files:\n%s", after)
			}
			if _, err := os.Stat(h.Path("/var/lib/toppcloud/apps/blog/.files.restore")); err == nil {
				t.Error("staging directory left behind")
			}
		})
	}
}

func TestFiles_BackupKeepsSymlinksAsLinks(t *testing.T) {
	h := testHost(t)
	s := files.New(service.Node{Host: h})
	app := apps()[0]
	env, _ := s.Setup(context.Background(), app)
	secret := filepath.Join(h.Root, "secret")
	os.WriteFile(secret, []byte("root only"), 0o600)
	os.Symlink(secret, filepath.Join(h.Path(env["CONFIG_FILES"]), "steal"))
	os.Symlink(h.Root, filepath.Join(h.Path(env["CONFIG_FILES"]), "rootdir"))
	dir := "/backup/files"
	os.MkdirAll(h.Path(dir), 0o700)
	if err := s.Backup(context.Background(), app, dir); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(h.Path(path.Join(dir, files.Archive)))
	if strings.Contains(string(data), "root only") {
		t.Error("the backup followed a symlink out of the directory")
	}
}
