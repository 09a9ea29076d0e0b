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
	for _, wk := range i.WorkerJobs {
		links = append(links, workerLink(i.Layout, WorkerUnitName(i.Name, wk.Name, wk.Replica)))
	}
	return links
}

// workerLink enables a worker unit at boot.
func workerLink(l layout.Layout, unit string) Link {
	return Link{Path: filepath.Join(l.Units, "multi-user.target.wants", unit), Target: filepath.Join(l.Units, WorkerTemplate)}
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
	paths := []string{
		filepath.Join(l.Units, "multi-user.target.wants", UnitName(instance)),
		filepath.Join(l.Units, "sockets.target.wants", ProxySocketName(instance)),
	}
	for _, wu := range workerUnitsOnDisk(l, root, instance) {
		paths = append(paths, workerLink(l, wu.Unit()).Path)
	}
	for _, p := range paths {
		if err := os.Remove(filepath.Join(root, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
