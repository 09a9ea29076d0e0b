package nodes

import (
	"reflect"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// TestCreate_RecordsKeysAndKeepsTheConnection: the record keeps the keys
// the node was given, and the connection that checked the login is the
// one later work on the node uses: the node sees the host key probe and
// one login, however often the session connects.
func TestCreate_RecordsKeysAndKeepsTheConnection(t *testing.T) {
	w := newWorld(t)
	key := w.mine()
	w.config(key, "")
	s := w.session("")
	if err := s.Create(bg, "default", "web1", CreateOptions{}); err != nil {
		t.Fatalf("Create: %v\n%s", err, w.rep)
	}
	rec, ok := w.record("web1")
	if !ok || !reflect.DeepEqual(rec.AuthorizedKeys, []string{key.line}) || rec.HostKey != w.srv.HostKey {
		t.Fatalf("record = %+v", rec)
	}
	if !strings.Contains(w.rep.String(), "log in to web1 as root: done ("+key.path+" ("+key.fingerprint()+"))") {
		t.Errorf("the login step does not name the key:\n%s", w.rep)
	}
	if n := w.srv.Conns(); n != 2 {
		t.Errorf("%d connections after create-node, want 2 (probe, login)", n)
	}
	if _, err := s.dial(bg, rec, "", 0); err != nil {
		t.Fatal(err)
	}
	if n := w.srv.Conns(); n != 2 {
		t.Errorf("%d connections: the login's connection was not reused", n)
	}
}

// TestCreate_IfNotExists: what --if-not-exists does with a node that
// exists in the records, or only at the provider.
func TestCreate_IfNotExists(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recorded bool // the node is in the records, else only at the provider
		o        CreateOptions
		wantErr  string // "" for success
		wantSaid string
	}{
		{"recorded", true, CreateOptions{IfNotExists: true}, "", "node web1 exists (provider default, id "},
		{"recorded, without the flag", true, CreateOptions{}, "already exists", ""},
		{"provider only", false, CreateOptions{IfNotExists: true}, "", "node web1 exists at the provider"},
		{"provider only, without the flag", false, CreateOptions{}, "the provider already has a node named web1", ""},
		// The defect: this used to succeed and skip the setup silently.
		{"provider only, with setup", false, CreateOptions{IfNotExists: true, Setup: true}, "no record of it (made from another machine?), so --setup-node cannot set it up", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			key := w.mine()
			w.config(key, "")
			s := w.session("")
			if tc.recorded {
				if err := s.Create(bg, "default", "web1", CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := w.mem.CreateNode(bg, provider.CreateRequest{Name: "web1"}); err != nil {
				t.Fatal(err)
			}
			before := len(w.mem.Created)
			err := w.session("").Create(bg, "default", "web1", tc.o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Create: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Create = %v, want an error mentioning %q", err, tc.wantErr)
			}
			if !strings.Contains(w.rep.String(), tc.wantSaid) {
				t.Errorf("output lacks %q:\n%s", tc.wantSaid, w.rep)
			}
			if len(w.mem.Created) != before {
				t.Errorf("a second node was created")
			}
		})
	}
}

// TestCreate_IfNotExistsWaitsForANoWaitNode: a node created with
// --no-wait has no address yet; create-node --if-not-exists waits for it
// and pins it, as the message of every command on such a node says.
func TestCreate_IfNotExistsWaitsForANoWaitNode(t *testing.T) {
	w := newWorld(t)
	key := w.mine()
	w.config(key, "")
	w.mem.PendingPolls = 1
	if err := w.session("").Create(bg, "default", "web1", CreateOptions{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := w.record("web1"); rec.HostKey != "" {
		t.Fatalf("--no-wait pinned a host key: %+v", rec)
	}
	s := w.session("")
	if _, err := s.Record("web1"); err == nil || !strings.Contains(err.Error(), "run create-node web1 --if-not-exists to wait for it") {
		t.Fatalf("Record of a --no-wait node = %v", err)
	}
	if err := s.Create(bg, "default", "web1", CreateOptions{IfNotExists: true}); err != nil {
		t.Fatalf("create-node --if-not-exists: %v\n%s", err, w.rep)
	}
	rec, _ := w.record("web1")
	if rec.HostKey != w.srv.HostKey || rec.Address() == "" {
		t.Errorf("not waited for: %+v", rec)
	}
	if len(w.mem.Created) != 1 {
		t.Errorf("%d creates, want 1", len(w.mem.Created))
	}
}

// TestCreate_NoUsableKeyCreatesNothing: when no key could log in to the
// new node, create-node says so, with the key the node would get, before
// asking the provider for anything.
func TestCreate_NoUsableKeyCreatesNothing(t *testing.T) {
	w := newWorld(t)
	elsewhere := newKey(t, t.TempDir(), "deploy") // not in ~/.ssh, not named
	w.config(elsewhere, "")
	err := w.session("").Create(bg, "default", "web1", CreateOptions{})
	if !usage.Is(err) {
		t.Fatalf("Create = %v, want a usage error", err)
	}
	for _, want := range []string{"no usable SSH key to log in as root@web1", "web1 would be given (root_authorized_keys of [provider:default]): " + elsewhere.fingerprint(), "--ssh-key PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%v", want, err)
		}
	}
	if len(w.mem.Created) != 0 {
		t.Errorf("the provider was asked to create: %+v", w.mem.Created)
	}
}

// TestSession_ConfigWarningsOnce: the config file is read once per
// session, so its warnings show once however much the command does.
func TestSession_ConfigWarningsOnce(t *testing.T) {
	w := newWorld(t)
	key := w.mine()
	w.config(key, "colour = blue\n[surprise]\n")
	s := w.session("")
	if err := s.Create(bg, "default", "web1", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.record("web1")
	if _, err := s.LoginKey(bg, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.dial(bg, rec, "", 0); err != nil {
		t.Fatal(err)
	}
	out := w.rep.String()
	for _, want := range []string{"unknown key colour in [provider:default]", "unknown section [surprise]"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%q shown %d times, want once:\n%s", want, n, out)
		}
	}
}
