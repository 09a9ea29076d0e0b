package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// The previous instance at prev.HOST, started on demand.
//
// The router sends prev.HOST/PATH to the route's previous instance
// (router.Table.Served), so that a rollback can be checked before it is
// made, as in the original. Why on demand and not kept warm: a warm
// previous instance would double the memory of every app on the node
// (nodes are small and shared by many apps) for a page someone looks at
// now and then, if ever; a start costs a second or two at the first
// request after an idle spell, which is fine for checking a rollback.
// `activate prev` starts the instance afresh anyway.
//
// The instance is "armed": its files are written as for a start, but
// nothing starts it except a connection to its prev socket:
//
//	toppcloud-prev@INSTANCE.socket   listens on PrevSocketPath(INSTANCE)
//	toppcloud-prev@INSTANCE.service  systemd-socket-proxyd to the instance,
//	                                 exiting after PrevIdleTimeout idle;
//	                                 requires toppcloud-app@INSTANCE
//	toppcloud-app@INSTANCE.service.d/prev.conf
//	                                 BindsTo= the proxy: the instance stops
//	                                 when the proxy exits
//
// Only the agent arms instances, and only the previous instance of a
// route: a request can start nothing else (no socket listens for any
// other instance). The socket is enabled (sockets.target), so it
// listens again after a reboot.

// Prev unit names and the idle timeout.
const (
	PrevSocketTemplate  = "toppcloud-prev@.socket"
	PrevServiceTemplate = "toppcloud-prev@.service"
	// PrevIdleTimeout is how long a previous instance started on demand
	// runs without a connection before it stops again.
	PrevIdleTimeout = 10 * time.Minute
	// LinkPrevSock is the symlink in an instance's links directory to its
	// prev socket, which a prev. route's slot leads through.
	LinkPrevSock = "prev.sock"
)

// PrevSocketName is the socket unit that starts the instance on demand.
func PrevSocketName(instance string) string { return "toppcloud-prev@" + instance + ".socket" }

// PrevServiceName is the proxy that socket starts.
func PrevServiceName(instance string) string { return "toppcloud-prev@" + instance + ".service" }

// PrevSocketPath is where the armed instance's prev socket listens.
func PrevSocketPath(l layout.Layout, instance string) string {
	return path.Join(l.Run, "prev", instance)
}

func prevAppDropInPath(l layout.Layout, instance string) string {
	return path.Join(l.Units, UnitName(instance)+".d", "prev.conf")
}

func prevServiceDropInPath(l layout.Layout, instance string) string {
	return path.Join(l.Units, PrevServiceName(instance)+".d", "instance.conf")
}

func prevSocketLink(l layout.Layout, instance string) Link {
	return Link{
		Path:   filepath.Join(l.Units, "sockets.target.wants", PrevSocketName(instance)),
		Target: filepath.Join(l.Units, PrevSocketTemplate),
	}
}

func prevSocketUnit(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud: the prev. host socket of instance %i; written by the agent, do not edit.")
	w("[Unit]")
	w("Description=toppcloud prev. host socket of instance %i")
	w("")
	w("[Socket]")
	w("ListenStream=" + l.Run + "/prev/%i")
	w("# Root and Caddy's group may connect; the directory is passable.")
	w("SocketUser=root")
	w("SocketGroup=" + layout.CaddyGroup)
	w("SocketMode=0660")
	w("DirectoryMode=0755")
	w("RemoveOnStop=yes")
	w("")
	w("[Install]")
	w("WantedBy=sockets.target")
	return []byte(b.String())
}

func prevServiceUnit(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud: starts instance %i for its prev. host; written by the agent, do not edit.")
	w("# The drop-in sets ExecStart (where the instance listens).")
	w("[Unit]")
	w("Description=toppcloud prev. host proxy of instance %i")
	w("Requires=toppcloud-prev@%i.socket toppcloud-app@%i.service")
	w("# python and php tell systemd when they are up: no request is sent before.")
	w("After=toppcloud-prev@%i.socket toppcloud-app@%i.service")
	w("")
	w("[Service]")
	w("DynamicUser=yes")
	w("# Instance sockets are reachable by Caddy's group.")
	w("SupplementaryGroups=" + layout.CaddyGroup)
	for _, d := range sandbox {
		w(d)
	}
	return []byte(b.String())
}

// prevServiceDropIn says what the proxy needs: the instance's socket,
// which for a command app is its own proxy's (proxy.go), started with it.
// A command app does not tell systemd when it is up, so the proxy first
// waits (as root, whom the node's firewall lets reach app ports; a probe
// that sends nothing) until its port takes connections.
func (i *Instance) prevServiceDropIn() []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud prev. host proxy of " + i.Name + "; written by the agent, do not edit.")
	if i.Kind == appconfig.KindCommand {
		w("[Unit]")
		w("Requires=" + ProxySocketName(i.Name))
		w("After=" + ProxySocketName(i.Name))
		w("")
	}
	w("[Service]")
	if i.Kind == appconfig.KindCommand {
		// A fixed script: the port is a number the agent chose.
		w(fmt.Sprintf("ExecStartPre=+/bin/bash -c 'for n in $(seq 600); do (: </dev/tcp/127.0.0.1/%d) 2>/dev/null && exit 0; sleep 0.1; done; exit 1'", i.Port))
	}
	idle := "--exit-idle-time=" + strconv.Itoa(int(PrevIdleTimeout.Seconds())) + "s"
	w("ExecStart=" + i.Layout.SocketProxyd + " " + idle + " " + i.Layout.Socket(i.Name))
	return []byte(b.String())
}

// prevAppDropIn makes the armed instance stop with its proxy.
func (i *Instance) prevAppDropIn() []byte {
	return []byte("# toppcloud: " + i.Name + " runs for its prev. host only; written by the agent, do not edit.\n" +
		"[Unit]\nBindsTo=" + PrevServiceName(i.Name) + "\n")
}

// ArmPrev makes a prepared instance (Prepare, without workers) start on
// the first connection to its prev socket and stop after
// PrevIdleTimeout without one. The instance must not be running: Stop
// it first.
func (n *Node) ArmPrev(ctx context.Context, inst *Instance) error {
	if !inst.HasProcess() {
		return nil
	}
	if len(inst.WorkerJobs) > 0 {
		return fmt.Errorf("arm %s: a previous instance runs no workers", inst.Name)
	}
	files, err := inst.Files()
	if err != nil {
		return err
	}
	l := n.Layout
	files = append(files,
		File{Path: prevAppDropInPath(l, inst.Name), Mode: 0o644, Data: inst.prevAppDropIn()},
		File{Path: prevServiceDropInPath(l, inst.Name), Mode: 0o644, Data: inst.prevServiceDropIn()},
	)
	if err := WriteFiles(n.Host.Root, files); err != nil {
		return err
	}
	if err := writeLinks(n.Host, []Link{prevSocketLink(l, inst.Name)}); err != nil {
		return err
	}
	sd := n.systemd()
	if err := sd.DaemonReload(ctx); err != nil {
		return err
	}
	if err := sd.Start(ctx, PrevSocketName(inst.Name)); err != nil {
		return fmt.Errorf("arm %s for its prev. host: %w", inst.Name, err)
	}
	return nil
}

// DisarmPrev stops serving the instance at its prev. host but leaves it
// running if it runs (it is live somewhere now). Use Stop for one that
// is not.
func (n *Node) DisarmPrev(ctx context.Context, name string) error {
	l := n.Layout
	var errs []error
	// BindsTo goes first, so that stopping the proxy leaves the instance.
	for _, p := range []string{prevAppDropInPath(l, name), path.Dir(prevServiceDropInPath(l, name)), prevSocketLink(l, name).Path} {
		if err := os.RemoveAll(n.Host.Path(p)); err != nil {
			errs = append(errs, err)
		}
	}
	sd := n.systemd()
	if err := sd.DaemonReload(ctx); err != nil {
		errs = append(errs, err)
	} else if err := sd.Stop(ctx, PrevSocketName(name), PrevServiceName(name)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("disarm %s: %w", name, err)
	}
	return nil
}

// ArmedPrevs lists the instances armed for their prev. host.
func (n *Node) ArmedPrevs() ([]string, error) {
	entries, err := os.ReadDir(n.Host.Path(path.Join(n.Layout.Units, "sockets.target.wants")))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "toppcloud-prev@")
		if name, ok2 := strings.CutSuffix(name, ".socket"); ok && ok2 && name != "" {
			out = append(out, name)
		}
	}
	return out, nil
}

// IsArmedPrev reports whether the instance is armed for its prev. host.
func (n *Node) IsArmedPrev(name string) bool {
	ok, _ := n.Host.Exists(prevSocketLink(n.Layout, name).Path)
	return ok
}
