package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

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

// Names of slots.
const (
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
func shapeKey(r *instance.Record) string {
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
func slotBackend(l layout.Layout, rt router.Route, rec *instance.Record) (router.Backend, string, error) {
	kind, err := routerKind(rec.Kind)
	if err != nil {
		return router.Backend{}, "", err
	}
	slot := SlotName(rt.Location, shapeKey(rec))
	dir := l.SlotPath(slot)
	b := router.Backend{Kind: kind, StaticDir: path.Join(dir, instance.LinkWWW, "static")}
	if rec.Kind != appconfig.KindStatic {
		b.Upstream = "unix/" + path.Join(dir, instance.LinkSock)
	}
	if rec.WritableRoot {
		// Caddy reads it through the read-only nosymfollow view, never
		// the app's directory itself (writableroot's doc says why).
		b.WritableRoot = path.Join(l.Served, rt.App, "writable-root")
	}
	if rec.Kind == appconfig.KindPHP {
		b.PHPRoot = path.Join(dir, instance.LinkWWW, rec.PHPRoot)
		b.PHPScriptRoot = path.Join(instance.SandboxInstanceDir, rec.PHPRoot)
		if rec.Runner != "" {
			b.PHPFrontController = path.Join(instance.SandboxInstanceDir, rec.Runner)
		}
	}
	return b, slot, nil
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
