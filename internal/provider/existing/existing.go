// Package existing is the driver for servers you already have ("host it
// yourself"): nothing is created or destroyed, servers are registered by
// address and forgotten again.
//
// CreateNode validates the address (an IP or a DNS name, optionally with
// :port), records the server in env.StateDir/servers.json and returns it
// as running. It does not contact the server: the CLI then runs
// provider.WaitUntilReady (which probes sshd and yields the host key to
// pin) and must itself verify that it can log in as Node.SSHUser with the
// user's key before calling the registration done, forgetting the server
// (DestroyNode) if that fails. AuthorizedKeys are not installed anywhere:
// the server must already accept the user's key. Files are not supported.
//
// A host name is kept as given, in PublicIPs, and not resolved: the name
// is what the user chose and what SSH connects to, so a server whose IP
// changes keeps working. IP addresses in private, loopback or link-local
// ranges go to PrivateIPs, others to PublicIPs.
//
// DestroyNode only forgets the server; it never touches it.
//
// States: GetNode and CreateNode report running without network I/O (the
// record says the server exists; WaitUntilReady's SSH phase is where
// reachability is checked, with the dial error as progress). ListNodes
// checks reachability, because that is where a user looks at what is up:
// running if a TCP connection to the SSH port succeeds within
// ProbeTimeout, unknown otherwise (unreachable does not mean stopped).
//
// ListImages and ListSizes return one pseudo entry each, named "existing",
// so matchers and defaults work unchanged.
package existing

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "existing"

// ProbeTimeout bounds each reachability check of ListNodes; the checks
// run in parallel, so ListNodes takes about this long at most.
const ProbeTimeout = time.Second

// maxProbes is how many reachability checks run at once.
const maxProbes = 16

// Pseudo is the ID and name of the one image and the one size.
const Pseudo = "existing"

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "a server you already have (host it yourself): registered by address, never created or destroyed",
		Options:      options(),
		DefaultImage: "name " + Pseudo,
		DefaultSize:  "name " + Pseudo,
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

func options() []provider.Option {
	return []provider.Option{
		provider.OptSSHUser.With(func(o *provider.Option) {
			o.Help = "user to log in as when create-node is not given --user"
		}),
	}
}

// Options are the settings of a [provider:NAME] section of type existing.
type Options struct {
	SSHUser string `config:"ssh_user"`
}

// Driver keeps the record of registered servers.
type Driver struct {
	store store
	opts  Options
	// dial is how ListNodes checks reachability.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// mu serialises this process's changes; the store's file lock
	// serialises processes.
	mu sync.Mutex
}

// New returns a driver keeping its record in env.StateDir. It does no I/O.
func New(env provider.Env) (*Driver, error) {
	var o Options
	if err := env.Settings.Decode(&o); err != nil {
		return nil, err
	}
	if env.StateDir == "" {
		return nil, fmt.Errorf("existing: no state directory to keep the registered servers in")
	}
	if o.SSHUser != "" {
		if err := validateUser(o.SSHUser); err != nil {
			return nil, fmt.Errorf("existing: setting ssh_user: %w", err)
		}
	}
	d := &net.Dialer{Timeout: ProbeTimeout}
	return &Driver{store: store{dir: env.StateDir}, opts: o, dial: d.DialContext}, nil
}

// ListImages returns the one pseudo image.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	return []provider.Image{{ID: Pseudo, Name: Pseudo, Note: "whatever system the server runs (Debian or Ubuntu for setup-node)"}}, nil
}

// ListSizes returns the one pseudo size; its hardware is unknown.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	return []provider.Size{{ID: Pseudo, Name: Pseudo, Note: "whatever hardware the server has"}}, nil
}

// ListNodes returns the registered servers, each running if its SSH port
// accepted a TCP connection within ProbeTimeout, else unknown.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	servers, err := d.store.load()
	if err != nil {
		return nil, fmt.Errorf("existing: %w", err)
	}
	nodes := make([]provider.Node, len(servers))
	sem := make(chan struct{}, maxProbes)
	var wg sync.WaitGroup
	for i, s := range servers {
		nodes[i] = toNode(s)
		nodes[i].State = provider.StateUnknown
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if d.reachable(ctx, s) {
				nodes[i].State = provider.StateRunning
			}
		}()
	}
	wg.Wait()
	return nodes, nil
}

func (d *Driver) reachable(ctx context.Context, s Server) bool {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	conn, err := d.dial(ctx, "tcp", net.JoinHostPort(s.Address, strconv.Itoa(port(s))))
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func port(s Server) int {
	if s.Port == 0 {
		return 22
	}
	return s.Port
}

// GetNode returns the registered server named id, as running.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	servers, err := d.store.load()
	if err != nil {
		return provider.Node{}, fmt.Errorf("existing: %w", err)
	}
	for _, s := range servers {
		if s.Name == id {
			return toNode(s), nil
		}
	}
	return provider.Node{}, fmt.Errorf("existing: no server registered as %q: %w", id, provider.ErrNotFound)
}

// CreateNode registers the server at req.Address under req.Name, logging
// in as req.User (default: the ssh_user setting, else root). It does not
// contact the server; see the package comment for what the CLI must do.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	fail := func(err error) (provider.Node, error) {
		return provider.Node{}, fmt.Errorf("register %s: %w", req.Name, err)
	}
	if err := provider.ValidateHostname(req.Name); err != nil {
		return fail(fmt.Errorf("%w: %w", err, provider.ErrInvalid))
	}
	if len(req.Files) > 0 {
		return fail(fmt.Errorf("existing servers cannot be given files at registration: %w", provider.ErrNotSupported))
	}
	host, p, err := ParseAddress(req.Address)
	if err != nil {
		return fail(err)
	}
	user := req.User
	if user == "" {
		user = d.opts.SSHUser
	}
	if user != "" {
		if err := validateUser(user); err != nil {
			return fail(err)
		}
	}
	if user == "root" {
		user = ""
	}
	s := Server{Name: req.Name, Address: host, Port: p, User: user, Added: time.Now().UTC().Truncate(time.Second)}

	d.mu.Lock()
	defer d.mu.Unlock()
	err = d.store.update(func(servers []Server) ([]Server, error) {
		for _, have := range servers {
			if have.Name == s.Name {
				return nil, fmt.Errorf("a server is already registered as %s (%s); destroy-node forgets it: %w", have.Name, have.Address, provider.ErrExists)
			}
			if strings.EqualFold(have.Address, s.Address) && port(have) == port(s) {
				return nil, fmt.Errorf("%s is already registered as %s: %w", s.Address, have.Name, provider.ErrExists)
			}
		}
		return append(servers, s), nil
	})
	if err != nil {
		return fail(err)
	}
	return toNode(s), nil
}

// DestroyNode forgets the server named id. The server itself is not
// touched.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.store.update(func(servers []Server) ([]Server, error) {
		i := slices.IndexFunc(servers, func(s Server) bool { return s.Name == id })
		if i < 0 {
			return nil, fmt.Errorf("existing: no server registered as %q: %w", id, provider.ErrNotFound)
		}
		return slices.Delete(servers, i, i+1), nil
	})
}

// ForgetsOnly reports that DestroyNode never touches the server, so the
// CLI can say so.
func (d *Driver) ForgetsOnly() bool { return true }

func toNode(s Server) provider.Node {
	n := provider.Node{
		ID:       s.Name,
		Name:     s.Name,
		State:    provider.StateRunning,
		Image:    Pseudo,
		Size:     Pseudo,
		Provider: Name,
		SSHUser:  s.User,
		SSHPort:  s.Port,
	}
	if ip, err := netip.ParseAddr(s.Address); err == nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
		n.PrivateIPs = []string{s.Address}
	} else {
		n.PublicIPs = []string{s.Address}
	}
	return n
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseAddress checks an address given to create-node --address: an IPv4
// or IPv6 address or a DNS name, optionally followed by :PORT (an IPv6
// address with a port in brackets, [2001:db8::1]:2222). It returns the
// host (a DNS name lower-cased) and the port, 0 when none was given.
func ParseAddress(addr string) (host string, port int, err error) {
	bad := func(why string) (string, int, error) {
		return "", 0, fmt.Errorf("address %q: %s: %w", addr, why, provider.ErrInvalid)
	}
	addr = strings.TrimSpace(addr)
	switch {
	case addr == "":
		return bad("empty (give --address with the server's IP or host name)")
	case strings.Contains(addr, "://"):
		return bad("give a host name or IP, not a URL")
	case strings.Contains(addr, "@"):
		return bad("give the user with --user, not in the address")
	}
	host = addr
	if ip, err := netip.ParseAddr(addr); err == nil {
		if ip.Zone() != "" {
			return bad("IPv6 zones are not supported")
		}
		return ip.String(), 0, nil
	}
	if h, p, err := net.SplitHostPort(addr); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("port must be a number from 1 to 65535")
		}
		host, port = h, n
		if port == 22 {
			port = 0
		}
	} else if strings.Count(addr, ":") == 1 {
		return bad(err.Error())
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return bad("IPv6 zones are not supported")
		}
		return ip.String(), port, nil
	}
	if strings.ContainsAny(host, "[]:") {
		return bad("not a valid IP address")
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(name) == 0 || len(name) > 253 {
		return bad("not a valid host name")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if !dnsLabelRE.MatchString(l) {
			return bad(fmt.Sprintf("%q is not a valid host name label (letters, digits and inner hyphens, at most 63)", l))
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return bad("looks like an IP address but is not a valid one")
	}
	return name, port, nil
}

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

func validateUser(u string) error {
	if !userRE.MatchString(u) {
		return fmt.Errorf("user %q is not a valid login name (lower-case letters, digits, _ and -): %w", u, provider.ErrInvalid)
	}
	return nil
}

var (
	_ provider.Driver    = (*Driver)(nil)
	_ provider.Forgetter = (*Driver)(nil)
)
