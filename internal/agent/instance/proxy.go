package instance

import (
	"context"
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
)

// Command apps listen on 127.0.0.1:PORT, but the router reaches every
// instance through a unix socket (see Instance.SocketUpstream), so that
// switching a route to another instance is one symlink replacement for
// every kind. A command instance therefore gets a socket-activated proxy
// (appsocket.Proxy, the agent binary run as ProxyUser):
//
//	toppcloud-app-proxy@INSTANCE.socket   listens on Layout.Socket(INSTANCE)
//	toppcloud-app-proxy@INSTANCE.service  toppcloud app-socket proxy PORT APP_USER
//
// Loopback TCP is every local user's: while the app is down, another app
// could bind its port, and any process could connect to it directly,
// around Caddy and the headers Caddy sets. So the proxy passes a
// connection on only when the listener on the port is the app's user's,
// and the node's firewall lets only root (the agent) and ProxyUser
// connect to the command apps' ports (PortMin-PortMax) at all.
// (systemd's SocketBindAllow= would confine binds, but Debian 12's
// systemd is built without the BPF framework it needs, and it would not
// stop connections; a socket handed to the app instead of $PORT would
// change what a command app is.)
//
// The port and the app's user come from a small environment file of the
// proxy's own (ProxyEnvPath), not from the instance's, which holds the
// app's secrets. The proxy copies bytes; it costs one extra connection per
// request on loopback.

// ProxyUser runs every command instance's proxy: one fixed account, which
// the firewall names (DynamicUser= would give a new uid each time).
const ProxyUser = "toppcloud-proxy"

// EnsureProxyUser makes ProxyUser (a system account that logs in nowhere)
// and returns its uid.
func EnsureProxyUser(ctx context.Context, h *host.Host) (int, error) {
	if u, ok, err := h.LookupUser(ProxyUser); err != nil {
		return -1, err
	} else if ok {
		return u.UID, nil
	}
	argv := []string{"useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--comment", "toppcloud command apps' proxy", ProxyUser}
	if _, err := h.Runner.Run(ctx, host.Command{Argv: argv}); err != nil && host.ExitStatus(err) != 9 {
		return -1, fmt.Errorf("create user %s: %w", ProxyUser, err)
	}
	u, ok, err := h.LookupUser(ProxyUser)
	if err != nil || !ok {
		return -1, fmt.Errorf("user %s missing after useradd: %v", ProxyUser, err)
	}
	return u.UID, nil
}

// Proxy unit names.
const (
	ProxySocketTemplate  = "toppcloud-app-proxy@.socket"
	ProxyServiceTemplate = "toppcloud-app-proxy@.service"
)

// ProxySocketName and ProxyServiceName are the units of an instance's
// proxy.
func ProxySocketName(instance string) string {
	return "toppcloud-app-proxy@" + instance + ".socket"
}

// ProxyServiceName is the proxy service the socket starts.
func ProxyServiceName(instance string) string {
	return "toppcloud-app-proxy@" + instance + ".service"
}

// ProxyEnvPath is the proxy's environment file (PORT only).
func ProxyEnvPath(l layout.Layout, instance string) string {
	return path.Join(l.InstanceEtcDir(instance), "proxy.env")
}

// TemplateUnits returns every template unit file the agent installs, by
// file name: the instance template, the two proxy templates and the job
// templates (jobunits.go).
func TemplateUnits(l layout.Layout) map[string][]byte {
	units := map[string][]byte{
		TemplateUnitName:     TemplateUnit(l),
		ProxySocketTemplate:  proxySocketUnit(l),
		ProxyServiceTemplate: proxyServiceUnit(l),
		PrevSocketTemplate:   prevSocketUnit(l),
		PrevServiceTemplate:  prevServiceUnit(l),
	}
	maps.Copy(units, jobTemplates(l))
	return units
}

func proxySocketUnit(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud: the unix socket of command instance %i; written by the agent, do not edit.")
	w("[Unit]")
	w("Description=toppcloud socket of command instance %i")
	w("")
	w("[Socket]")
	w("ListenStream=" + l.Run + "/%i/" + layout.SocketName)
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

func proxyServiceUnit(l layout.Layout) []byte {
	var b strings.Builder
	w := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	w("# toppcloud: forwards command instance %i's socket to its TCP port; written by the agent, do not edit.")
	w("[Unit]")
	w("Description=toppcloud proxy of command instance %i")
	w("Requires=toppcloud-app-proxy@%i.socket")
	w("After=toppcloud-app-proxy@%i.socket toppcloud-app@%i.service")
	w("")
	w("[Service]")
	w("EnvironmentFile=" + l.InstanceEtc + "/%i/proxy.env")
	w("ExecStart=" + l.Agent + " app-socket proxy ${PORT} ${APP_USER}")
	w("# It only connects to loopback, as the one user the firewall lets")
	w("# reach command apps' ports.")
	w("User=" + ProxyUser)
	w("Group=" + ProxyUser)
	for _, d := range sandbox {
		w(d)
	}
	w("# sock_diag (netlink) says whose the listener on the app's port is.")
	w("RestrictAddressFamilies=AF_NETLINK")
	w("TemporaryFileSystem=" + l.WWW + ":ro " + l.Data + ":ro " + l.Logs + ":ro")
	w("ProtectProc=invisible")
	return []byte(b.String())
}

// proxyEnv is the proxy's environment file.
func (i *Instance) proxyEnv() []byte {
	return []byte(fmt.Sprintf("PORT=%d\nAPP_USER=%s\n", i.Port, i.user()))
}
