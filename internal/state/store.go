// Package state keeps the client's own records: the nodes it created or
// registered (nodes.json), the path of its known_hosts file, the caches
// of its commands, and the block of /etc/hosts it manages.
//
// Everything is stored under one directory, $TOPPCLOUD_STATE or
// ~/.toppcloud (see Dir), and every change is a locked read-modify-write followed by an atomic
// replacement, so two toppcloud processes never lose each other's records
// and a crash never leaves a half-written file.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// CurrentVersion is the version of nodes.json this build writes.
const CurrentVersion = 1

// File names inside the state directory.
const (
	NodesFile      = "nodes.json"
	KnownHostsFile = "known_hosts"
	CacheDir       = "cache"
)

// EnvDir names the environment variable that moves the state directory.
const EnvDir = "TOPPCLOUD_STATE"

// NodeRecord is what the client remembers about one node. It is a record of
// facts, never a serialized driver: enough to reach the node again (address,
// user, port, pinned host key) and to find it at its provider (section,
// provider type, ID).
type NodeRecord struct {
	// Name is the node's hostname; records are keyed by it.
	Name string `json:"name"`
	// Section is the ~/.toppcloud.conf section whose provider settings
	// created the node ("default").
	Section string `json:"section"`
	// ProviderType is the provider driver's registered name ("rackspace").
	ProviderType string `json:"provider_type"`
	// ID is the provider's ID for the node.
	ID         string   `json:"id"`
	PublicIPs  []string `json:"public_ips,omitempty"`
	PrivateIPs []string `json:"private_ips,omitempty"`
	// SSHUser is the login user; empty means root.
	SSHUser string `json:"ssh_user,omitempty"`
	// SSHPort is sshd's port; 0 means 22.
	SSHPort int `json:"ssh_port,omitempty"`
	// HostKey is the node's pinned SSH host key as an authorized_keys
	// line ("ssh-ed25519 AAAA..."). The same key is in known_hosts.
	HostKey   string    `json:"host_key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// EtcHosts says toppcloud added the node's name to /etc/hosts, so
	// destroying the node must remove it.
	EtcHosts bool `json:"etc_hosts,omitempty"`
	// SetupAt is when setup-node last completed on the node, and
	// SetupVersion the toppcloud version it installed; nil and "" for a
	// node never set up from this client.
	SetupAt      *time.Time `json:"setup_at,omitempty"`
	SetupVersion string     `json:"setup_version,omitempty"`
	// AuthorizedKeys are the public keys (authorized_keys lines) the node
	// was given for its login user at creation, and DeployKeys those
	// setup-node gave the deploy user: what a failed login names as the
	// keys the node expects. Empty for nodes recorded before they were
	// kept.
	AuthorizedKeys []string `json:"authorized_keys,omitempty"`
	DeployKeys     []string `json:"deploy_keys,omitempty"`
}

// Address returns the address to connect to: the first public IP, else the
// first private one, else "".
func (r NodeRecord) Address() string {
	if len(r.PublicIPs) > 0 {
		return r.PublicIPs[0]
	}
	if len(r.PrivateIPs) > 0 {
		return r.PrivateIPs[0]
	}
	return ""
}

// SSHAddr returns Address joined with the SSH port (22 when unset), the
// form sshx.Config.Addr takes; "" when the node has no address.
func (r NodeRecord) SSHAddr() string {
	a := r.Address()
	if a == "" {
		return ""
	}
	port := r.SSHPort
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(a, strconv.Itoa(port))
}

// User returns SSHUser, or root when unset.
func (r NodeRecord) User() string {
	if r.SSHUser == "" {
		return "root"
	}
	return r.SSHUser
}

func (r NodeRecord) validate() error {
	if r.Name == "" {
		return errors.New("node record has no name")
	}
	if strings.ContainsAny(r.Name, " \t\r\n/") {
		return fmt.Errorf("node name %q contains a space or slash", r.Name)
	}
	if r.SSHPort < 0 || r.SSHPort > 65535 {
		return fmt.Errorf("node %s: ssh port %d out of range", r.Name, r.SSHPort)
	}
	return nil
}

// Nodes is the content of nodes.json. Update hands it to its callback to
// change in place.
type Nodes struct {
	Version int          `json:"version"`
	Nodes   []NodeRecord `json:"nodes"`
}

// Get returns the record named name.
func (n *Nodes) Get(name string) (NodeRecord, bool) {
	i := n.index(name)
	if i < 0 {
		return NodeRecord{}, false
	}
	return n.Nodes[i], true
}

// Put adds rec, replacing a record of the same name.
func (n *Nodes) Put(rec NodeRecord) {
	if i := n.index(rec.Name); i >= 0 {
		n.Nodes[i] = rec
		return
	}
	n.Nodes = append(n.Nodes, rec)
}

// Delete removes the record named name and reports whether there was one.
func (n *Nodes) Delete(name string) bool {
	i := n.index(name)
	if i < 0 {
		return false
	}
	n.Nodes = slices.Delete(n.Nodes, i, i+1)
	return true
}

func (n *Nodes) index(name string) int {
	return slices.IndexFunc(n.Nodes, func(r NodeRecord) bool { return r.Name == name })
}

// VersionError says nodes.json was written by a newer toppcloud.
type VersionError struct {
	Path    string
	Version int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s has format version %d but this toppcloud understands up to version %d: upgrade toppcloud (or restore an older copy of the file)", e.Path, e.Version, CurrentVersion)
}

// Store is the client's state directory. Its methods are safe for
// concurrent use by goroutines and processes.
type Store struct {
	dir string
	// replace writes a file atomically; a field only so tests can make it
	// fail.
	replace func(path string, data []byte, perm fs.FileMode) error
}

// Dir returns the state directory: $TOPPCLOUD_STATE (looked up with
// getenv), else ~/.toppcloud under home.
func Dir(getenv func(string) string, home string) string {
	if d := getenv(EnvDir); d != "" {
		return d
	}
	return filepath.Join(home, ".toppcloud")
}

// Open returns the store rooted at dir, creating dir (mode 0700) if needed.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	return &Store{dir: dir, replace: atomicfile.WriteFile}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// KnownHostsPath is the known_hosts file (OpenSSH format) holding the
// pinned host keys of the nodes, for sshx.KnownHosts and for
// `ssh -o UserKnownHostsFile=...`.
func (s *Store) KnownHostsPath() string { return filepath.Join(s.dir, KnownHostsFile) }

// NodesPath is the nodes.json file.
func (s *Store) NodesPath() string { return filepath.Join(s.dir, NodesFile) }

// CachePath is the directory of the cache called name (manifests,
// binaries). Caches live in the state directory so that they move with it.
func (s *Store) CachePath(name string) string { return filepath.Join(s.dir, CacheDir, name) }

// Nodes returns all node records, sorted by name.
func (s *Store) Nodes() ([]NodeRecord, error) {
	n, err := s.read()
	if err != nil {
		return nil, err
	}
	return n.Nodes, nil
}

// Node returns the record named name; ok is false if there is none.
func (s *Store) Node(name string) (rec NodeRecord, ok bool, err error) {
	n, err := s.read()
	if err != nil {
		return NodeRecord{}, false, err
	}
	rec, ok = n.Get(name)
	return rec, ok, nil
}

// PutNode adds rec or replaces the record with the same name.
func (s *Store) PutNode(rec NodeRecord) error {
	if err := rec.validate(); err != nil {
		return fmt.Errorf("save node: %w", err)
	}
	return s.Update(func(n *Nodes) error {
		n.Put(rec)
		return nil
	})
}

// DeleteNode removes the record named name and reports whether there was
// one. Deleting a missing record is not an error, so cleanup can repeat.
func (s *Store) DeleteNode(name string) (deleted bool, err error) {
	err = s.Update(func(n *Nodes) error {
		deleted = n.Delete(name)
		return nil
	})
	return deleted, err
}

// Update runs fn on the current records under the store's lock and, if fn
// returns nil, writes the result atomically. If fn returns an error nothing
// is written and Update returns that error. Older file versions are
// migrated and written back in the current version.
func (s *Store) Update(fn func(*Nodes) error) error {
	path := s.NodesPath()
	unlock, err := atomicfile.Lock(path)
	if err != nil {
		return err
	}
	defer unlock()

	n, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(&n); err != nil {
		return err
	}
	n.Version = CurrentVersion
	for _, r := range n.Nodes {
		if err := r.validate(); err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
	}
	if err := checkUnique(n.Nodes); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	sortNodes(n.Nodes)
	if n.Nodes == nil {
		n.Nodes = []NodeRecord{} // "nodes": [] reads better than null
	}
	data, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	data = append(data, '\n')
	if err := s.replace(path, data, 0o600); err != nil {
		return fmt.Errorf("save nodes: %w", err)
	}
	return nil
}

// read loads nodes.json; a missing file is an empty current-version set.
func (s *Store) read() (Nodes, error) {
	path := s.NodesPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Nodes{Version: CurrentVersion}, nil
	}
	if err != nil {
		return Nodes{}, fmt.Errorf("read nodes: %w", err)
	}
	n, err := decode(path, data)
	if err != nil {
		return Nodes{}, err
	}
	sortNodes(n.Nodes)
	return n, nil
}

func sortNodes(rs []NodeRecord) {
	slices.SortStableFunc(rs, func(a, b NodeRecord) int { return strings.Compare(a.Name, b.Name) })
}

func checkUnique(rs []NodeRecord) error {
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		if seen[r.Name] {
			return fmt.Errorf("two node records named %s", r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

// decode parses nodes.json of any known version into the current shape.
//
// Versions:
//
//	0: a bare JSON array of legacy records (early development builds):
//	   [{"name", "provider", "id", "ip", "host_key", "created"}]
//	1: {"version": 1, "nodes": [NodeRecord...]}
//
// A new version adds a case here and a migrateVN function with a test; the
// file is rewritten in the current version on the next Update.
func decode(path string, data []byte) (Nodes, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Nodes{}, fmt.Errorf("%s is empty: remove it if you have no nodes, or restore it from a backup", path)
	}
	if trimmed[0] == '[' {
		n, err := migrateV0(trimmed)
		if err != nil {
			return Nodes{}, fmt.Errorf("read %s (version 0): %w", path, err)
		}
		return n, nil
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(trimmed, &head); err != nil {
		return Nodes{}, fmt.Errorf("read %s: %w (fix the file by hand or restore it from a backup)", path, err)
	}
	if head.Version == nil {
		return Nodes{}, fmt.Errorf("read %s: no \"version\" field; fix the file by hand or restore it from a backup", path)
	}
	switch v := *head.Version; {
	case v > CurrentVersion:
		return Nodes{}, &VersionError{Path: path, Version: v}
	case v == 1:
		var n Nodes
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&n); err != nil {
			return Nodes{}, fmt.Errorf("read %s: %w", path, err)
		}
		return n, nil
	default:
		return Nodes{}, fmt.Errorf("read %s: unknown format version %d", path, v)
	}
}

// legacyV0 is one record of a version 0 file.
type legacyV0 struct {
	Name     string    `json:"name"`
	Provider string    `json:"provider"`
	ID       string    `json:"id"`
	IP       string    `json:"ip"`
	HostKey  string    `json:"host_key"`
	Created  time.Time `json:"created"`
}

// migrateV0 turns a bare array of legacy records into version 1. Version 0
// knew one provider section and one address, and only root logins.
func migrateV0(data []byte) (Nodes, error) {
	var old []legacyV0
	if err := json.Unmarshal(data, &old); err != nil {
		return Nodes{}, err
	}
	n := Nodes{Version: CurrentVersion, Nodes: make([]NodeRecord, 0, len(old))}
	for _, o := range old {
		r := NodeRecord{
			Name:         o.Name,
			Section:      "default",
			ProviderType: o.Provider,
			ID:           o.ID,
			HostKey:      o.HostKey,
			CreatedAt:    o.Created,
		}
		if o.IP != "" {
			r.PublicIPs = []string{o.IP}
		}
		n.Nodes = append(n.Nodes, r)
	}
	return n, nil
}
