package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/devserver"
)

// develDir is where serve keeps per-app development data
// (~/.toppcloud/devel).
func (a *App) develDir() string {
	dir := a.getenv("TOPPCLOUD_STATE")
	if dir == "" {
		dir = filepath.Join(a.home, ".toppcloud")
	}
	return filepath.Join(dir, "devel")
}

func (a *App) serveCmd() *cobra.Command {
	var host, configDir string
	var port int
	cmd := &cobra.Command{
		Use:   "serve APP_DIR [--host 127.0.0.1] [--port 8080] [--config DIR]",
		Short: "Run an application locally as a node would, reloading on edits",
		Long: `Run the application in APP_DIR on this machine, as a node runs it, without
root and without a node: static/ and the writable root are served first, then
the app, which gets the node's variables (SILVER_VERSION=devel/...,
SILVER_INSTANCE_NAME=localhost, SILVER_APP_CONFIG, the services' CONFIG_*)
and, for Python, the node's own bootstrap. update_fetch runs once at start.

Python and Paste Deploy apps need python3; PHP apps php-cgi (or the PHP CLI,
whose built-in server is used then); command apps get $PORT.

Services come from the [devel] and [devel:APP] sections of ~/.toppcloud.conf:
files = PATH and writable_root = PATH (default ~/.toppcloud/devel/APP/files
and .../writable-root), postgresql.dbname, .host, .port, .user, .password
(postgis.* as in the original), mysql.*, redis.*. A database is only given
when these settings point at one; serve says which services it cannot give.

Saving a Python file, app.ini, the runner or a configuration file restarts
the app (files are polled every 300ms). A load error shows its traceback in
the browser and here; the next save tries again. --config DIR is the app's
configuration directory ($SILVER_APP_CONFIG), not the toppcloud config file.`,
		GroupID: "devel",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 0 || port > 65535 {
				return usagef("serve: --port %d is not a port", port)
			}
			o := devserver.Options{
				AppDir:    args[0],
				ConfigDir: configDir,
				Home:      a.home,
				DataDir:   a.develDir(),
				Log:       a.out.Stderr,
			}
			if u, err := user.Current(); err == nil {
				o.User = u.Username
			}
			confPath := a.configFile()
			f, err := config.Load(confPath)
			switch {
			case err == nil:
				for _, w := range f.Warnings {
					a.out.Warnf("%s", w)
				}
				o.Settings = f.Devel
				o.SettingsDir = filepath.Dir(confPath)
				o.KeysFile = confPath
			case errors.Is(err, fs.ErrNotExist):
				a.out.Debugf("no %s: no [devel] settings", confPath)
			default:
				return asUsage(err)
			}
			s, err := devserver.New(o)
			if err != nil {
				return asUsage(err)
			}
			defer s.Close()
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("serve: %w (another server on that port? try --port)", err)
			}
			return s.Serve(cmd.Context(), ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "host", "127.0.0.1", "listen on `HOST` (0.0.0.0 for every interface)")
	f.IntVar(&port, "port", 8080, "listen on `PORT` (0: any free port)")
	f.StringVar(&configDir, "config", "", "the app's configuration `DIR` ($SILVER_APP_CONFIG)")
	return cmd
}
