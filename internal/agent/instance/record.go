package instance

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Record is what the agent keeps about an instance, in its links
// directory (layout.LinksDir): how it runs (to render the route's backend,
// to start it again on activate) and what it was made from.
type Record struct {
	Version    int            `json:"version"`
	App        string         `json:"app"`
	Instance   string         `json:"instance"`
	Kind       appconfig.Kind `json:"kind"`
	Runner     string         `json:"runner,omitempty"`
	RunnerName string         `json:"runner_name,omitempty"`
	PHPRoot    string         `json:"php_root,omitempty"`
	// Port is a command app's last port (reused when it starts again).
	Port int `json:"port,omitempty"`
	// WritableRoot: the app declares service.writable_root, whose
	// directory the router serves files from.
	WritableRoot bool `json:"writable_root,omitempty"`
	// Digest is the manifest the instance was assembled from;
	// ConfigDigest the --config directory's in effect when it was
	// deployed ("" for none).
	Digest       string    `json:"digest"`
	ConfigDigest string    `json:"config_digest,omitempty"`
	AgentVersion string    `json:"agent_version"`
	Created      time.Time `json:"created"`
	// Unsynced: the instance's files may not be on disk yet. An update
	// sets it when it assembles the instance and clears it once the blob
	// store's Sync is done, before switching to it; a record that still
	// has it after a crash belongs to an instance that may be incomplete,
	// which activate refuses.
	Unsynced bool `json:"unsynced,omitempty"`
}

// RecordVersion is the version of the record this agent writes and the
// newest it reads.
const RecordVersion = 1

// Names inside an instance's links directory: the symlinks a slot leads
// through to the instance's files and socket, and its record.
const (
	LinkWWW    = "www"
	LinkSock   = "sock"
	recordFile = "instance.json"
)

// NewRecord describes instance name of app, about to be made from cfg.
func NewRecord(app, name string, cfg *appconfig.Config, digest, configDigest string, now time.Time) *Record {
	rec := &Record{
		App: app, Instance: name, Kind: cfg.Runner.Kind,
		Runner: cfg.Runner.Path, RunnerName: cfg.Runner.Name, PHPRoot: cfg.PHPRoot,
		Digest: digest, ConfigDigest: configDigest, AgentVersion: version.Version, Created: now.UTC(),
	}
	for _, s := range cfg.Services {
		if s.Name == "writable_root" {
			rec.WritableRoot = true
		}
	}
	return rec
}

// Record reads an instance's record.
func (n *Node) Record(name string) (*Record, error) {
	if _, ok := SplitName(name); !ok {
		return nil, fmt.Errorf("instance name %q: not APP.SUFFIX (letters, digits, . _ -)", name)
	}
	b, err := n.Host.ReadFile(path.Join(n.Layout.LinksDir(name), recordFile))
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", name, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance %s: %s: %w", name, recordFile, err)
	}
	if r.Version > RecordVersion {
		return nil, fmt.Errorf("instance %s: record version %d is newer than this agent's", name, r.Version)
	}
	if r.Instance != name || appconfig.CheckAppName(r.App) != nil {
		return nil, fmt.Errorf("instance %s: %s names %q of app %q", name, recordFile, r.Instance, r.App)
	}
	return &r, nil
}

// SaveRecord writes the instance's links directory: its record and the
// symlinks to its files and socket.
func (n *Node) SaveRecord(rec *Record) error {
	h, l := n.Host, n.Layout
	dir := l.LinksDir(rec.Instance)
	if err := os.MkdirAll(h.Path(dir), 0o755); err != nil {
		return err
	}
	rec.Version = RecordVersion
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if _, err := h.WriteFile(path.Join(dir, recordFile), append(data, '\n'), host.Attr{Mode: 0o644}); err != nil {
		return err
	}
	links := map[string]string{LinkWWW: l.InstanceDir(rec.Instance)}
	if rec.Kind != appconfig.KindStatic {
		links[LinkSock] = l.Socket(rec.Instance)
		links[LinkPrevSock] = PrevSocketPath(l, rec.Instance)
	}
	for name, target := range links {
		if _, err := h.Symlink(target, path.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}
