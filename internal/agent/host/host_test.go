package host_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
)

func TestWriteFile_ComparesBeforeWriting(t *testing.T) {
	h := hosttest.New(t, nil)
	attr := host.Attr{Mode: 0o640, Group: "adm"}
	changed, err := h.WriteFile("/etc/x/conf", []byte("a=1\n"), attr)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	got, _, err := h.Stat("/etc/x/conf")
	if err != nil || !got.Equal(attr) {
		t.Fatalf("attr = %s, %v", got, err)
	}
	fi1, _ := os.Stat(h.Path("/etc/x/conf"))
	time.Sleep(5 * time.Millisecond)
	if changed, err = h.WriteFile("/etc/x/conf", []byte("a=1\n"), attr); err != nil || changed {
		t.Fatalf("same content: changed %v, %v", changed, err)
	}
	fi2, _ := os.Stat(h.Path("/etc/x/conf"))
	if !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("an equal file was rewritten")
	}
	// Only the mode drifted: fixed in place.
	os.Chmod(h.Path("/etc/x/conf"), 0o666)
	if changed, err = h.WriteFile("/etc/x/conf", []byte("a=1\n"), attr); err != nil || !changed {
		t.Fatalf("mode fix: changed %v, %v", changed, err)
	}
	if fi, _ := os.Stat(h.Path("/etc/x/conf")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	// New content replaces the file and keeps the attributes.
	if changed, err = h.WriteFile("/etc/x/conf", []byte("a=2\n"), attr); err != nil || !changed {
		t.Fatalf("new content: changed %v, %v", changed, err)
	}
	if got, _, _ := h.Stat("/etc/x/conf"); !got.Equal(attr) {
		t.Errorf("attr after replace = %s", got)
	}
	entries, _ := os.ReadDir(h.Path("/etc/x"))
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	if _, err := h.WriteFile("/etc/y", nil, host.Attr{User: "nosuchuser"}); err == nil || !strings.Contains(err.Error(), "no user nosuchuser") {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := h.WriteFile("/etc/x", nil, attr); err == nil {
		t.Error("writing over a directory succeeded")
	}
}

func TestSymlink_ReplacesInOneRename(t *testing.T) {
	h := hosttest.New(t, nil)
	changed, err := h.Symlink("/var/www/a.1", "/var/lib/x/slot")
	if err != nil || !changed {
		t.Fatalf("first: %v %v", changed, err)
	}
	if got, _ := os.Readlink(h.Path("/var/lib/x/slot")); got != "/var/www/a.1" {
		t.Errorf("link -> %q: the target must be the node path, not resolved under the root", got)
	}
	if changed, err = h.Symlink("/var/www/a.1", "/var/lib/x/slot"); err != nil || changed {
		t.Errorf("same target: changed %v, %v", changed, err)
	}
	if changed, err = h.Symlink("/var/www/a.2", "/var/lib/x/slot"); err != nil || !changed {
		t.Fatalf("new target: changed %v, %v", changed, err)
	}
	if got, _ := os.Readlink(h.Path("/var/lib/x/slot")); got != "/var/www/a.2" {
		t.Errorf("link -> %q after the switch", got)
	}
	if des, _ := os.ReadDir(h.Path("/var/lib/x")); len(des) != 1 {
		t.Errorf("temporaries left: %v", des)
	}
}

func TestEnsureDir(t *testing.T) {
	h := hosttest.New(t, nil)
	attr := host.Attr{Mode: 0o771 | fs.ModeSticky, Group: "www-data"}
	if c, err := h.EnsureDir("/run/x/y", attr); err != nil || !c {
		t.Fatalf("create: %v %v", c, err)
	}
	if got, fi, _ := h.Stat("/run/x/y"); !fi.IsDir() || !got.Equal(attr) {
		t.Errorf("got %s", got)
	}
	if c, err := h.EnsureDir("/run/x/y", attr); err != nil || c {
		t.Errorf("again: %v %v", c, err)
	}
	hosttest.WriteFile(t, h.Root, "/run/file", "x")
	if _, err := h.EnsureDir("/run/file", attr); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file in the way: %v", err)
	}
}

func TestExec_TailAndLines(t *testing.T) {
	var lines []string
	out, err := host.Exec{}.Run(context.Background(), host.Command{
		Argv: []string{"sh", "-c", `echo out1; echo err1 >&2; printf 'no newline'; echo "LC=$LC_ALL" >&2; exit 3`},
		Line: func(l string) { lines = append(lines, l) },
	})
	var ce *host.CommandError
	if !errors.As(err, &ce) || ce.Status != 3 {
		t.Fatalf("err = %v", err)
	}
	if string(out) != "out1\nno newline" {
		t.Errorf("stdout = %q", out)
	}
	for _, want := range []string{"out1", "err1", "no newline", "LC=C"} {
		if !strings.Contains(strings.Join(ce.Tail, "|"), want) || !strings.Contains(strings.Join(lines, "|"), want) {
			t.Errorf("tail %q / lines %q lack %q", ce.Tail, lines, want)
		}
	}
	if !strings.Contains(err.Error(), "exited with status 3") {
		t.Errorf("message: %v", err)
	}
	_, err = host.Exec{}.Run(context.Background(), host.Command{Argv: []string{"/nonexistent/prog"}})
	if !errors.As(err, &ce) || ce.Status != -1 {
		t.Errorf("missing program: %v", err)
	}
}

func TestIsDiskFull(t *testing.T) {
	full := &host.CommandError{Argv: []string{"cat"}, Status: 1, Tail: []string{"cat: write error: No space left on device"}}
	if !host.IsDiskFull(full) || host.IsDiskFull(&host.CommandError{Tail: []string{"E: other"}}) || host.IsDiskFull(nil) {
		t.Error("IsDiskFull misjudged")
	}
}

func TestExec_Stdout(t *testing.T) {
	var out strings.Builder
	var lines []string
	b, err := host.Exec{}.Run(context.Background(), host.Command{
		Argv:   []string{"sh", "-c", "echo to-file; echo to-log >&2"},
		Stdout: &out,
		Line:   func(l string) { lines = append(lines, l) },
	})
	if err != nil || b != nil {
		t.Fatalf("run: %q %v", b, err)
	}
	if out.String() != "to-file\n" || len(lines) != 1 || lines[0] != "to-log" {
		t.Errorf("stdout %q, lines %q", out.String(), lines)
	}
	_, err = host.Exec{}.Run(context.Background(), host.Command{Argv: []string{"sh", "-c", "echo partial; echo broken >&2; exit 3"}, Stdout: &out})
	var ce *host.CommandError
	if !errors.As(err, &ce) || ce.Status != 3 || ce.LastLine() != "broken" {
		t.Errorf("failure: %v", err)
	}
}
