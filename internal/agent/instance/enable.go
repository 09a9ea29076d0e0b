package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// WriteLinks makes links under root, replacing what is there.
func WriteLinks(root string, links []Link) error {
	for _, l := range links {
		p := filepath.Join(root, l.Path)
		if cur, err := os.Readlink(p); err == nil && cur == l.Target {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".new"
		_ = os.Remove(tmp)
		if err := os.Symlink(l.Target, tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			os.Remove(tmp)
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

// units are the units StartInstance starts, main unit last: a command
// app's socket must listen before anyone is told the app is up.
func (i *Instance) units() []string {
	if i.Kind == appconfig.KindCommand {
		return []string{ProxySocketName(i.Name), UnitName(i.Name)}
	}
	return []string{UnitName(i.Name)}
}

// StartInstance starts the instance's units (already enabled by
// EnableLinks and known to systemd after DaemonReload). For python and
// php it returns once the server has booted or failed; wait with a
// HealthCheck for the application.
func (s Systemctl) StartInstance(ctx context.Context, i *Instance) error {
	if _, err := s.Exec(ctx, append([]string{"systemctl", "start"}, i.units()...)...); err != nil {
		return fmt.Errorf("start %s: %w", i.Name, err)
	}
	return nil
}

// quickStopSignal ends an instance that has nothing in flight at once;
// KillSignal (the unit's graceful stop) waits for workers to notice, up
// to a second for gunicorn's threads.
func quickStopSignal(kind appconfig.Kind) string {
	switch kind {
	case appconfig.KindPython, appconfig.KindPaste:
		return "SIGQUIT" // gunicorn: quick shutdown
	case appconfig.KindPHP:
		return "SIGTERM" // php-fpm: quick shutdown (SIGQUIT is graceful)
	}
	return ""
}

// StopInstance stops an instance's units: with drained set (nothing is
// in flight, see Drainer) quickly, else gracefully (KillSignal, up to the
// graceful timeout). It does not wait for the processes to end: nothing
// routes to the instance any more, and a graceful stop may take the whole
// graceful timeout. Units that do not exist are not an error.
func (s Systemctl) StopInstance(ctx context.Context, name string, kind appconfig.Kind, drained bool) error {
	if kind == appconfig.KindStatic {
		return nil
	}
	if sig := quickStopSignal(kind); drained && sig != "" {
		// Best effort: a unit that is not running has no main process.
		_, _ = s.Exec(ctx, "systemctl", "kill", "--kill-whom=main", "--signal="+sig, UnitName(name))
	}
	argv := []string{"systemctl", "stop", "--no-block", UnitName(name)}
	if kind == appconfig.KindCommand {
		argv = append(argv, ProxySocketName(name), ProxyServiceName(name))
	}
	if _, err := s.Exec(ctx, argv...); err != nil && !strings.Contains(err.Error(), "not loaded") && !strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// Current reports whether systemd has the instance's unit loaded with the
// drop-in as written: then starting it needs no daemon-reload (which costs
// a few hundred milliseconds on a node with many units). A new instance's
// unit is loaded from disk the first time anything asks about it, so this
// is true for it unless something asked before its files were written.
func (s Systemctl) Current(ctx context.Context, i *Instance) bool {
	out, err := s.Exec(ctx, "systemctl", "show", "--property=LoadState,NeedDaemonReload,DropInPaths", UnitName(i.Name))
	if err != nil {
		return false
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	return props["LoadState"] == "loaded" && props["NeedDaemonReload"] == "no" &&
		slices.Contains(strings.Fields(props["DropInPaths"]), DropInPath(i.Layout, i.Name))
}
