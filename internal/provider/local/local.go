// Package local is the "local" provider: real Debian 12 nodes on this
// machine, each a systemd-nspawn container booted with systemd, in its own
// network namespace with its own IPv4 address, NAT to the outside and sshd
// running. A node is a bare server for every purpose of toppcloud:
// setup-node, deploy and the integration tests run against it for real.
//
// Layout under the root directory (option root):
//
//	nodes/NAME/node.json     the node's record (atomic writes)
//	nodes/NAME/lock          flock held while the node is changed
//	nodes/NAME/upper, work   the node's overlayfs layer over the image
//	nodes/NAME/rootfs        the overlay mount nspawn boots
//	nodes/NAME/console.log   nspawn's output, appended on each boot
//
// and under the cache directory (option cache_dir, default the root):
//
//	images/debian-12.vN/rootfs   the debootstrapped image, never changed once built
//	images/debian-12.lock        held while the image is built
//	apt-cache/                   .deb files shared between nodes (see aptpool.go)
//
// Host-wide state (network namespaces, veth pairs, routes, the nftables
// table toppcloud_local) is shared by every root on the machine and
// changed only under the lock file /run/lock/toppcloud-local.lock.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type name.
const Name = "local"

// Defaults for the options.
const (
	DefaultRoot           = "/var/lib/toppcloud/local"
	DefaultSubnet         = "10.213.0.0/24"
	DefaultMirror         = "http://deb.debian.org/debian"
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
)

// Timeouts for stopping a container: SIGTERM, wait this long, then SIGKILL.
// Destroying throws the node away, so it need not wait for a slow shutdown.
const (
	StopTimeout    = 60 * time.Second
	DestroyTimeout = 5 * time.Second
)

// Options are the settings of a [provider:NAME] section with
// provider = local.
type Options struct {
	// Root is where node state lives.
	Root string `config:"root"`
	// CacheDir holds the built images and the shared apt package pool.
	// Empty means Root. Tests point it at a shared directory so the image
	// is built once per machine, not once per test root.
	CacheDir string `config:"cache_dir"`
	// Subnet is the IPv4 network nodes get addresses from; its first
	// address is the host side of every node's link.
	Subnet string `config:"subnet"`
	// Mirror is the Debian archive the image is built from and nodes' apt
	// uses.
	Mirror string `config:"mirror"`
	// SecurityMirror is the archive for bookworm-security; "none" leaves
	// it out of nodes' sources.list.
	SecurityMirror string `config:"security_mirror"`
	// DNS lists name servers for nodes (comma or space separated). Empty
	// means the host's own servers from /etc/resolv.conf, minus loopback
	// ones, which a node cannot reach.
	DNS string `config:"dns"`
	// ShareAptCache shares downloaded .deb files between nodes.
	ShareAptCache bool `config:"share_apt_cache"`
}

// options is the declared option list; it drives the config file, the
// first-run prompt and --help.
var options = []provider.Option{
	{Name: "root", Help: "directory for local nodes' state", Default: DefaultRoot, EnvVars: []string{"TOPPCLOUD_LOCAL_ROOT"}},
	{Name: "cache_dir", Help: "directory for built images and the shared apt package cache (default: root)", EnvVars: []string{"TOPPCLOUD_LOCAL_CACHE"}},
	{Name: "subnet", Help: "IPv4 subnet for node addresses (/24 or bigger)", Default: DefaultSubnet},
	{Name: "mirror", Help: "Debian mirror for the image and nodes' apt", Default: DefaultMirror},
	{Name: "security_mirror", Help: "Debian security archive for nodes' apt, or none", Default: DefaultSecurityMirror},
	{Name: "dns", Help: "name servers for nodes, comma separated (default: the host's)"},
	{Name: "share_apt_cache", Help: "share downloaded .deb files between nodes (yes or no)", Default: "yes"},
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Debian 12 nodes on this machine (systemd-nspawn: Linux only, as root)",
		Options:      options,
		DefaultImage: imageID,
		DefaultSize:  "medium",
		Local:        true,
		New: func(env provider.Env) (provider.Driver, error) {
			return New(env)
		},
	})
}

// Driver is the local provider. It keeps no state in memory that matters:
// everything is on disk under the root, so several processes (a CLI, a test
// binary) can use the same root at once.
type Driver struct {
	opts    Options
	cache   string
	net     netConfig
	dns     []string
	log     io.Writer
	envHost hostEnv
}

// hostEnv is what the driver reads from the host; tests of the pure parts
// construct it directly.
type hostEnv struct {
	goos     string // runtime.GOOS
	euid     int
	lookPath func(string) (string, error)
}

// New builds a driver from env.Settings. It does no I/O beyond validating
// the settings; prerequisites (root, systemd-nspawn, ...) are checked when
// a node is changed, so listing works anywhere.
func New(env provider.Env) (*Driver, error) {
	opts, err := decodeOptions(env.Settings)
	if err != nil {
		return nil, err
	}
	subnet, err := parseSubnet(opts.Subnet)
	if err != nil {
		return nil, fmt.Errorf("setting subnet: %w", err)
	}
	dns, err := parseDNS(opts.DNS)
	if err != nil {
		return nil, fmt.Errorf("setting dns: %w", err)
	}
	log := env.Log
	if log == nil {
		log = io.Discard
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = opts.Root
	}
	return &Driver{
		opts:    opts,
		cache:   cache,
		net:     netConfig{subnet: subnet},
		dns:     dns,
		log:     log,
		envHost: hostEnv{goos: runtime.GOOS, euid: os.Geteuid(), lookPath: lookPathSbin},
	}, nil
}

// decodeOptions applies the declared defaults (Settings built by hand, as in
// tests, may lack them) and validates paths and URLs.
func decodeOptions(s provider.Settings) (Options, error) {
	var opts Options
	defaults := provider.Settings{}
	for _, o := range options {
		defaults[o.Name] = o.Default
	}
	if err := defaults.Decode(&opts); err != nil {
		return Options{}, err
	}
	if err := s.Decode(&opts); err != nil {
		return Options{}, err
	}
	for _, p := range []struct{ key, val string }{{"root", opts.Root}, {"cache_dir", opts.CacheDir}} {
		if p.val == "" && p.key == "cache_dir" {
			continue
		}
		if !filepath.IsAbs(p.val) {
			return Options{}, fmt.Errorf("setting %s: %q is not an absolute path", p.key, p.val)
		}
		// overlayfs mount options are separated by commas and lower
		// directories by colons; such paths cannot be passed to it.
		if strings.ContainsAny(p.val, ",:\\\n") {
			return Options{}, fmt.Errorf("setting %s: %q contains a comma, colon or backslash, which overlayfs cannot take; choose another directory", p.key, p.val)
		}
	}
	if err := checkMirror(opts.Mirror); err != nil {
		return Options{}, fmt.Errorf("setting mirror: %w", err)
	}
	if opts.SecurityMirror != "none" {
		if err := checkMirror(opts.SecurityMirror); err != nil {
			return Options{}, fmt.Errorf("setting security_mirror: %w", err)
		}
	}
	return opts, nil
}

func checkMirror(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(s, " \t\n") {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// Options returns the driver's settings after defaults were applied.
func (d *Driver) Options() Options { return d.opts }

// ListImages returns the one image, saying whether it is built.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	return []provider.Image{d.imageEntry()}, nil
}

// ListSizes returns the fixed sizes. Memory and CPU limits are cgroup v1
// limits; where the host does not offer them the note says so.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	note := "memory and CPU limited (cgroup v1); disk shared with the host"
	if !cgroupLimitsAvailable() {
		note = "limits NOT enforced on this host (no writable cgroup v1 memory and cpu controllers); disk shared with the host"
	}
	out := make([]provider.Size, len(sizes))
	for i, s := range sizes {
		s.Note = note
		out[i] = s
	}
	return out, nil
}

// sizes are what ListSizes offers. DiskGB is 0: nodes share the host's
// disk through their overlay layer.
var sizes = []provider.Size{
	{ID: "small", Name: "small", RAMMB: 512, VCPUs: 1},
	{ID: "medium", Name: "medium", RAMMB: 1024, VCPUs: 1},
	{ID: "large", Name: "large", RAMMB: 2048, VCPUs: 2},
}

func findSize(id string) (provider.Size, bool) {
	for _, s := range sizes {
		if s.ID == id {
			return s, true
		}
	}
	return provider.Size{}, false
}

// ListNodes returns the nodes under the root.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	entries, err := os.ReadDir(d.nodesDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	boot := bootID()
	var nodes []provider.Node
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, err := readMeta(d.nodePaths(e.Name()).meta)
		if errors.Is(err, os.ErrNotExist) {
			continue // a create that has only just made its directory
		}
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		nodes = append(nodes, d.toNode(m, boot))
	}
	return nodes, nil
}

// GetNode returns one node; id is its name.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	if provider.ValidateHostname(id) != nil {
		return provider.Node{}, fmt.Errorf("node %q: %w", id, provider.ErrNotFound)
	}
	m, err := readMeta(d.nodePaths(id).meta)
	if errors.Is(err, os.ErrNotExist) {
		return provider.Node{}, fmt.Errorf("node %s: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return provider.Node{}, fmt.Errorf("node %s: %w", id, err)
	}
	return d.toNode(m, bootID()), nil
}

func (d *Driver) toNode(m nodeMeta, boot string) provider.Node {
	n := provider.Node{
		ID:       m.Name,
		Name:     m.Name,
		State:    nodeState(m, d.nodePaths(m.Name).rootfs, boot),
		Image:    m.Image,
		Size:     m.Size,
		Provider: Name,
	}
	if m.IP != "" {
		n.PublicIPs = []string{m.IP}
	}
	return n
}

// nodeState maps what is on disk and in /proc to the provider's scale:
// running while our nspawn for this node is alive, stopped otherwise;
// pending while a live process is still creating it, error if that
// process died half way (destroy cleans it up).
func nodeState(m nodeMeta, rootfs, boot string) provider.State {
	if m.Phase == phaseCreating {
		if m.Creator.alive() {
			return provider.StatePending
		}
		return provider.StateError
	}
	if m.BootID == boot && m.Proc.isNspawnFor(rootfs) {
		return provider.StateRunning
	}
	return provider.StateStopped
}

// CreateNode makes a node and starts it, returning once the container
// process runs (WaitUntilReady waits for sshd). The image is built first
// if it is not cached. On failure or cancellation everything made so far
// is removed again.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (_ provider.Node, err error) {
	size, err := validateCreate(req)
	if err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	if err := d.prereqs(); err != nil {
		return provider.Node{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.Node{}, err
	}
	resolv, err := nodeResolvConf(d.dns, readHostResolvConfs()...)
	if err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	if err := os.MkdirAll(d.nodesDir(), 0o700); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	p := d.nodePaths(req.Name)
	// The directory is the reservation of the name within this root.
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, provider.ErrExists)
		}
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}

	// undo holds the steps that remove what was made, run in reverse
	// order on failure, unaffected by the cancelled ctx, before the node
	// lock is released.
	var undo []func(context.Context) error
	var lock *fileLock
	defer func() {
		defer lock.unlock()
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](cctx); uerr != nil {
				errs = append(errs, uerr)
			}
		}
		if len(errs) > 0 {
			err = fmt.Errorf("%w (cleaning up also failed: %w)", err, errors.Join(errs...))
		}
	}()
	undo = append(undo, func(context.Context) error { return os.RemoveAll(p.dir) })
	if lock, err = lockFile(ctx, p.lock); err != nil {
		return provider.Node{}, err
	}

	m := nodeMeta{
		Name: req.Name, Phase: phaseCreating, Creator: selfRef(),
		Image: imageID, Size: size.ID, RAMMB: size.RAMMB, VCPUs: size.VCPUs,
		Created: time.Now().UTC(),
	}
	if err := writeMeta(p.meta, m); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}

	// Host keys take a moment; make them while the rest is set up.
	type keysResult struct {
		files []nodeFile
		err   error
	}
	keysCh := make(chan keysResult, 1)
	go func() {
		f, err := generateHostKeys("root@" + req.Name)
		keysCh <- keysResult{f, err}
	}()

	lower, err := d.EnsureImage(ctx)
	if err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	m.ImageDir = lower

	rootUsed, err := d.rootAddrs(req.Name)
	if err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	undo = append(undo, func(c context.Context) error { return teardownNetwork(c, m) })
	record := func(m nodeMeta) error { return writeMeta(p.meta, m) }
	if err := d.allocateNetwork(ctx, &m, rootUsed, record); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}

	if d.opts.ShareAptCache {
		seedAptCache(d.aptPoolDir(), p.upper)
	}
	undo = append(undo, func(context.Context) error { return unmountRootfs(p) })
	if err := mountRootfs(lower, p); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	keys := <-keysCh
	if keys.err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: host keys: %w", req.Name, keys.err)
	}
	files := identityFiles(req.Name, req.AuthorizedKeys, keys.files, resolv, aptSources(d.opts.Mirror, d.opts.SecurityMirror))
	files = append(files, requestFiles(req.Files)...)
	if err := writeNodeFiles(p.rootfs, files); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return provider.Node{}, err
	}

	m.Cgroups = planCgroups(m.ShortID)
	if err := writeMeta(p.meta, m); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	undo = append(undo, func(context.Context) error { return removeCgroups(m.Cgroups) })
	if err := createCgroups(m.Cgroups, m.RAMMB, m.VCPUs); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	undo = append(undo, func(c context.Context) error { return stopContainer(c, m, p.rootfs, DestroyTimeout) })
	if err := d.startContainer(&m, p); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	m.Phase = phaseReady
	m.Creator = procRef{}
	if err := writeMeta(p.meta, m); err != nil {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	fmt.Fprintf(d.log, "local: node %s started at %s (console log %s)\n", m.Name, m.IP, p.console)
	return d.toNode(m, m.BootID), nil
}

// requestFiles turns CreateRequest.Files into node files, in a stable
// order. They are root's; mode 0644, or 0600 under /root/.ssh.
func requestFiles(files map[string][]byte) []nodeFile {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]nodeFile, 0, len(paths))
	for _, p := range paths {
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(p, "/root/.ssh/") {
			mode = 0o600
		}
		out = append(out, nodeFile{path: p, data: files[p], mode: mode})
	}
	return out
}

// rootAddrs returns the addresses held by this root's other nodes.
func (d *Driver) rootAddrs(except string) (map[netip.Addr]bool, error) {
	entries, err := os.ReadDir(d.nodesDir())
	if err != nil {
		return nil, err
	}
	used := map[netip.Addr]bool{}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == except {
			continue
		}
		m, err := readMeta(d.nodePaths(e.Name()).meta)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(m.IP); err == nil {
			used[a] = true
		}
	}
	return used, nil
}

// DestroyNode stops the node's container and removes its network, NAT
// rule, cgroups, mount and files. It carries on past errors so as much as
// possible is removed, and reports them all. A node whose creation was
// interrupted is destroyed the same way.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	if provider.ValidateHostname(id) != nil {
		return fmt.Errorf("destroy node %q: %w", id, provider.ErrNotFound)
	}
	p := d.nodePaths(id)
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("node %s: %w", id, provider.ErrNotFound)
	}
	if err := d.prereqs(); err != nil {
		return err
	}
	lock, err := lockNode(ctx, p, id)
	if err != nil {
		return fmt.Errorf("destroy node: %w", err)
	}
	defer lock.unlock()
	m, err := readMeta(p.meta)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("destroy node %s: %w", id, err)
	}
	m.Name = id
	var errs []error
	if err := stopContainer(ctx, m, p.rootfs, DestroyTimeout); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroups(m.Cgroups); err != nil {
		errs = append(errs, err)
	}
	if d.opts.ShareAptCache {
		harvestAptCache(filepath.Join(p.upper, aptArchivesRel), d.aptPoolDir())
	}
	if err := unmountRootfs(p); err != nil {
		errs = append(errs, err)
	}
	if err := teardownNetwork(context.WithoutCancel(ctx), m); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Keep the record so destroy can be retried.
		return fmt.Errorf("destroy node %s: %w", id, errors.Join(errs...))
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("destroy node %s: %w", id, err)
	}
	return nil
}

// lockReadyNode finds node id, takes its lock and reads its record, for
// an operation (verb: "stop", "start") on a node whose creation
// finished. The caller unlocks.
func (d *Driver) lockReadyNode(ctx context.Context, id, verb string) (nodePaths, nodeMeta, *fileLock, error) {
	if provider.ValidateHostname(id) != nil {
		return nodePaths{}, nodeMeta{}, nil, fmt.Errorf("%s node %q: %w", verb, id, provider.ErrNotFound)
	}
	p := d.nodePaths(id)
	if _, err := os.Stat(p.dir); errors.Is(err, os.ErrNotExist) {
		return p, nodeMeta{}, nil, fmt.Errorf("node %s: %w", id, provider.ErrNotFound)
	}
	if err := d.prereqs(); err != nil {
		return p, nodeMeta{}, nil, err
	}
	lock, err := lockNode(ctx, p, id)
	if err != nil {
		return p, nodeMeta{}, nil, fmt.Errorf("%s node: %w", verb, err)
	}
	m, err := readMeta(p.meta)
	if err == nil && m.Phase != phaseReady {
		err = fmt.Errorf("its creation did not finish; destroy it")
	}
	if err != nil {
		lock.unlock()
		return p, m, nil, fmt.Errorf("%s node %s: %w", verb, id, err)
	}
	return p, m, lock, nil
}

// StopNode shuts the node's container down cleanly (SIGKILL after
// StopTimeout) and unmounts its root. Its network stays, holding its
// address; StartNode boots it again. Stopping a stopped node is not an
// error.
func (d *Driver) StopNode(ctx context.Context, id string) error {
	p, m, lock, err := d.lockReadyNode(ctx, id, "stop")
	if err != nil {
		return err
	}
	defer lock.unlock()
	if err := stopContainer(ctx, m, p.rootfs, StopTimeout); err != nil {
		return fmt.Errorf("stop node %s: %w", id, err)
	}
	if err := removeCgroups(m.Cgroups); err != nil {
		return fmt.Errorf("stop node %s: %w", id, err)
	}
	if err := unmountRootfs(p); err != nil {
		return fmt.Errorf("stop node %s: %w", id, err)
	}
	m.Proc, m.Cgroups = procRef{}, nil
	if err := writeMeta(p.meta, m); err != nil {
		return fmt.Errorf("stop node %s: %w", id, err)
	}
	return nil
}

// StartNode boots a stopped node from its preserved root file system,
// recreating its network, mount and cgroups where they are gone (after a
// host reboot all are). Starting a running node is not an error.
func (d *Driver) StartNode(ctx context.Context, id string) (err error) {
	p, m, lock, err := d.lockReadyNode(ctx, id, "start")
	if err != nil {
		return err
	}
	defer lock.unlock()
	if m.BootID == bootID() && m.Proc.isNspawnFor(p.rootfs) {
		return nil
	}
	// Anything left of the last run: cgroups of a previous boot.
	_ = removeCgroups(m.Cgroups)
	m.Cgroups = nil
	if err := d.ensureNetwork(ctx, m); err != nil {
		return fmt.Errorf("start node %s: %w", id, err)
	}
	if err := mountRootfs(m.ImageDir, p); err != nil {
		return fmt.Errorf("start node %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = removeCgroups(m.Cgroups)
			_ = unmountRootfs(p)
		}
	}()
	m.Cgroups = planCgroups(m.ShortID)
	if err := writeMeta(p.meta, m); err != nil {
		return fmt.Errorf("start node %s: %w", id, err)
	}
	if err := createCgroups(m.Cgroups, m.RAMMB, m.VCPUs); err != nil {
		return fmt.Errorf("start node %s: %w", id, err)
	}
	if err := d.startContainer(&m, p); err != nil {
		return fmt.Errorf("start node %s: %w", id, err)
	}
	if err := writeMeta(p.meta, m); err != nil {
		_ = stopContainer(context.WithoutCancel(ctx), m, p.rootfs, DestroyTimeout)
		return fmt.Errorf("start node %s: %w", id, err)
	}
	return nil
}

// validateCreate checks a request before anything is touched.
func validateCreate(req provider.CreateRequest) (provider.Size, error) {
	if err := provider.ValidateHostname(req.Name); err != nil {
		return provider.Size{}, fmt.Errorf("%w: %w", provider.ErrInvalid, err)
	}
	// The kernel's hostname limit (HOST_NAME_MAX).
	if len(req.Name) > 64 {
		return provider.Size{}, fmt.Errorf("%w: node name %q is longer than 64 characters, the limit for a Linux hostname", provider.ErrInvalid, req.Name)
	}
	if req.Image.ID != "" && req.Image.ID != imageID {
		return provider.Size{}, fmt.Errorf("%w: image %q: the local provider has only %s", provider.ErrInvalid, req.Image.ID, imageID)
	}
	sizeID := req.Size.ID
	if sizeID == "" {
		sizeID = "medium"
	}
	size, ok := findSize(sizeID)
	if !ok {
		return provider.Size{}, fmt.Errorf("%w: size %q: the local provider has small, medium and large", provider.ErrInvalid, req.Size.ID)
	}
	// Keys may also come as a file placed at creation, the way Rackspace's
	// personality files deliver them (and the way the fake APIs backed by
	// this driver pass them on).
	if len(req.AuthorizedKeys) == 0 && len(req.Files[rootAuthorizedKeys]) == 0 {
		return provider.Size{}, fmt.Errorf("%w: no authorized keys: nobody could log in to the node", provider.ErrInvalid)
	}
	for _, k := range req.AuthorizedKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil || strings.ContainsAny(strings.TrimSpace(k), "\n") {
			return provider.Size{}, fmt.Errorf("%w: authorized key %.40q... is not one authorized_keys line", provider.ErrInvalid, k)
		}
	}
	for p := range req.Files {
		if err := checkFilePath(p); err != nil {
			return provider.Size{}, fmt.Errorf("%w: %w", provider.ErrInvalid, err)
		}
	}
	return size, nil
}

// rootAuthorizedKeys is where root's keys live on a node.
const rootAuthorizedKeys = "/root/.ssh/authorized_keys"

var (
	_ provider.Driver  = (*Driver)(nil)
	_ provider.Starter = (*Driver)(nil)
	_ provider.Stopper = (*Driver)(nil)
)
