package router

import "path/filepath"

// backendLayout holds the node directories the tests' backends live in.
type backendLayout struct {
	WWW  string // instance directories: /var/www
	Apps string // per-app data: /var/lib/toppcloud/apps
	Run  string // instance sockets: /run/toppcloud
}

// nodeBackends is where these paths are on a node.
func nodeBackends() backendLayout {
	return backendLayout{WWW: "/var/www", Apps: "/var/lib/toppcloud/apps", Run: "/run/toppcloud"}
}

// Backend returns the conventional backend of an instance: socket
// Run/INSTANCE.sock, WWW/INSTANCE/static, Apps/APP/writable-root, and for
// PHP the instance directory as PHPRoot. Callers adjust what differs (a
// command app's TCP port, the app's php_root).
func (l backendLayout) Backend(kind Kind, app, instance string) Backend {
	b := Backend{
		Kind:         kind,
		StaticDir:    filepath.Join(l.WWW, instance, "static"),
		WritableRoot: filepath.Join(l.Apps, app, "writable-root"),
	}
	if kind != KindStatic {
		b.Upstream = "unix/" + filepath.Join(l.Run, instance+".sock")
	}
	if kind == KindPHP {
		b.PHPRoot = filepath.Join(l.WWW, instance)
	}
	return b
}
