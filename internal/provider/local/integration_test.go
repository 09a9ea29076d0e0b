package local_test

// Integration tests: real nodes on this machine. They run only with
// TOPPCLOUD_INTEGRATION=1 as root (localtest.Skip), use a temporary root
// per driver and share the image cache (localtest.CacheDir), so the image
// is built once per machine.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

func TestIntegration_Conformance(t *testing.T) {
	localtest.Skip(t)
	providertest.Run(t, providertest.Opt{
		New:   func(t *testing.T) provider.Driver { return localtest.NewDriver(t, nil) },
		Image: "debian-12",
		Size:  "small",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			root := d.(*local.Driver).Options().Root
			b, err := os.ReadFile(filepath.Join(root, "nodes", n.ID, "rootfs/root/.ssh/authorized_keys"))
			if err != nil || !strings.Contains(string(b), key) {
				t.Errorf("authorized_keys = %q, %v; want it to hold %q", b, err, key)
			}
		},
		SkipBadAuth: "the local provider has no credentials",
		// The first run builds the image (1 to 2 minutes).
		Timeout: 5 * time.Minute,
	})
}

// record is the part of node.json the leak checks need.
type record struct {
	ShortID string `json:"short_id"`
	IP      string `json:"ip"`
	Proc    struct {
		PID int `json:"pid"`
	} `json:"proc"`
	Cgroups []string `json:"cgroups"`
}

func readRecord(t *testing.T, d *local.Driver, name string) record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Options().Root, "nodes", name, "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.ShortID == "" || r.IP == "" {
		t.Fatalf("record without short id or address: %s", b)
	}
	return r
}

func TestIntegration_Node(t *testing.T) {
	d := localtest.NewDriver(t, nil)
	ctx := context.Background()
	name := localtest.UniqueName("it-node")
	n := localtest.CreateNode(t, d, name, provider.CreateRequest{
		Files: map[string][]byte{"/etc/toppcloud/hello.txt": []byte("hello\n")},
	})
	rec := readRecord(t, d, name)
	if n.Provider != "local" || n.ID != name || n.Address() != rec.IP {
		t.Errorf("node = %+v", n.Node)
	}

	c := n.Dial(t)
	if v := n.Run(t, c, "cat /etc/debian_version"); !strings.HasPrefix(v, "12.") {
		t.Errorf("/etc/debian_version = %q", v)
	}
	if h := strings.TrimSpace(n.Run(t, c, "hostname")); h != name {
		t.Errorf("hostname = %q, want %q", h, name)
	}
	if out := n.Run(t, c, "getent ahostsv4 localhost; getent hosts "+name); !strings.Contains(out, "127.0.0.1") || !strings.Contains(strings.Join(strings.Fields(out), " "), "127.0.1.1 "+name) {
		t.Errorf("getent hosts = %q", out)
	}
	if out := n.Run(t, c, "cat /etc/toppcloud/hello.txt; stat -c %a /root/.ssh /root/.ssh/authorized_keys"); out != "hello\n700\n600\n" {
		t.Errorf("files = %q", out)
	}
	if out := n.Run(t, c, "systemctl is-system-running --wait || systemctl --failed --no-legend"); strings.TrimSpace(out) != "running" {
		t.Errorf("systemd in the node is not running cleanly: %q", out)
	}

	t.Run("apt reaches the archive", func(t *testing.T) {
		out := n.Run(t, c, "timeout 120 apt-get -q update 2>&1")
		if !strings.Contains(out, "InRelease") {
			t.Errorf("apt-get update output: %s", out)
		}
	})

	t.Run("limits", func(t *testing.T) {
		var found bool
		for _, dir := range rec.Cgroups {
			if b, err := os.ReadFile(filepath.Join(dir, "memory.limit_in_bytes")); err == nil {
				found = true
				if strings.TrimSpace(string(b)) != strconv.Itoa(512<<20) {
					t.Errorf("memory limit = %s, want 512 MB", b)
				}
				procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				if len(strings.Fields(string(procs))) < 3 {
					t.Errorf("the container's processes are not in its memory cgroup: %q", procs)
				}
			}
		}
		for _, dir := range rec.Cgroups {
			if b, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us")); err == nil && strings.TrimSpace(string(b)) != "100000" {
				t.Errorf("cpu quota = %s, want 100000 (1 CPU)", b)
			}
		}
		sizes, _ := d.ListSizes(ctx)
		if !found && !strings.Contains(sizes[0].Note, "NOT enforced") {
			t.Errorf("no memory cgroup, but the size note says %q", sizes[0].Note)
		}
	})

	t.Run("same name again", func(t *testing.T) {
		_, pub := localtest.NewKey(t)
		_, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, AuthorizedKeys: []string{pub}})
		if !errors.Is(err, provider.ErrExists) {
			t.Fatalf("second create = %v, want ErrExists", err)
		}
		if got, err := d.GetNode(ctx, name); err != nil || got.State != provider.StateRunning {
			t.Errorf("the first node suffered: %+v, %v", got, err)
		}
	})

	t.Run("stop and start", func(t *testing.T) {
		c.Close()
		if err := d.StopNode(ctx, name); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.GetNode(ctx, name); got.State != provider.StateStopped {
			t.Errorf("after stop: state %s", got.State)
		}
		if _, err := n.TryDial(2 * time.Second); err == nil {
			t.Error("SSH still answers after stop")
		}
		if err := d.StopNode(ctx, name); err != nil {
			t.Errorf("stopping a stopped node: %v", err)
		}
		// What a host reboot takes away: the namespace, the veth (with
		// its route) and the NAT rule. StartNode must bring them back.
		rec := readRecord(t, d, name)
		for _, argv := range [][]string{
			{"ip", "link", "del", "tcl-" + rec.ShortID},
			{"ip", "netns", "del", "toppcloud-" + rec.ShortID},
		} {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v %s", argv, err, out)
			}
		}
		deleteNATRule(t, rec.ShortID)
		if err := d.StartNode(ctx, name); err != nil {
			t.Fatal(err)
		}
		if out, _ := exec.Command("nft", "list", "ruleset").Output(); !strings.Contains(string(out), "toppcloud-local "+rec.ShortID) {
			t.Errorf("StartNode did not restore the NAT rule:\n%s", out)
		}
		_, key, err := provider.WaitUntilReady(ctx, d, name, provider.WaitOptions{SSHTimeout: time.Minute, ProbeHostKey: localtest.ProbeHostKey})
		if err != nil {
			t.Fatal(err)
		}
		if key != n.HostKey {
			t.Errorf("host key changed across stop/start: %s, was %s", key, n.HostKey)
		}
		c2 := n.Dial(t)
		if out := n.Run(t, c2, "cat /etc/toppcloud/hello.txt"); out != "hello\n" {
			t.Errorf("file lost across restart: %q", out)
		}
		// The archive is reachable again: NAT and the default route are
		// back. Downloading a package also feeds the shared apt pool
		// when the node is destroyed (checked below).
		n.Run(t, c2, "timeout 120 apt-get -q update && timeout 120 apt-get -q -y --download-only install hello")
		if err := d.StartNode(ctx, name); err != nil {
			t.Errorf("starting a running node: %v", err)
		}
	})

	t.Run("destroy leaves nothing", func(t *testing.T) {
		rec := readRecord(t, d, name) // the restart made new cgroups and a new process
		pool := filepath.Join(localtest.CacheDir(), "apt-cache")
		old, _ := filepath.Glob(filepath.Join(pool, "hello_*.deb"))
		for _, f := range old {
			_ = os.Remove(f)
		}
		if err := d.DestroyNode(ctx, name); err != nil {
			t.Fatal(err)
		}
		assertGone(t, d, name, rec)
		if got, _ := filepath.Glob(filepath.Join(pool, "hello_*.deb")); len(got) == 0 {
			t.Errorf("the package the node downloaded did not reach the shared pool %s", pool)
		}
		if _, err := d.GetNode(ctx, name); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("GetNode after destroy = %v", err)
		}
		if err := d.DestroyNode(ctx, name); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("second destroy = %v, want ErrNotFound", err)
		}
	})
}

// deleteNATRule removes the node's masquerade rule behind the driver's back.
func deleteNATRule(t *testing.T, shortID string) {
	t.Helper()
	out, err := exec.Command("nft", "-a", "list", "chain", "ip", "toppcloud_local", "postrouting").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "toppcloud-local "+shortID) {
			_, h, _ := strings.Cut(line, "# handle ")
			if out, err := exec.Command("nft", "delete", "rule", "ip", "toppcloud_local", "postrouting", "handle", strings.TrimSpace(h)).CombinedOutput(); err != nil {
				t.Fatalf("nft delete: %v %s", err, out)
			}
			return
		}
	}
	t.Fatalf("no NAT rule for %s in:\n%s", shortID, out)
}

// assertGone checks every host-wide trace of a node: namespace, veth,
// route, NAT rule, mounts, processes, cgroups and files.
func assertGone(t *testing.T, d *local.Driver, name string, rec record) {
	t.Helper()
	nodeDir := filepath.Join(d.Options().Root, "nodes", name)
	if _, err := os.Lstat("/run/netns/toppcloud-" + rec.ShortID); err == nil {
		t.Errorf("network namespace toppcloud-%s left", rec.ShortID)
	}
	if _, err := os.Lstat("/sys/class/net/tcl-" + rec.ShortID); err == nil {
		t.Errorf("veth tcl-%s left", rec.ShortID)
	}
	if out, _ := exec.Command("ip", "-4", "route", "show", rec.IP+"/32").Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("route left: %s", out)
	}
	if out, _ := exec.Command("nft", "list", "ruleset").Output(); strings.Contains(string(out), "toppcloud-local "+rec.ShortID) {
		t.Errorf("nft rule left:\n%s", out)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), nodeDir) {
		t.Errorf("mount under %s left", nodeDir)
	}
	if rec.Proc.PID > 0 {
		if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(rec.Proc.PID) + "/cmdline"); err == nil && strings.Contains(string(cmd), nodeDir) {
			t.Errorf("nspawn process %d left", rec.Proc.PID)
		}
	}
	if procs := processesUsing(nodeDir); len(procs) > 0 {
		t.Errorf("processes left: %v", procs)
	}
	for _, cg := range rec.Cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s left", cg)
		}
	}
	if _, err := os.Lstat(nodeDir); err == nil {
		t.Errorf("%s left", nodeDir)
	}
}

// processesUsing lists processes whose command line mentions dir.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// hostObjects snapshots our host-wide objects by name.
func hostObjects(t *testing.T) map[string]bool {
	t.Helper()
	objs := map[string]bool{}
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			objs["netns "+e.Name()] = true
		}
	}
	if entries, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "tcl-") {
				objs["link "+e.Name()] = true
			}
		}
	}
	out, _ := exec.Command("nft", "list", "ruleset").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, `comment "toppcloud-local `); i >= 0 {
			objs["nft "+line[i:]] = true
		}
	}
	return objs
}

func TestIntegration_ConcurrentCreates(t *testing.T) {
	d := localtest.NewDriver(t, nil)
	const count = 3
	nodes := make([]localtest.Node, count)
	errs := make([]error, count)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = localtest.Create(ctx, d, localtest.UniqueName("it-conc"), provider.CreateRequest{})
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if n.ID != "" {
			t.Cleanup(func() {
				if err := d.DestroyNode(context.Background(), n.ID); err != nil {
					t.Errorf("destroy %s: %v", n.ID, err)
				}
			})
		}
		if errs[i] != nil {
			t.Error(errs[i])
		}
	}
	if t.Failed() {
		return
	}
	seen := map[string]string{}
	for _, n := range nodes {
		if other, dup := seen[n.Address()]; dup {
			t.Errorf("nodes %s and %s share address %s", n.Name, other, n.Address())
		}
		seen[n.Address()] = n.Name
	}
	// Nodes reach each other without NAT.
	c := nodes[0].Dial(t)
	out := nodes[0].Run(t, c, "python3 -c 'import socket; s=socket.create_connection((\""+nodes[1].Address()+"\", 22), 5); print(s.recv(7).decode())'")
	if !strings.HasPrefix(out, "SSH-2.0") {
		t.Errorf("node to node: %q", out)
	}
}

func TestIntegration_CancelledCreateLeavesNothing(t *testing.T) {
	d := localtest.NewDriver(t, nil)
	_, pub := localtest.NewKey(t)
	// Make sure the image exists so the cancellation points fall in node
	// creation, not in the build.
	if _, err := d.ListImages(context.Background()); err != nil {
		t.Fatal(err)
	}
	warm := localtest.CreateNode(t, d, localtest.UniqueName("it-warm"), provider.CreateRequest{})
	if err := d.DestroyNode(context.Background(), warm.ID); err != nil {
		t.Fatal(err)
	}

	for _, after := range []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond} {
		before := hostObjects(t)
		name := localtest.UniqueName("it-cancel")
		ctx, cancel := context.WithTimeout(context.Background(), after)
		n, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, AuthorizedKeys: []string{pub}, Size: provider.Size{ID: "small"}})
		cancel()
		if err == nil {
			// Finished before the deadline: fine, but then it must
			// destroy cleanly.
			if err := d.DestroyNode(context.Background(), n.ID); err != nil {
				t.Fatalf("destroy: %v", err)
			}
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancel after %s: err = %v, want the context's error", after, err)
		}
		nodeDir := filepath.Join(d.Options().Root, "nodes", name)
		if _, err := os.Lstat(nodeDir); err == nil {
			t.Errorf("cancel after %s: %s left", after, nodeDir)
		}
		if procs := processesUsing(nodeDir); len(procs) > 0 {
			t.Errorf("cancel after %s: processes left: %v", after, procs)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mi), nodeDir) {
			t.Errorf("cancel after %s: mount left", after)
		}
		// Other tests may add objects meanwhile; ours would be extra
		// ones that stay, so look again briefly before failing.
		for obj := range hostObjects(t) {
			if !before[obj] {
				time.Sleep(200 * time.Millisecond)
				if hostObjects(t)[obj] {
					t.Errorf("cancel after %s: %s left", after, obj)
				}
			}
		}
	}
}

// TestIntegration_NodeOutlivesCreator creates a node from a child process
// that exits at once, as the CLI does, and checks the node keeps running.
func TestIntegration_NodeOutlivesCreator(t *testing.T) {
	d := localtest.NewDriver(t, nil)
	name := localtest.UniqueName("it-detach")
	signer, pub := localtest.NewKey(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCreateAndExit$")
	cmd.Env = append(os.Environ(), "TOPPCLOUD_LOCAL_HELPER="+strings.Join([]string{d.Options().Root, localtest.CacheDir(), name, pub}, "\n"))
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		if err := d.DestroyNode(context.Background(), name); err != nil && !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("destroy: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	ctx := context.Background()
	n, key, err := provider.WaitUntilReady(ctx, d, name, provider.WaitOptions{SSHTimeout: time.Minute, ProbeHostKey: localtest.ProbeHostKey})
	if err != nil {
		t.Fatal(err)
	}
	node := localtest.Node{Node: n, Signer: signer, HostKey: key}
	c := node.Dial(t)
	if v := node.Run(t, c, "cat /etc/debian_version"); !strings.HasPrefix(v, "12.") {
		t.Errorf("debian_version = %q", v)
	}
}

// TestHelperCreateAndExit is the child of TestIntegration_NodeOutlivesCreator.
func TestHelperCreateAndExit(t *testing.T) {
	spec := os.Getenv("TOPPCLOUD_LOCAL_HELPER")
	if spec == "" {
		t.Skip("helper process for TestIntegration_NodeOutlivesCreator")
	}
	f := strings.SplitN(spec, "\n", 4)
	d, err := local.New(provider.Env{Settings: provider.Settings{"root": f[0], "cache_dir": f[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateNode(context.Background(), provider.CreateRequest{Name: f[2], AuthorizedKeys: []string{f[3]}, Size: provider.Size{ID: "small"}}); err != nil {
		t.Fatal(err)
	}
	os.Exit(0) // no cleanup: the node must outlive us
}

// cancelAfter cancels a context once the log has shown the first stage
// done and a few lines of the second (when /proc is mounted in the target).
type cancelAfter struct {
	t      *testing.T
	mu     sync.Mutex
	seen   int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.Contains(string(p), "first stage") {
		c.seen = 1
	} else if c.seen > 0 {
		c.seen++
		if c.seen == 5 {
			c.t.Logf("cancelling the build at: %s", strings.TrimSpace(string(p)))
			c.cancel()
		}
	}
	return len(p), nil
}

func TestIntegration_InterruptedImageBuildLeavesNoImage(t *testing.T) {
	localtest.Skip(t)
	cache := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := local.New(provider.Env{Settings: provider.Settings{"root": cache, "cache_dir": cache}, Log: &cancelAfter{t: t, cancel: cancel}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.EnsureImage(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("EnsureImage = %v, want context.Canceled", err)
	}
	// The lock file may stay; no image or build directory may.
	left, _ := filepath.Glob(filepath.Join(cache, "images", "debian-12.v*"))
	if tmp, _ := filepath.Glob(filepath.Join(cache, "images", ".debian-12*")); len(left)+len(tmp) > 0 {
		left = append(left, tmp...)
		t.Errorf("left behind: %v", left)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), cache) {
		t.Errorf("mounts left under %s:\n%s", cache, mi)
	}
	if procs := processesUsing(cache); len(procs) > 0 {
		t.Errorf("processes left: %v", procs)
	}
	images, _ := d.ListImages(context.Background())
	if !strings.Contains(images[0].Note, "not built") {
		t.Errorf("image note after an interrupted build: %q", images[0].Note)
	}
}

// TestIntegration_DestroyAfterCreatorDied destroys a node whose creating
// process died before it recorded the container process: the record
// still says "creating" and has no pid. Destroy must find and stop the
// container anyway and leave nothing behind.
func TestIntegration_DestroyAfterCreatorDied(t *testing.T) {
	d := localtest.NewDriver(t, nil)
	ctx := context.Background()
	name := localtest.UniqueName("it-lost")
	n := localtest.CreateNode(t, d, name, provider.CreateRequest{})
	rec := readRecord(t, d, name)

	path := filepath.Join(d.Options().Root, "nodes", name, "node.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	raw["phase"] = "creating"
	raw["creator"] = map[string]any{"pid": 1 << 30, "start": 1}
	delete(raw, "proc")
	b, _ = json.Marshal(raw)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.GetNode(ctx, name); got.State != provider.StateError {
		t.Errorf("state of a node whose creator died = %s, want error", got.State)
	}
	if err := d.DestroyNode(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	assertGone(t, d, name, rec)
}
