package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleNode(name string) NodeRecord {
	return NodeRecord{
		Name:         name,
		Section:      "default",
		ProviderType: "local",
		ID:           "id-" + name,
		PublicIPs:    []string{"10.0.0.2"},
		HostKey:      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake",
		CreatedAt:    time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		EtcHosts:     true,
	}
}

func TestOpen_CreatesPrivateDir(t *testing.T) {
	s := openTemp(t)
	fi, err := os.Stat(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", fi.Mode().Perm())
	}
	if got, want := s.KnownHostsPath(), filepath.Join(s.Dir(), "known_hosts"); got != want {
		t.Errorf("KnownHostsPath = %s, want %s", got, want)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}

func TestDir_FollowsTheEnvironment(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got, want := Dir(getenv, "/home/u"), filepath.Join("/home/u", ".toppcloud"); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	env[EnvDir] = "/srv/tc"
	if got := Dir(getenv, "/home/u"); got != "/srv/tc" {
		t.Errorf("Dir with $%s = %q", EnvDir, got)
	}
	st, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.CachePath("manifests"), filepath.Join(st.Dir(), "cache", "manifests"); got != want {
		t.Errorf("CachePath = %q, want %q", got, want)
	}
}

func TestStore_PutGetDelete(t *testing.T) {
	s := openTemp(t)
	if ns, err := s.Nodes(); err != nil || len(ns) != 0 {
		t.Fatalf("empty store: %v, %v", ns, err)
	}
	for _, name := range []string{"web2", "web1", "db"} {
		if err := s.PutNode(sampleNode(name)); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := s.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range ns {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"db", "web1", "web2"}) {
		t.Errorf("names = %v, want sorted db web1 web2", names)
	}

	rec, ok, err := s.Node("web1")
	if err != nil || !ok {
		t.Fatalf("Node(web1) = %v, %v", ok, err)
	}
	if want := sampleNode("web1"); !equalRecords(rec, want) {
		t.Errorf("Node(web1) = %+v, want %+v", rec, want)
	}

	upd := sampleNode("web1")
	upd.PublicIPs = []string{"10.0.0.9"}
	if err := s.PutNode(upd); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = s.Node("web1")
	if rec.Address() != "10.0.0.9" {
		t.Errorf("after replace, address = %s", rec.Address())
	}
	if ns, _ := s.Nodes(); len(ns) != 3 {
		t.Errorf("replace added a record: %d records", len(ns))
	}

	if del, err := s.DeleteNode("web1"); err != nil || !del {
		t.Fatalf("DeleteNode(web1) = %v, %v", del, err)
	}
	if del, err := s.DeleteNode("web1"); err != nil || del {
		t.Fatalf("second DeleteNode(web1) = %v, %v; want false, nil", del, err)
	}
	if _, ok, _ := s.Node("web1"); ok {
		t.Error("web1 still there after delete")
	}
}

func equalRecords(a, b NodeRecord) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestStore_FileFormat(t *testing.T) {
	s := openTemp(t)
	if err := s.PutNode(sampleNode("web1")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.NodesPath())
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Version int              `json:"version"`
		Nodes   []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Version != 1 || len(raw.Nodes) != 1 {
		t.Fatalf("file = %s", data)
	}
	for _, key := range []string{"name", "section", "provider_type", "id", "public_ips", "host_key", "created_at", "etc_hosts"} {
		if _, ok := raw.Nodes[0][key]; !ok {
			t.Errorf("field %q missing from %s", key, data)
		}
	}
	fi, _ := os.Stat(s.NodesPath())
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("nodes.json mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestStore_RejectsInvalidRecord(t *testing.T) {
	s := openTemp(t)
	for _, rec := range []NodeRecord{{}, {Name: "a b"}, {Name: "x", SSHPort: 70000}} {
		if err := s.PutNode(rec); err == nil {
			t.Errorf("PutNode(%+v) succeeded", rec)
		}
	}
	err := s.Update(func(n *Nodes) error {
		n.Nodes = append(n.Nodes, sampleNode("a"), sampleNode("a"))
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "two node records") {
		t.Errorf("duplicate names: err = %v", err)
	}
}

func TestStore_UpdateErrorWritesNothing(t *testing.T) {
	s := openTemp(t)
	if err := s.PutNode(sampleNode("web1")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.NodesPath())
	boom := errors.New("boom")
	err := s.Update(func(n *Nodes) error {
		n.Delete("web1")
		n.Put(sampleNode("other"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	after, _ := os.ReadFile(s.NodesPath())
	if string(before) != string(after) {
		t.Errorf("file changed after failed update:\n%s\n->\n%s", before, after)
	}
}

func TestStore_FailedWriteKeepsOldFile(t *testing.T) {
	s := openTemp(t)
	if err := s.PutNode(sampleNode("web1")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.NodesPath())
	boom := errors.New("disk full")
	s.replace = func(string, []byte, fs.FileMode) error { return boom }
	if err := s.PutNode(sampleNode("web2")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	after, _ := os.ReadFile(s.NodesPath())
	if string(before) != string(after) {
		t.Errorf("file changed after failed write")
	}
}

func TestStore_FutureVersion(t *testing.T) {
	s := openTemp(t)
	if err := os.WriteFile(s.NodesPath(), []byte(`{"version": 7, "nodes": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Nodes()
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != 7 {
		t.Fatalf("err = %v, want *VersionError{7}", err)
	}
	if !strings.Contains(err.Error(), "upgrade toppcloud") {
		t.Errorf("message does not say what to do: %v", err)
	}
	// A future file must never be overwritten by an older program.
	if err := s.PutNode(sampleNode("x")); !errors.As(err, &ve) {
		t.Errorf("PutNode on future file: err = %v", err)
	}
}

func TestStore_BrokenFile(t *testing.T) {
	for name, content := range map[string]string{
		"empty":      "",
		"syntax":     `{"version": 1, "nodes": [`,
		"no version": `{"nodes": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := openTemp(t)
			if err := os.WriteFile(s.NodesPath(), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Nodes()
			if err == nil || !strings.Contains(err.Error(), s.NodesPath()) {
				t.Fatalf("err = %v, want an error naming the file", err)
			}
			if err := s.PutNode(sampleNode("x")); err == nil {
				t.Error("PutNode overwrote a broken file")
			}
			if got, _ := os.ReadFile(s.NodesPath()); string(got) != content {
				t.Error("broken file was changed")
			}
		})
	}
}

func TestStore_MigratesV0(t *testing.T) {
	s := openTemp(t)
	v0 := `[
	  {"name": "old1", "provider": "rackspace", "id": "123", "ip": "1.2.3.4",
	   "host_key": "ssh-ed25519 AAAA", "created": "2010-01-02T03:04:05Z"},
	  {"name": "old0", "provider": "rackspace", "id": "122"}
	]`
	if err := os.WriteFile(s.NodesPath(), []byte(v0), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, ok, err := s.Node("old1")
	if err != nil || !ok {
		t.Fatalf("Node(old1) = %v, %v", ok, err)
	}
	want := NodeRecord{
		Name: "old1", Section: "default", ProviderType: "rackspace", ID: "123",
		PublicIPs: []string{"1.2.3.4"}, HostKey: "ssh-ed25519 AAAA",
		CreatedAt: time.Date(2010, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if !equalRecords(rec, want) {
		t.Errorf("migrated = %+v\nwant       %+v", rec, want)
	}
	if rec, _, _ := s.Node("old0"); rec.Address() != "" || rec.SSHAddr() != "" {
		t.Errorf("old0 without ip got address %q", rec.Address())
	}

	// Reading does not rewrite; the next update writes version 1.
	if data, _ := os.ReadFile(s.NodesPath()); string(data) != v0 {
		t.Error("reading rewrote the v0 file")
	}
	if err := s.PutNode(sampleNode("new")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(s.NodesPath())
	var head struct{ Version int }
	if err := json.Unmarshal(data, &head); err != nil || head.Version != 1 {
		t.Fatalf("after update: version %d, %v\n%s", head.Version, err, data)
	}
	if ns, _ := s.Nodes(); len(ns) != 3 {
		t.Errorf("after migration and put: %d records, want 3", len(ns))
	}
}

func TestNodeRecord_Addr(t *testing.T) {
	for _, tc := range []struct {
		rec        NodeRecord
		addr, user string
	}{
		{NodeRecord{PublicIPs: []string{"1.2.3.4"}}, "1.2.3.4:22", "root"},
		{NodeRecord{PrivateIPs: []string{"10.0.0.1"}, SSHPort: 2222, SSHUser: "admin"}, "10.0.0.1:2222", "admin"},
		{NodeRecord{PublicIPs: []string{"2001:db8::1"}}, "[2001:db8::1]:22", "root"},
	} {
		if got := tc.rec.SSHAddr(); got != tc.addr {
			t.Errorf("SSHAddr = %s, want %s", got, tc.addr)
		}
		if got := tc.rec.User(); got != tc.user {
			t.Errorf("User = %s, want %s", got, tc.user)
		}
	}
}

func TestStore_ConcurrentGoroutines(t *testing.T) {
	s := openTemp(t)
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Each goroutine opens its own Store, as separate commands would.
			st, err := Open(s.Dir())
			if err == nil {
				err = st.PutNode(sampleNode(fmt.Sprintf("node%02d", i)))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ns, _ := s.Nodes(); len(ns) != n {
		t.Errorf("%d records, want %d (lost updates)", len(ns), n)
	}
}

func TestStore_ConcurrentProcesses(t *testing.T) {
	s := openTemp(t)
	const procs, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestStoreHelperProcess$")
			cmd.Env = append(os.Environ(),
				"STATE_HELPER_DIR="+s.Dir(), "STATE_HELPER_PREFIX=p"+strconv.Itoa(p), "STATE_HELPER_EACH="+strconv.Itoa(each))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ns, _ := s.Nodes(); len(ns) != procs*each {
		t.Errorf("%d records, want %d (lost updates)", len(ns), procs*each)
	}
}

func TestStoreHelperProcess(t *testing.T) {
	dir := os.Getenv("STATE_HELPER_DIR")
	if dir == "" {
		t.Skip("only run by TestStore_ConcurrentProcesses")
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	each, _ := strconv.Atoi(os.Getenv("STATE_HELPER_EACH"))
	for i := range each {
		if err := s.PutNode(sampleNode(fmt.Sprintf("%s-%d", os.Getenv("STATE_HELPER_PREFIX"), i))); err != nil {
			t.Fatal(err)
		}
	}
}
