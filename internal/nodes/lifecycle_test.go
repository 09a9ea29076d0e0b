package nodes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// powered is the memory driver with start and stop.
type powered struct {
	*providertest.Memory
	calls []string
}

func (d *powered) StartNode(ctx context.Context, id string) error {
	d.calls = append(d.calls, "start "+id)
	return nil
}

func (d *powered) StopNode(ctx context.Context, id string) error {
	d.calls = append(d.calls, "stop "+id)
	return nil
}

func TestStartStop(t *testing.T) {
	w := newWorld(t)
	key := w.mine()
	w.config(key, "")
	d := &powered{Memory: w.mem}
	w.driver = d
	if err := w.session("").Create(bg, "default", "web1", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.record("web1")
	conns := w.srv.Conns()
	s := w.session("")
	if err := s.Stop(bg, "web1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(bg, "web1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"stop " + rec.ID, "start " + rec.ID}; !reflect.DeepEqual(d.calls, want) {
		t.Errorf("driver calls %q, want %q", d.calls, want)
	}
	// start-node logs in (with the pinned host key) after sshd answers.
	if got := w.srv.Conns() - conns; got != 2 {
		t.Errorf("%d connections for start-node, want 2 (the wait's probe, the login)", got)
	}
	if err := s.Start(bg, "ghost"); !usage.Is(err) || !strings.Contains(err.Error(), "no node named ghost") {
		t.Errorf("Start(ghost) = %v", err)
	}
	w.driver = w.mem // no start or stop
	s = w.session("")
	if err := s.Stop(bg, "web1"); !errors.Is(err, provider.ErrNotSupported) {
		t.Errorf("Stop without a Stopper = %v", err)
	}
}

func TestDestroy_ForgetsEverything(t *testing.T) {
	w := newWorld(t)
	key := w.mine()
	w.config(key, "set_etc_hosts = yes\n")
	hosts := filepath.Join(w.home, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := w.session("")
	if err := s.Create(bg, "default", "web1", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(hosts); !strings.Contains(string(b), "web1") {
		t.Fatalf("set_etc_hosts: hosts file:\n%s", b)
	}
	asked := ""
	if err := s.Destroy(bg, "default", "web1", func(q string) bool { asked = q; return true }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(asked, "Destroy node web1 (provider section default, id ") {
		t.Errorf("asked %q", asked)
	}
	if b, _ := os.ReadFile(hosts); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("hosts file not restored:\n%s", b)
	}
	if _, ok := w.record("web1"); ok {
		t.Error("still recorded")
	}
	if n, _ := w.mem.ListNodes(bg); len(n) != 0 {
		t.Errorf("still at the provider: %+v", n)
	}
	if err := s.Destroy(bg, "default", "web1", func(string) bool { return true }); err != nil || !strings.Contains(w.rep.String(), "no node named web1") {
		t.Errorf("destroying a node that is gone: %v\n%s", err, w.rep)
	}
}
