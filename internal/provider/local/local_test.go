package local

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"

func newTestDriver(t *testing.T, s provider.Settings) *Driver {
	t.Helper()
	if s == nil {
		s = provider.Settings{}
	}
	if s["root"] == "" {
		s["root"] = t.TempDir()
	}
	d, err := New(provider.Env{Settings: s})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func TestOptions_DeclaredFieldsExist(t *testing.T) {
	if err := provider.CheckOptionFields(options, &Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestOptions_Registered(t *testing.T) {
	info, ok := provider.Lookup("local")
	if !ok {
		t.Fatal("local is not registered")
	}
	if !info.Local || info.DefaultImage != "debian-12" || info.DefaultSize == "" {
		t.Errorf("info = %+v", info)
	}
	if _, ok := findSize(info.DefaultSize); !ok {
		t.Errorf("default size %q is not offered", info.DefaultSize)
	}
}

func TestOptions_Decode(t *testing.T) {
	tests := []struct {
		name    string
		s       provider.Settings
		want    Options
		wantErr string
	}{
		{
			name: "defaults",
			s:    provider.Settings{},
			want: Options{Root: DefaultRoot, Subnet: DefaultSubnet, Mirror: DefaultMirror, SecurityMirror: DefaultSecurityMirror, ShareAptCache: true},
		},
		{
			name: "all set",
			s: provider.Settings{"root": "/srv/tc", "cache_dir": "/srv/cache", "subnet": "10.9.0.0/16",
				"mirror": "https://mirror.example/debian", "security_mirror": "none", "dns": "10.0.0.2, 10.0.0.3", "share_apt_cache": "no"},
			want: Options{Root: "/srv/tc", CacheDir: "/srv/cache", Subnet: "10.9.0.0/16", Mirror: "https://mirror.example/debian",
				SecurityMirror: "none", DNS: "10.0.0.2, 10.0.0.3", ShareAptCache: false},
		},
		{name: "relative root", s: provider.Settings{"root": "var/lib"}, wantErr: "not an absolute path"},
		{name: "comma in root", s: provider.Settings{"root": "/srv/a,b"}, wantErr: "overlayfs"},
		{name: "colon in cache", s: provider.Settings{"cache_dir": "/srv/a:b"}, wantErr: "overlayfs"},
		{name: "bad mirror", s: provider.Settings{"mirror": "ftp://x/debian"}, wantErr: "setting mirror"},
		{name: "bad bool", s: provider.Settings{"share_apt_cache": "maybe"}, wantErr: "share_apt_cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOptions(tt.s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNew_RejectsBadNetworkSettings(t *testing.T) {
	for _, s := range []provider.Settings{
		{"subnet": "10.213.0.5/24"},
		{"subnet": "10.213.0.0/28"},
		{"subnet": "fd00::/64"},
		{"subnet": "nonsense"},
		{"dns": "1.2.3"},
	} {
		s["root"] = t.TempDir()
		if _, err := New(provider.Env{Settings: s}); err == nil {
			t.Errorf("New(%v) succeeded", s)
		}
	}
}

func TestNew_CacheDirDefaultsToRoot(t *testing.T) {
	root := t.TempDir()
	d := newTestDriver(t, provider.Settings{"root": root})
	if d.ImageRootfs() != filepath.Join(root, "images", fmt.Sprintf("debian-12.v%d", imageFormat), "rootfs") {
		t.Errorf("image rootfs = %s", d.ImageRootfs())
	}
	cache := t.TempDir()
	d = newTestDriver(t, provider.Settings{"root": root, "cache_dir": cache})
	if !strings.HasPrefix(d.ImageRootfs(), cache+"/") || !strings.HasPrefix(d.aptPoolDir(), cache+"/") {
		t.Errorf("cache_dir not used: %s %s", d.ImageRootfs(), d.aptPoolDir())
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		gateway string
	}{
		{"10.213.0.0/24", true, "10.213.0.1"},
		{" 172.30.0.0/16 ", true, "172.30.0.1"},
		{"10.0.0.0/8", true, "10.0.0.1"},
		{"10.213.0.0/25", false, ""},
		{"10.0.0.0/7", false, ""},
		{"10.213.0.1/24", false, ""},
		{"fd00::/48", false, ""},
		{"10.213.0.0", false, ""},
	}
	for _, tt := range tests {
		p, err := parseSubnet(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseSubnet(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && gateway(p).String() != tt.gateway {
			t.Errorf("gateway(%s) = %s, want %s", p, gateway(p), tt.gateway)
		}
	}
}

func TestAllocateIP(t *testing.T) {
	p := netip.MustParsePrefix("10.213.0.0/24")
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }

	got, err := allocateIP(p, nil, 0)
	if err != nil || got != a("10.213.0.2") {
		t.Errorf("first = %v, %v; want 10.213.0.2", got, err)
	}
	got, _ = allocateIP(p, map[netip.Addr]bool{a("10.213.0.2"): true, a("10.213.0.3"): true}, 0)
	if got != a("10.213.0.4") {
		t.Errorf("with .2 .3 used = %v, want .4", got)
	}
	// Offsets wrap: the last candidate is .254, never .255 (broadcast).
	got, _ = allocateIP(p, nil, 252)
	if got != a("10.213.0.254") {
		t.Errorf("offset 252 = %v, want .254", got)
	}
	got, _ = allocateIP(p, nil, 253)
	if got != a("10.213.0.2") {
		t.Errorf("offset 253 = %v, want .2 (wrapped)", got)
	}
	got, _ = allocateIP(p, map[netip.Addr]bool{a("10.213.0.254"): true}, 252)
	if got != a("10.213.0.2") {
		t.Errorf("offset 252 with .254 used = %v, want .2", got)
	}

	// Whatever the offset, never a used or reserved address.
	used := map[netip.Addr]bool{}
	for i := 0; i < 253; i++ {
		got, err := allocateIP(p, used, uint64(i*7919))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if used[got] || got == p.Addr() || got == gateway(p) || got == a("10.213.0.255") || !p.Contains(got) {
			t.Fatalf("allocation %d gave %v", i, got)
		}
		used[got] = true
	}
	if _, err := allocateIP(p, used, 0); err == nil || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("full subnet: err = %v", err)
	}

	big := netip.MustParsePrefix("10.0.0.0/16")
	got, _ = allocateIP(big, nil, 300)
	if got != a("10.0.1.46") {
		t.Errorf("/16 offset 300 = %v, want 10.0.1.46", got)
	}
}

func TestUsedAddrs(t *testing.T) {
	subnet := netip.MustParsePrefix("10.213.0.0/24")
	routes := []ipRoute{
		{Dst: "default", Dev: "eth0"},
		{Dst: "192.0.2.0/24", Dev: "eth0"},
		{Dst: "10.213.0.11", Dev: "tcl-0011aabb"},
		{Dst: "10.213.0.12", Dev: "tcl-0012aabb"},
		{Dst: "10.214.0.9", Dev: "tcl-99999999"},
	}
	used, err := usedAddrs(routes, subnet)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{netip.MustParseAddr("10.213.0.11"): true, netip.MustParseAddr("10.213.0.12"): true}
	if !reflect.DeepEqual(used, want) {
		t.Errorf("used = %v, want %v", used, want)
	}

	for _, r := range []ipRoute{{Dst: "10.0.0.0/8", Dev: "eth1"}, {Dst: "10.213.0.7", Dev: "wg0"}} {
		_, err := usedAddrs(append(routes, r), subnet)
		var clash *SubnetClashError
		if !errors.As(err, &clash) || !strings.Contains(err.Error(), "option subnet") {
			t.Errorf("route %v: err = %v, want a SubnetClashError", r, err)
		}
	}
}

func TestNames_FitInterfaceLimit(t *testing.T) {
	for range 100 {
		id := newShortID()
		if !validShortID(id) {
			t.Fatalf("newShortID() = %q is not valid", id)
		}
		if n := hostIfName(id); len(n) > ifNameMaxBytes {
			t.Fatalf("host interface %q is longer than %d bytes", n, ifNameMaxBytes)
		}
	}
	if len(nodeIfName) > ifNameMaxBytes {
		t.Fatal("node interface name too long")
	}
	for _, bad := range []string{"", "abc", "0123456g", "0123456789", "../../x"} {
		if validShortID(bad) {
			t.Errorf("validShortID(%q) = true", bad)
		}
	}
	if a, b := newShortID(), newShortID(); a == b {
		t.Errorf("two short ids are equal: %s", a)
	}
}

func TestMeta_RoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.json")
	m := nodeMeta{
		Name: "web1.example.com", ShortID: "0a1b2c3d", Phase: phaseReady, IP: "10.213.0.9", Gateway: "10.213.0.1", MTU: 1400,
		Image: "debian-12", ImageDir: "/c/images/debian-12.v1/rootfs", Size: "small", RAMMB: 512, VCPUs: 1,
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Proc: procRef{PID: 42, Start: 123456}, BootID: "b",
		Cgroups: []string{"/sys/fs/cgroup/memory/toppcloud-local-0a1b2c3d"},
	}
	if err := writeMeta(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := readMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = metaVersion
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}

	if err := os.WriteFile(path, []byte(`{"version": 99, "name": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readMeta(path); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("future version: err = %v", err)
	}
}

func TestCheckFilePath(t *testing.T) {
	good := []string{"/etc/motd", "/root/.ssh/authorized_keys", "/a/b c/d"}
	bad := []string{"", "etc/motd", "/", "/etc/", "/etc/../../x", "/../etc/x", "/etc/./x", "/etc//x", "/etc/x/..", "/etc/\x00"}
	for _, p := range good {
		if err := checkFilePath(p); err != nil {
			t.Errorf("checkFilePath(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := checkFilePath(p); err == nil {
			t.Errorf("checkFilePath(%q) accepted", p)
		}
	}
}

func TestWriteNodeFiles(t *testing.T) {
	rootfs := t.TempDir()
	outside := t.TempDir()
	// An image may hold absolute symlinks; followed on the host they
	// would lead out of the node.
	if err := os.MkdirAll(filepath.Join(rootfs, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(rootfs, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/elsewhere", filepath.Join(rootfs, "resolv")); err != nil {
		t.Fatal(err)
	}

	files := []nodeFile{
		{path: "/root/.ssh/authorized_keys", data: []byte(testKey + "\n"), mode: 0o600},
		{path: "/bin/tool", data: []byte("#!/bin/sh\n"), mode: 0o755},
		{path: "/resolv", data: []byte("nameserver 10.0.0.2\n"), mode: 0o644},
		{path: "/var/lib/dbus/machine-id", symlink: "/etc/machine-id"},
	}
	if err := writeNodeFiles(rootfs, files); err != nil {
		t.Fatal(err)
	}
	check := func(rel string, mode os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(rootfs, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s mode = %v, want %v", rel, fi.Mode(), mode)
		}
	}
	check("root/.ssh", os.ModeDir|0o700)
	check("root/.ssh/authorized_keys", 0o600)
	check("usr/bin/tool", 0o755) // through the relative symlink, inside
	check("resolv", 0o644)       // the symlink itself was replaced
	if l, err := os.Readlink(filepath.Join(rootfs, "var/lib/dbus/machine-id")); err != nil || l != "/etc/machine-id" {
		t.Errorf("machine-id link = %q, %v", l, err)
	}

	err := writeNodeFiles(rootfs, []nodeFile{{path: "/evil/x", data: []byte("x"), mode: 0o644}})
	if err == nil {
		t.Error("writing through an absolute symlink succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a file escaped the root: %v", entries)
	}
}

func TestIdentityFiles(t *testing.T) {
	keys, err := generateHostKeys("root@web1")
	if err != nil {
		t.Fatal(err)
	}
	files := identityFiles("web1.example.com", []string{testKey, "  " + testKey + "  "}, keys, []byte("nameserver 10.0.0.2\n"), aptSources(DefaultMirror, "none"))
	byPath := map[string]nodeFile{}
	for _, f := range files {
		byPath[f.path] = f
	}
	for _, p := range []string{"/etc/hostname", "/etc/hosts", "/etc/machine-id", "/etc/resolv.conf", "/etc/apt/sources.list",
		"/root/.ssh/authorized_keys", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ecdsa_key.pub"} {
		if _, ok := byPath[p]; !ok {
			t.Errorf("missing %s", p)
		}
	}
	hosts := string(byPath["/etc/hosts"].data)
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost\n") || !strings.Contains(hosts, "127.0.1.1\tweb1.example.com web1\n") {
		t.Errorf("hosts = %q", hosts)
	}
	if got := string(byPath["/root/.ssh/authorized_keys"].data); got != testKey+"\n"+testKey+"\n" || byPath["/root/.ssh/authorized_keys"].mode != 0o600 {
		t.Errorf("authorized_keys = %q", got)
	}
	if strings.Contains(string(byPath["/etc/apt/sources.list"].data), "security") {
		t.Error("security_mirror none still listed")
	}
	mid := strings.TrimSpace(string(byPath["/etc/machine-id"].data))
	other := identityFiles("web2", []string{testKey}, nil, nil, "")
	if len(mid) != 32 || strings.TrimSpace(string(other[2].data)) == mid {
		t.Errorf("machine ids %q and %q: want 32 hex digits, different per node", mid, other[2].data)
	}
}

func TestGenerateHostKeys_ValidAndDistinct(t *testing.T) {
	a, err := generateHostKeys("root@a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := generateHostKeys("root@b")
	if len(a) != 4 {
		t.Fatalf("got %d files, want 4", len(a))
	}
	for i, f := range a {
		if strings.HasSuffix(f.path, ".pub") {
			if _, _, _, _, err := ssh.ParseAuthorizedKey(f.data); err != nil {
				t.Errorf("%s: %v", f.path, err)
			}
			continue
		}
		if f.mode != 0o600 {
			t.Errorf("%s mode %v", f.path, f.mode)
		}
		if blk, _ := pem.Decode(f.data); blk == nil || blk.Type != "OPENSSH PRIVATE KEY" {
			t.Errorf("%s is not an OpenSSH private key", f.path)
		}
		if _, err := ssh.ParsePrivateKey(f.data); err != nil {
			t.Errorf("%s: %v", f.path, err)
		}
		if string(f.data) == string(b[i].data) {
			t.Errorf("%s is the same for two nodes", f.path)
		}
	}
}

func TestCheckPrereqs(t *testing.T) {
	found := func(string) (string, error) { return "/usr/bin/x", nil }
	missing := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, m := range names {
				if m == n {
					return "", errors.New("not found")
				}
			}
			return "/usr/bin/" + n, nil
		}
	}
	if err := checkPrereqs(hostEnv{goos: "linux", euid: 0, lookPath: found}); err != nil {
		t.Errorf("all present: %v", err)
	}
	tests := []struct {
		h        hostEnv
		contains []string
		not      []string
	}{
		{hostEnv{goos: "linux", euid: 1000, lookPath: found}, []string{"not running as root", "sudo toppcloud"}, []string{"apt-get"}},
		{hostEnv{goos: "linux", euid: 0, lookPath: missing("systemd-nspawn", "debootstrap", "nft")},
			[]string{"missing systemd-nspawn, debootstrap, nft", "apt-get install -y systemd-container debootstrap nftables"}, []string{"root"}},
		{hostEnv{goos: "linux", euid: 0, lookPath: missing("debootstrap")}, []string{"Fix: apt-get install -y debootstrap"}, []string{"nftables"}},
		{hostEnv{goos: "linux", euid: 1000, lookPath: missing("ip")}, []string{"sudo", "apt-get install -y iproute2"}, nil},
		// Off Linux nothing else matters: no command or user would help.
		{hostEnv{goos: "darwin", euid: 0, lookPath: found},
			[]string{"need Linux; this is macOS", "Fix: on macOS use a cloud provider, or provider = existing"}, []string{"root", "apt-get"}},
		{hostEnv{goos: "windows", euid: 1000, lookPath: missing("ip")}, []string{"this is windows"}, []string{"root", "apt-get"}},
	}
	for _, tt := range tests {
		err := checkPrereqs(tt.h)
		var pe *PrereqError
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want a PrereqError", err)
		}
		for _, c := range tt.contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%q does not contain %q", err, c)
			}
		}
		for _, c := range tt.not {
			if strings.Contains(err.Error(), c) {
				t.Errorf("%q contains %q", err, c)
			}
		}
	}
}

func TestDriver_ChecksPrereqsBeforeChanging(t *testing.T) {
	found := func(string) (string, error) { return "/usr/bin/x", nil }
	for name, h := range map[string]hostEnv{
		"non-root":      {goos: "linux", euid: 1000, lookPath: func(string) (string, error) { return "", errors.New("no") }},
		"macOS as root": {goos: "darwin", euid: 0, lookPath: found},
	} {
		t.Run(name, func(t *testing.T) {
			d := newTestDriver(t, nil)
			d.envHost = h
			_, err := d.CreateNode(context.Background(), provider.CreateRequest{Name: "n1", AuthorizedKeys: []string{testKey}})
			var pe *PrereqError
			if !errors.As(err, &pe) {
				t.Fatalf("CreateNode = %v, want a PrereqError", err)
			}
			if entries, _ := os.ReadDir(d.opts.Root); len(entries) != 0 {
				t.Errorf("CreateNode left files although prerequisites failed: %v", entries)
			}
		})
	}
}

func TestValidateCreate(t *testing.T) {
	ok := provider.CreateRequest{Name: "web1", AuthorizedKeys: []string{testKey}, Size: provider.Size{ID: "small"}}
	if _, err := validateCreate(ok); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	mod := func(f func(*provider.CreateRequest)) provider.CreateRequest {
		r := ok
		f(&r)
		return r
	}
	bad := map[string]provider.CreateRequest{
		"bad name":   mod(func(r *provider.CreateRequest) { r.Name = "Web_1" }),
		"long name":  mod(func(r *provider.CreateRequest) { r.Name = strings.Repeat("a", 30) + "." + strings.Repeat("b", 40) }),
		"image":      mod(func(r *provider.CreateRequest) { r.Image = provider.Image{ID: "ubuntu"} }),
		"size":       mod(func(r *provider.CreateRequest) { r.Size = provider.Size{ID: "huge"} }),
		"no keys":    mod(func(r *provider.CreateRequest) { r.AuthorizedKeys = nil }),
		"bad key":    mod(func(r *provider.CreateRequest) { r.AuthorizedKeys = []string{"ssh-rsa nonsense"} }),
		"two lines":  mod(func(r *provider.CreateRequest) { r.AuthorizedKeys = []string{testKey + "\n" + testKey} }),
		"file path":  mod(func(r *provider.CreateRequest) { r.Files = map[string][]byte{"/etc/../../x": nil} }),
		"relative":   mod(func(r *provider.CreateRequest) { r.Files = map[string][]byte{"etc/x": nil} }),
		"file is /":  mod(func(r *provider.CreateRequest) { r.Files = map[string][]byte{"/": nil} }),
		"empty name": mod(func(r *provider.CreateRequest) { r.Name = "" }),
	}
	for name, req := range bad {
		if _, err := validateCreate(req); !errors.Is(err, provider.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDriver_UnknownNode(t *testing.T) {
	d := newTestDriver(t, nil)
	ctx := context.Background()
	for _, id := range []string{"nope", "../etc", ""} {
		if _, err := d.GetNode(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("GetNode(%q) = %v", id, err)
		}
		if err := d.DestroyNode(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("DestroyNode(%q) = %v", id, err)
		}
		if err := d.StartNode(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("StartNode(%q) = %v", id, err)
		}
		if err := d.StopNode(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("StopNode(%q) = %v", id, err)
		}
	}
	nodes, err := d.ListNodes(ctx)
	if err != nil || len(nodes) != 0 {
		t.Errorf("ListNodes on an empty root = %v, %v", nodes, err)
	}
}

func TestDriver_ListNodesReadsRecords(t *testing.T) {
	d := newTestDriver(t, nil)
	p := d.nodePaths("web1")
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A record whose process is long gone: stopped, with its address.
	if err := writeMeta(p.meta, nodeMeta{Name: "web1", Phase: phaseReady, IP: "10.213.0.9", Image: imageID, Size: "small", Proc: procRef{PID: 1 << 30, Start: 1}}); err != nil {
		t.Fatal(err)
	}
	// A creation whose creator died: error.
	p2 := d.nodePaths("web2")
	_ = os.MkdirAll(p2.dir, 0o700)
	if err := writeMeta(p2.meta, nodeMeta{Name: "web2", Phase: phaseCreating, Creator: procRef{PID: 1 << 30, Start: 1}}); err != nil {
		t.Fatal(err)
	}
	// A creation in progress in this very process: pending.
	p3 := d.nodePaths("web3")
	_ = os.MkdirAll(p3.dir, 0o700)
	if err := writeMeta(p3.meta, nodeMeta{Name: "web3", Phase: phaseCreating, Creator: selfRef()}); err != nil {
		t.Fatal(err)
	}
	// A directory without a record (a create that just began) is skipped.
	_ = os.MkdirAll(d.nodePaths("web4").dir, 0o700)

	nodes, err := d.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]provider.Node{}
	for _, n := range nodes {
		got[n.ID] = n
	}
	if len(got) != 3 {
		t.Fatalf("nodes = %+v", nodes)
	}
	if n := got["web1"]; n.State != provider.StateStopped || n.Address() != "10.213.0.9" || n.Provider != "local" || n.Name != "web1" || n.Size != "small" {
		t.Errorf("web1 = %+v", n)
	}
	if got["web2"].State != provider.StateError || got["web3"].State != provider.StatePending {
		t.Errorf("web2 = %s, web3 = %s", got["web2"].State, got["web3"].State)
	}
	n, err := d.GetNode(context.Background(), "web1")
	if err != nil || n.Address() != "10.213.0.9" {
		t.Errorf("GetNode = %+v, %v", n, err)
	}
}

func TestDriver_ImagesAndSizes(t *testing.T) {
	d := newTestDriver(t, nil)
	images, err := d.ListImages(context.Background())
	if err != nil || len(images) != 1 || images[0].ID != "debian-12" || !strings.Contains(images[0].Note, "not built") {
		t.Fatalf("ListImages = %+v, %v", images, err)
	}
	if err := os.MkdirAll(filepath.Dir(d.ImageRootfs()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(d.ImageRootfs()), "image.json"), []byte(`{"id":"debian-12","built":"2026-01-02T03:04:05Z","bytes":241172480}`), 0o644); err != nil {
		t.Fatal(err)
	}
	images, _ = d.ListImages(context.Background())
	if !strings.Contains(images[0].Note, "built 2026-01-0") || !strings.Contains(images[0].Note, "230 MB") || images[0].Created.IsZero() {
		t.Errorf("built image = %+v", images[0])
	}
	m, _ := provider.ParseMatcher("debian-12")
	if _, err := provider.MatchImage(images, m); err != nil {
		t.Errorf("default image matcher: %v", err)
	}
	sizes, _ := d.ListSizes(context.Background())
	m, _ = provider.ParseMatcher("medium")
	if s, err := provider.MatchSize(sizes, m); err != nil || s.RAMMB != 1024 || s.Note == "" {
		t.Errorf("medium = %+v, %v", s, err)
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
	start, state, err := parseStat(line)
	if err != nil || start != 987654 || state != 'S' {
		t.Errorf("parseStat = %d %c %v", start, state, err)
	}
	if _, _, err := parseStat([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
	self := selfRef()
	if !self.alive() {
		t.Error("this process is not alive")
	}
	if (procRef{PID: self.PID, Start: self.Start + 1}).alive() {
		t.Error("a wrong start time still counts as alive")
	}
}

func TestCmdlineHasRoot(t *testing.T) {
	argv := func(s ...string) [][]byte {
		var out [][]byte
		for _, a := range s {
			out = append(out, []byte(a))
		}
		return out
	}
	if !cmdlineHasRoot(argv("/usr/bin/systemd-nspawn", "--boot", "-D", "/r/nodes/a/rootfs", "-M", "x"), "/r/nodes/a/rootfs") {
		t.Error("nspawn argv not recognised")
	}
	if cmdlineHasRoot(argv("/usr/bin/systemd-nspawn", "-D", "/r/nodes/ab/rootfs"), "/r/nodes/a/rootfs") {
		t.Error("another node's nspawn recognised")
	}
	if cmdlineHasRoot(argv("vim", "/r/nodes/a/rootfs"), "/r/nodes/a/rootfs") {
		t.Error("unrelated process recognised")
	}
}

func TestNodeResolvConf(t *testing.T) {
	host := []byte("# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.255.255.53\noptions edns0\n")
	got, err := nodeResolvConf(nil, host)
	if err != nil || !strings.Contains(string(got), "nameserver 10.255.255.53\n") || strings.Contains(string(got), "127.0.0.53") || !strings.Contains(string(got), "search corp.example") {
		t.Errorf("host servers: %q, %v", got, err)
	}
	resolved := []byte("nameserver 192.0.2.53\n")
	got, _ = nodeResolvConf(nil, []byte("nameserver 127.0.0.53\nsearch x\n"), resolved)
	if !strings.Contains(string(got), "nameserver 192.0.2.53") || strings.Contains(string(got), "search") {
		t.Errorf("fallback to resolved: %q", got)
	}
	got, _ = nodeResolvConf([]string{"10.0.0.2"}, host)
	if strings.Contains(string(got), "10.255.255.53") || !strings.Contains(string(got), "nameserver 10.0.0.2") {
		t.Errorf("override: %q", got)
	}
	if _, err := nodeResolvConf(nil, []byte("nameserver 127.0.0.1\nnameserver ::1\n")); err == nil || !strings.Contains(err.Error(), "dns =") {
		t.Errorf("only loopback: err = %v", err)
	}
}

func TestCgroupParsing(t *testing.T) {
	mountinfo := []byte(`25 1 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
30 25 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
31 25 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 25 0:30 /outer /sys/fs/cgroup/my\040memory rw,relatime - cgroup cgroup rw,memory
38 25 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`)
	mnt, root, ok := cgroupMount(mountinfo, "memory")
	if !ok || mnt != "/sys/fs/cgroup/my memory" || root != "/outer" {
		t.Errorf("memory mount = %q %q %v", mnt, root, ok)
	}
	if mnt, _, _ := cgroupMount(mountinfo, "cpu"); mnt != "/sys/fs/cgroup/cpu" {
		t.Errorf("cpu mount = %q (must not match cpuacct)", mnt)
	}
	if _, _, ok := cgroupMount(mountinfo, "pids"); ok {
		t.Error("pids found")
	}
	pc := []byte("9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/\n")
	if p, ok := procCgroupPath(pc, "memory"); !ok || p != "/process_api/abc" {
		t.Errorf("memory path = %q", p)
	}
	if p, ok := procCgroupPath(pc, "cpu"); !ok || p != "/x" {
		t.Errorf("cpu path = %q", p)
	}
	pts := parseMountPoints(mountinfo)
	if len(pts) != 5 || pts[3] != "/sys/fs/cgroup/my memory" {
		t.Errorf("mount points = %q", pts)
	}
}

func TestNft(t *testing.T) {
	script := natScript("0a1b2c3d", "10.213.0.9")
	for _, want := range []string{"table ip toppcloud_local", "type nat hook postrouting priority srcnat", `ip saddr 10.213.0.9 oifname != "tcl-*" masquerade comment "toppcloud-local 0a1b2c3d"`} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	out := []byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"chain": {"family": "ip", "table": "toppcloud_local", "name": "postrouting", "handle": 1}}, {"rule": {"family": "ip", "table": "toppcloud_local", "chain": "postrouting", "handle": 4, "comment": "toppcloud-local 0a1b2c3d", "expr": []}}, {"rule": {"handle": 7, "comment": "toppcloud-local ffffffff", "expr": []}}]}`)
	rules, err := parseNftRules(out)
	if err != nil || len(rules) != 2 || rules[0] != (natRule{4, "toppcloud-local 0a1b2c3d"}) || rules[1].Handle != 7 {
		t.Errorf("rules = %+v, %v", rules, err)
	}
}

func TestContainerArgv_JoinsCgroupsThenExecs(t *testing.T) {
	m := nodeMeta{Name: "web1", ShortID: "0a1b2c3d"}
	nargv := nspawnArgs("/usr/bin/systemd-nspawn", m, "/r/nodes/web1/rootfs")
	for _, want := range []string{"--boot", "--register=no", "--keep-unit", "-M", "tcl-0a1b2c3d", "--hostname=web1", "--network-namespace-path=/run/netns/toppcloud-0a1b2c3d", "--capability=CAP_NET_ADMIN"} {
		if !strings.Contains(strings.Join(nargv, " "), want) {
			t.Errorf("nspawn argv lacks %q: %v", want, nargv)
		}
	}
	if got := containerArgv(nargv, nil); !reflect.DeepEqual(got, nargv) {
		t.Errorf("without cgroups argv = %v", got)
	}

	// Run the wrapper for real with fake cgroup.procs files and echo in
	// place of nspawn: each file gets the wrapper's pid, which is the pid
	// of the program it execs.
	dirs := []string{t.TempDir(), t.TempDir() + "/with space"}
	_ = os.MkdirAll(dirs[1], 0o755)
	argv := containerArgv([]string{"/bin/sh", "-c", `echo "$$ $1"`, "sh", "arg with 'quotes' and $x"}, dirs)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, rest, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if rest != "arg with 'quotes' and $x" {
		t.Errorf("argument mangled: %q", rest)
	}
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("output %q", out)
	}
	for _, d := range dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if strings.TrimSpace(string(b)) != pid {
			t.Errorf("%s/cgroup.procs = %q, want %s", d, b, pid)
		}
	}
}

func TestAptPool_SeedAndHarvest(t *testing.T) {
	base := t.TempDir()
	pool, upper, archives := filepath.Join(base, "pool"), filepath.Join(base, "upper"), filepath.Join(base, "node-archives")
	for _, d := range []string{pool, archives} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(pool, "a_1_all.deb"), "a")
	write(filepath.Join(pool, "lock"), "")
	seedAptCache(pool, upper)
	if b, err := os.ReadFile(filepath.Join(upper, aptArchivesRel, "a_1_all.deb")); err != nil || string(b) != "a" {
		t.Errorf("seeded = %q, %v", b, err)
	}
	if exists(filepath.Join(upper, aptArchivesRel, "lock")) {
		t.Error("non-.deb file seeded")
	}

	write(filepath.Join(archives, "b_2_amd64.deb"), "b")
	write(filepath.Join(archives, "a_1_all.deb"), "other")
	write(filepath.Join(archives, "notes.txt"), "x")
	harvestAptCache(archives, pool)
	if b, _ := os.ReadFile(filepath.Join(pool, "b_2_amd64.deb")); string(b) != "b" {
		t.Errorf("harvested = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(pool, "a_1_all.deb")); string(b) != "a" {
		t.Error("harvest replaced a file the pool had")
	}
	if exists(filepath.Join(pool, "notes.txt")) {
		t.Error("non-.deb file harvested")
	}
}
