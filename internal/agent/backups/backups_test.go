package backups

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host/hosttest"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/files"
)

// dir is where the agent keeps backups.
var dir = layout.Default().Backups

func TestStore(t *testing.T) {
	h := hosttest.New(t, nil)
	hosttest.WriteFile(t, h.Root, "/etc/passwd", hosttest.Passwd+"app-blog:x:1001:1001::/nonexistent:/usr/sbin/nologin\n")
	hosttest.WriteFile(t, h.Root, "/etc/group", hosttest.Group+"app-blog:x:1001:\n")
	h.Now = func() time.Time { return time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC) }
	s := Store{Host: h, Dir: dir}
	app := service.App{Name: "blog", DataDir: "/var/lib/toppcloud/apps/blog", User: "app-blog"}
	f := files.New(service.Node{Host: h})
	env, err := f.Setup(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.Path(env["CONFIG_FILES"]), "a.txt"), []byte("hello"), 0o640)
	bound := []service.Bound{{Service: f, App: app}}
	ctx := context.Background()

	r1, err := s.Make(ctx, "blog", "", bound, "test", nil)
	if err != nil || r1.Name != "backup-blog-2026-12-04" || r1.Bytes == 0 || len(r1.Services) != 1 {
		t.Fatalf("first: %+v %v", r1, err)
	}
	r2, _ := s.Make(ctx, "blog", "", bound, "test", nil)
	if r2.Name != "backup-blog-2026-12-04_001" {
		t.Errorf("second name %s", r2.Name)
	}
	if _, err := s.Make(ctx, "blog", r1.Name, bound, "test", nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("overwrite: %v", err)
	}
	if _, err := s.Make(ctx, "blog", "../etc", bound, "test", nil); err == nil {
		t.Error("a bad name was accepted")
	}
	if a, _, _ := h.Stat(dir); a.String() != "root:root 0700" {
		t.Errorf("backups dir %s", a)
	}

	var stream bytes.Buffer
	if err := s.Send(&stream, r1.Name); err != nil {
		t.Fatal(err)
	}
	p, m, err := s.Receive(bytes.NewReader(stream.Bytes()))
	if err != nil || m.App != "blog" || !strings.HasPrefix(p, dir+"/.upload-") {
		t.Fatalf("receive: %s %v", p, err)
	}
	if _, err := service.VerifyBackup(h, p, "blog", bound); err != nil {
		t.Errorf("the received backup: %v", err)
	}
	if _, _, err := s.Receive(bytes.NewReader(stream.Bytes()[:stream.Len()/2])); !errors.Is(err, service.ErrBadBackup) {
		t.Errorf("truncated upload: %v", err)
	}
	if n, err := s.RemoveUploads(time.Hour); err != nil || n != 0 {
		t.Errorf("young uploads removed: %d %v", n, err)
	}
	h.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := s.RemoveUploads(time.Hour); err != nil || n != 1 {
		t.Errorf("remove uploads: %d %v", n, err)
	}

	if err := s.Remove(r2.Name); err != nil {
		t.Fatal(err)
	}
	var pe *protocol.Error
	if err := s.Remove(r2.Name); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Errorf("second remove: %v", err)
	}
	if _, err := s.Open("nothing"); !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
		t.Errorf("open: %v", err)
	}
}
