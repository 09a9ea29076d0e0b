package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/location"
)

// Switching instances without reloading Caddy.
//
// Caddy's config names no instance. Each route reaches its live instance
// through a slot, a symlink that stays put while the instance behind it
// changes:
//
//	/var/lib/toppcloud/slots/SLOT -> /var/lib/toppcloud/instances/INSTANCE
//	/var/lib/toppcloud/instances/INSTANCE/www  -> /var/www/INSTANCE
//	/var/lib/toppcloud/instances/INSTANCE/sock -> /run/toppcloud/INSTANCE/app.sock
//	/var/lib/toppcloud/instances/INSTANCE/instance.json   (the instance's record)
//
// The config dials unix//var/lib/toppcloud/slots/SLOT/sock and serves
// files from SLOT/www/static: Caddy resolves both at every connect and
// every request, so replacing the slot symlink (a new symlink renamed over
// it, atomic) switches every kind of instance at once, with no reload
// (a reload closes idle keep-alive connections, and clients racing them
// fail). The slot's name comes from the route's location and from the
// shape of the instance (kind, php_root, runner): when a deploy changes the
// shape, the config must change too, and a new slot beside the old one lets
// the new config load while the old one still serves through the old slot.
// Everything lives on disk, so a reboot finds it as it was.

// instanceRecord is what the agent keeps about an instance, in its links
// directory: how it runs (to render the route's backend, to start it
// again on activate) and what it was made from.
type instanceRecord struct {
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

const instanceRecordVersion = 1

// Names inside an instance's links directory.
const (
	linkWWW      = "www"
	linkSock     = "sock"
	recordFile   = "instance.json"
	slotHashLen  = 12
	slotReadable = 40
)

// routerKind maps how an app runs to how the router reaches it.
func routerKind(k appconfig.Kind) (router.Kind, error) {
	switch k {
	case appconfig.KindPython:
		return router.KindPython, nil
	case appconfig.KindPaste:
		return router.KindPaste, nil
	case appconfig.KindPHP:
		return router.KindPHP, nil
	case appconfig.KindCommand:
		return router.KindCommand, nil
	case appconfig.KindStatic:
		return router.KindStatic, nil
	}
	return "", fmt.Errorf("unknown kind %v", k)
}

// shapeKey is what of an instance the rendered config depends on; two
// instances with the same key can share a slot.
func (r *instanceRecord) shapeKey() string {
	k := r.Kind.String()
	if r.Kind == appconfig.KindPHP {
		k += "\x00" + r.PHPRoot + "\x00" + r.Runner
	}
	if r.WritableRoot {
		k += "\x00wr"
	}
	return k
}

// SlotName is the slot of the route at loc while an instance of the given
// shape is live there: a readable part from the location (a–z, 0–9, '.'
// and '-'; anything else '_') and a hash of the location's key and the
// shape, so distinct routes and shapes never share one. It is a single
// path element, short enough for a unix socket path under the slots
// directory.
func SlotName(loc location.Location, shapeKey string) string {
	key := loc.Key()
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.' && b.Len() > 0, r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= slotReadable {
			break
		}
	}
	sum := sha256.Sum256([]byte(key + "\x00" + shapeKey))
	return b.String() + "-" + hex.EncodeToString(sum[:])[:slotHashLen]
}

// slotBackend is how Caddy reaches the route's live instance, whose record
// is rec, through the slot.
func slotBackend(l layout.Layout, rt router.Route, rec *instanceRecord) (router.Backend, string, error) {
	kind, err := routerKind(rec.Kind)
	if err != nil {
		return router.Backend{}, "", err
	}
	slot := SlotName(rt.Location, rec.shapeKey())
	dir := l.SlotPath(slot)
	b := router.Backend{Kind: kind, StaticDir: path.Join(dir, linkWWW, "static")}
	if rec.Kind != appconfig.KindStatic {
		b.Upstream = "unix/" + path.Join(dir, linkSock)
	}
	if rec.WritableRoot {
		b.WritableRoot = path.Join(l.Apps, rt.App, "writable-root")
	}
	if rec.Kind == appconfig.KindPHP {
		b.PHPRoot = path.Join(dir, linkWWW, rec.PHPRoot)
		b.PHPScriptRoot = path.Join(instance.SandboxInstanceDir, rec.PHPRoot)
		if rec.Runner != "" {
			b.PHPFrontController = path.Join(instance.SandboxInstanceDir, rec.Runner)
		}
	}
	return b, slot, nil
}

// readRecord reads an instance's record.
func (a *Agent) readRecord(instance string) (*instanceRecord, error) {
	if err := router.ValidateInstance(instance); err != nil {
		return nil, err
	}
	b, err := a.Host.ReadFile(path.Join(a.Layout.LinksDir(instance), recordFile))
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", instance, err)
	}
	var r instanceRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance %s: %s: %w", instance, recordFile, err)
	}
	if r.Version > instanceRecordVersion {
		return nil, fmt.Errorf("instance %s: record version %d is newer than this agent's", instance, r.Version)
	}
	if r.Instance != instance || appconfig.CheckAppName(r.App) != nil {
		return nil, fmt.Errorf("instance %s: %s names %q of app %q", instance, recordFile, r.Instance, r.App)
	}
	return &r, nil
}

// writeLinks makes the instance's links directory: its record and the
// symlinks to its files and socket.
func (a *Agent) writeLinks(rec *instanceRecord) error {
	h, l := a.Host, a.Layout
	dir := l.LinksDir(rec.Instance)
	if err := os.MkdirAll(h.Path(dir), 0o755); err != nil {
		return err
	}
	rec.Version = instanceRecordVersion
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if _, err := h.WriteFile(path.Join(dir, recordFile), append(data, '\n'), hostAttr(0o644)); err != nil {
		return err
	}
	links := map[string]string{linkWWW: path.Join(l.WWW, rec.Instance)}
	if rec.Kind != appconfig.KindStatic {
		links[linkSock] = a.Layout.Socket(rec.Instance)
	}
	for name, target := range links {
		if _, err := h.Symlink(target, path.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// pointSlot makes the slot lead to the instance's links directory.
func (a *Agent) pointSlot(slot, instance string) error {
	_, err := a.Host.Symlink(a.Layout.LinksDir(instance), a.Layout.SlotPath(slot))
	return err
}

// slotTarget returns the instance a slot leads to, "" if none.
func (a *Agent) slotTarget(slot string) string {
	t, err := os.Readlink(a.Host.Path(a.Layout.SlotPath(slot)))
	if err != nil {
		return ""
	}
	return path.Base(t)
}

// removeSlotsExcept removes every slot but keep, and leftovers of
// interrupted switches.
func (a *Agent) removeSlotsExcept(keep map[string]bool) ([]string, error) {
	entries, err := os.ReadDir(a.Host.Path(a.Layout.Slots))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(a.Host.Path(a.Layout.SlotPath(e.Name()))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}
