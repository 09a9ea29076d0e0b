package instance

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// Enabling and starting without `systemctl enable`: enable and disable
// each make systemd reload its whole configuration (a few hundred
// milliseconds on a node with many units), on top of the daemon-reload the
// new drop-in needs anyway. The agent makes the same symlinks `systemctl
// enable` would (EnableLinks) before that one daemon-reload, then only
// starts the units; stopping removes them. At boot systemd reads them as
// for any enabled unit.

// Link is a symlink the agent makes for an instance.
type Link struct {
	// Path is the symlink, Target what it points to; both absolute on
	// the node.
	Path, Target string
}

// EnableLinks are the symlinks that enable the instance's units at boot:
// multi-user.target wants the instance, sockets.target a command app's
// proxy socket.
func (i *Instance) EnableLinks() []Link {
	if !i.HasProcess() {
		return nil
	}
	u := i.Layout.Units
	links := []Link{{
		Path:   filepath.Join(u, "multi-user.target.wants", UnitName(i.Name)),
		Target: filepath.Join(u, TemplateUnitName),
	}}
	if i.Kind == appconfig.KindCommand {
		links = append(links, Link{
			Path:   filepath.Join(u, "sockets.target.wants", ProxySocketName(i.Name)),
			Target: filepath.Join(u, ProxySocketTemplate),
		})
	}
	return links
}

// writeLinks makes links on h, replacing what is there.
func writeLinks(h *host.Host, links []Link) error {
	for _, l := range links {
		if _, err := h.Symlink(l.Target, l.Path); err != nil {
			return err
		}
	}
	return nil
}

// removeEnableLinks removes what EnableLinks made, for every kind (the
// caller may not know the instance's kind any more).
func removeEnableLinks(l layout.Layout, root, instance string) error {
	var errs []error
	for _, p := range []string{
		filepath.Join(l.Units, "multi-user.target.wants", UnitName(instance)),
		filepath.Join(l.Units, "sockets.target.wants", ProxySocketName(instance)),
	} {
		if err := os.Remove(filepath.Join(root, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
