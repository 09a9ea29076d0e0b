package instance

import (
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
)

// Command apps listen on 127.0.0.1:PORT, but the router reaches every
// instance through a unix socket (see Instance.SocketUpstream), so that
// switching a route to another instance is one symlink replacement for
// every kind. A command instance therefore gets a socket-activated
// systemd-socket-proxyd (from the systemd package, on every node):
//
//	toppcloud-app-proxy@INSTANCE.socket   listens on Layout.Socket(INSTANCE)
//	toppcloud-app-proxy@INSTANCE.service  systemd-socket-proxyd 127.0.0.1:PORT
//
// The port comes from a small environment file of its own (ProxyEnvPath),
// not from the instance's, which holds the app's secrets. The proxy splices
// bytes; it costs one extra connection per request on loopback.

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
	w("ExecStart=" + l.SocketProxyd + " 127.0.0.1:${PORT}")
	w("# It only connects to loopback: an account of its own, made for the run.")
	w("DynamicUser=yes")
	for _, d := range sandbox {
		w(d)
	}
	return []byte(b.String())
}

// proxyEnv is the proxy's environment file.
func (i *Instance) proxyEnv() []byte {
	return []byte(fmt.Sprintf("PORT=%d\n", i.Port))
}
