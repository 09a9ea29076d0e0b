package existing

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

func newDriver(t *testing.T, dir string, settings provider.Settings) *Driver {
	t.Helper()
	d, err := New(provider.Env{Section: "mine", Settings: settings, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sshPort starts a TCP listener standing in for a server's sshd and
// returns its port.
func sshPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDriver_Conformance(t *testing.T) {
	port := sshPort(t)
	providertest.Run(t, providertest.Opt{
		New:         func(t *testing.T) provider.Driver { return newDriver(t, t.TempDir(), nil) },
		SkipBadAuth: "existing servers have no API credentials",
		Image:       "name existing",
		Size:        "name existing",
		Address:     "127.0.0.1:" + strconv.Itoa(port),
	})
}

func TestOptions_Fields(t *testing.T) {
	if err := provider.CheckOptionFields(options(), &Options{}); err != nil {
		t.Fatal(err)
	}
	info, ok := provider.Lookup(Name)
	if !ok {
		t.Fatal("existing is not registered")
	}
	d := newDriver(t, t.TempDir(), nil)
	images, _ := d.ListImages(context.Background())
	sizes, _ := d.ListSizes(context.Background())
	im, _ := provider.ParseMatcher(info.DefaultImage)
	sz, _ := provider.ParseMatcher(info.DefaultSize)
	if _, err := provider.MatchImage(images, im); err != nil {
		t.Errorf("default image matcher: %v", err)
	}
	if _, err := provider.MatchSize(sizes, sz); err != nil {
		t.Errorf("default size matcher: %v", err)
	}
}

func TestCreateNode_RecordPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := newDriver(t, dir, provider.Settings{"ssh_user": "root"})
	n, err := d.CreateNode(ctx, provider.CreateRequest{Name: "web1", Address: "Web1.Example.COM:2222", User: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Node{ID: "web1", Name: "web1", State: provider.StateRunning, PublicIPs: []string{"web1.example.com"},
		Image: "existing", Size: "existing", Provider: "existing", SSHUser: "deploy", SSHPort: 2222}
	if !nodesEqual(n, want) {
		t.Errorf("CreateNode = %+v\nwant %+v", n, want)
	}
	if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: "db", Address: "10.0.0.5"}); err != nil {
		t.Fatal(err)
	}

	// A new driver (a later toppcloud run) sees both.
	d2 := newDriver(t, dir, nil)
	got, err := d2.GetNode(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if !nodesEqual(got, want) {
		t.Errorf("GetNode after reload = %+v\nwant %+v", got, want)
	}
	db, err := d2.GetNode(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if db.SSHUser != "" || db.Address() != "10.0.0.5" || len(db.PrivateIPs) != 1 || len(db.PublicIPs) != 0 {
		t.Errorf("db = %+v, want root at private 10.0.0.5", db)
	}

	if err := d2.DestroyNode(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := newDriver(t, dir, nil).GetNode(ctx, "web1"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("GetNode after forgetting = %v, want ErrNotFound", err)
	}
	d3 := newDriver(t, dir, nil)
	d3.dial = refuse // 10.0.0.5 may not answer quickly here
	nodes, err := d3.ListNodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Name != "db" || nodes[0].State != provider.StateUnknown {
		t.Errorf("ListNodes after forgetting web1 = %+v, %v", nodes, err)
	}

	info, err := os.Stat(filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("servers file mode %v, want 0600", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func refuse(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errors.New("connection refused")
}

func nodesEqual(a, b provider.Node) bool {
	return a.ID == b.ID && a.Name == b.Name && a.State == b.State && strings.Join(a.PublicIPs, ",") == strings.Join(b.PublicIPs, ",") &&
		strings.Join(a.PrivateIPs, ",") == strings.Join(b.PrivateIPs, ",") && a.Image == b.Image && a.Size == b.Size &&
		a.Provider == b.Provider && a.SSHUser == b.SSHUser && a.SSHPort == b.SSHPort
}

func TestCreateNode_Refusals(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, t.TempDir(), nil)
	if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: "web1", Address: "192.0.2.10"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  provider.CreateRequest
		want error
	}{
		{"same name", provider.CreateRequest{Name: "web1", Address: "192.0.2.11"}, provider.ErrExists},
		{"same address", provider.CreateRequest{Name: "web2", Address: "192.0.2.10:22"}, provider.ErrExists},
		{"bad name", provider.CreateRequest{Name: "Web_2", Address: "192.0.2.12"}, provider.ErrInvalid},
		{"no address", provider.CreateRequest{Name: "web2"}, provider.ErrInvalid},
		{"bad user", provider.CreateRequest{Name: "web2", Address: "192.0.2.12", User: "Bad User"}, provider.ErrInvalid},
		{"files", provider.CreateRequest{Name: "web2", Address: "192.0.2.12", Files: map[string][]byte{"/x": nil}}, provider.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.CreateNode(ctx, tt.req)
			if !errors.Is(err, tt.want) {
				t.Errorf("CreateNode = %v, want %v", err, tt.want)
			}
		})
	}
	servers, _ := d.store.load()
	if len(servers) != 1 {
		t.Errorf("refused registrations were recorded: %+v", servers)
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in       string
		host     string
		port     int
		wantErr  bool
		errMatch string
	}{
		{in: "192.0.2.1", host: "192.0.2.1"},
		{in: " 192.0.2.1:2222 ", host: "192.0.2.1", port: 2222},
		{in: "192.0.2.1:22", host: "192.0.2.1"},
		{in: "2001:db8::1", host: "2001:db8::1"},
		{in: "2001:DB8:0::1", host: "2001:db8::1"},
		{in: "[2001:db8::1]:2200", host: "2001:db8::1", port: 2200},
		{in: "[2001:db8::1]", host: "2001:db8::1"},
		{in: "Server.Example.com.", host: "server.example.com"},
		{in: "localhost", host: "localhost"},
		{in: "xn--bcher-kva.example:80", host: "xn--bcher-kva.example", port: 80},
		{in: "", wantErr: true, errMatch: "empty"},
		{in: "ssh://host", wantErr: true, errMatch: "URL"},
		{in: "root@host", wantErr: true, errMatch: "--user"},
		{in: "host:0", wantErr: true, errMatch: "port"},
		{in: "host:70000", wantErr: true, errMatch: "port"},
		{in: "host:ssh", wantErr: true, errMatch: "port"},
		{in: "300.1.2.3", wantErr: true, errMatch: "IP"},
		{in: "bad_name.example", wantErr: true, errMatch: "label"},
		{in: "-lead.example", wantErr: true, errMatch: "label"},
		{in: "a..b", wantErr: true, errMatch: "label"},
		{in: "fe80::1%eth0", wantErr: true, errMatch: "zone"},
		{in: strings.Repeat("a", 64) + ".example", wantErr: true, errMatch: "label"},
	}
	for _, tt := range tests {
		host, port, err := ParseAddress(tt.in)
		if tt.wantErr {
			if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), tt.errMatch) {
				t.Errorf("ParseAddress(%q) = %q, %d, %v; want ErrInvalid mentioning %q", tt.in, host, port, err, tt.errMatch)
			}
			continue
		}
		if err != nil || host != tt.host || port != tt.port {
			t.Errorf("ParseAddress(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
		}
	}
}

func TestListNodes_Reachability(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, t.TempDir(), nil)
	up := sshPort(t)
	// A port that was just free: connecting is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	for name, port := range map[string]int{"up": up, "down": down} {
		if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, Address: "127.0.0.1:" + strconv.Itoa(port)}); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := d.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]provider.State{}
	for _, n := range nodes {
		states[n.Name] = n.State
	}
	if states["up"] != provider.StateRunning || states["down"] != provider.StateUnknown {
		t.Errorf("states = %v, want up running and down unknown", states)
	}
}

func TestStore_Errors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, storeFile)
	if err := os.WriteFile(path, []byte(`{"version": 2, "servers": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, dir, nil)
	if _, err := d.ListNodes(ctx); err == nil || !strings.Contains(err.Error(), "newer toppcloud") {
		t.Errorf("ListNodes on a newer file = %v", err)
	}
	if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: "a", Address: "192.0.2.1"}); err == nil {
		t.Error("CreateNode overwrote a file from a newer version")
	}
	if err := os.WriteFile(path, []byte(`not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetNode(ctx, "a"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("GetNode on a corrupt file = %v, want an error naming the file", err)
	}
	if _, err := New(provider.Env{Settings: provider.Settings{}}); err == nil {
		t.Error("New without a state directory succeeded")
	}
	if _, err := New(provider.Env{Settings: provider.Settings{"ssh_user": "no way"}, StateDir: dir}); err == nil {
		t.Error("New with a bad ssh_user succeeded")
	}
}

func TestCreateNode_ConcurrentRegistrations(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		// Separate drivers, as separate toppcloud processes would have.
		d := newDriver(t, dir, nil)
		go func() {
			_, err := d.CreateNode(ctx, provider.CreateRequest{Name: "n" + strconv.Itoa(i), Address: "192.0.2." + strconv.Itoa(i+1)})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	servers, err := store{dir: dir}.load()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != n {
		t.Errorf("%d servers recorded, want %d: registrations were lost", len(servers), n)
	}
}
