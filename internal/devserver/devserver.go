// Package devserver is `toppcloud serve`: it runs an application
// directory on the developer's machine the way a node runs a deployed
// instance, without root and without a node.
//
// One Go HTTP server is the front, as Caddy is on a node: it serves
// static/, then the writable root's HOST/ directory, then the writable
// root, then hands the request to the application, which runs as on a
// node: Python and Paste Deploy apps through the node's own bootstrap
// (assets/python/toppcloud_wsgi.py) under a small threaded WSGI server of
// Python's standard library, PHP apps through php-cgi (or `php -S` when
// only the CLI is installed) with the node's PHP prelude, command apps as
// a process listening on $PORT. The application sees the variables a
// node gives it (internal/appruntime), with SILVER_VERSION=devel/...,
// SILVER_INSTANCE_NAME=localhost, and the services' CONFIG_* variables
// from the [devel] settings (internal/service/devel).
//
// The server polls the files that make up the running application
// (Python sources, app.ini, the runner, the configuration) and restarts
// the application when one changes. Polling rather than inotify/kqueue:
// it needs no per-directory watches (a lib/python tree has thousands of
// directories, more than macOS's open-file limit allows for kqueue), it
// sees editors' rename-over-save the same way as in-place writes, and it
// is the same code on Linux and macOS; a stat walk of a few thousand
// files every few hundred milliseconds costs little (bench numbers in the
// README).
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
	"github.com/toppcloud/toppcloud/internal/assets"
	"github.com/toppcloud/toppcloud/internal/service/devel"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Options configure a Server.
type Options struct {
	// AppDir is the application directory (with app.ini).
	AppDir string
	// ConfigDir is the app's configuration directory ($SILVER_APP_CONFIG,
	// serve --config); "" uses app.ini's config.default.
	ConfigDir string
	// Settings returns the [devel] and [devel:APP] settings for an app
	// (config.File.Devel); nil means none.
	Settings func(app string) map[string]string
	// SettingsDir anchors relative paths in the settings (the config
	// file's directory); KeysFile is the file whose [keys] sections
	// silversupport.secret.get_key reads (the config file).
	SettingsDir string
	KeysFile    string
	// Home is the user's home directory; DataDir is where per-app
	// development data lives (~/.toppcloud/devel): APP/files,
	// APP/writable-root, and the development secret.
	Home    string
	DataDir string
	// User is the local login name (the default database user).
	User string

	// Python runs Python apps ("python3" on $PATH when empty). PHPCGI and
	// PHP are php-cgi and the PHP CLI; when empty they are looked up on
	// $PATH, php-cgi first.
	Python string
	PHPCGI string
	PHP    string
	// LookPath finds programs (exec.LookPath when nil).
	LookPath func(file string) (string, error)
	// Environ is the environment the application's variables are added
	// to (os.Environ() when nil).
	Environ []string

	// Poll is how often files are checked for changes (300ms when 0).
	Poll time.Duration
	// Log receives the server's messages, one line each, and the
	// application's output.
	Log io.Writer
}

// DefaultPoll is how often the server looks for changed files.
const DefaultPoll = 300 * time.Millisecond

// Server runs one application directory.
type Server struct {
	o        Options
	appDir   string
	assets   string // the bootstrap's files, installed for this run
	secret   string
	token    string
	logMu    sync.Mutex
	ctx      context.Context
	fetchMu  sync.Mutex
	fetched  bool
	mu       sync.Mutex
	cur      *instance
	reloads  int
	snapshot map[string]fileSig
}

// New checks the options and prepares a server; Serve runs it. The
// caller must call Close.
func New(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Python == "" {
		o.Python = "python3"
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.DataDir == "" {
		return nil, errors.New("devserver: no data directory")
	}
	dir, err := filepath.Abs(o.AppDir)
	if err != nil {
		return nil, fmt.Errorf("application directory: %w", err)
	}
	if _, err := appconfig.Load(dir); err != nil {
		return nil, err
	}
	if o.ConfigDir != "" {
		if o.ConfigDir, err = filepath.Abs(o.ConfigDir); err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if st, err := os.Stat(o.ConfigDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--config %s: not a directory", o.ConfigDir)
		}
	}
	s := &Server{o: o, appDir: dir}
	s.o.Python = resolvePython(o.Python, dir)
	if s.secret, err = developmentSecret(o.DataDir); err != nil {
		return nil, err
	}
	if s.token, err = appruntime.NewToken(); err != nil {
		return nil, err
	}
	if s.assets, err = os.MkdirTemp("", "toppcloud-serve-"); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if _, err := assets.Install(s.assets); err != nil {
		os.RemoveAll(s.assets)
		return nil, fmt.Errorf("devserver: %w", err)
	}
	return s, nil
}

// Close stops the application and removes the server's temporary files.
func (s *Server) Close() error {
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	if cur != nil {
		cur.stop()
	}
	return os.RemoveAll(s.assets)
}

// Serve loads the application, serves it on ln until ctx ends, and
// restarts it when its files change. It returns nil when ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.ctx = ctx
	url := "http://" + ln.Addr().String() + "/"
	inst := s.load()
	s.snapshot = s.scan(inst.watch)
	s.mu.Lock()
	s.cur = inst
	s.mu.Unlock()
	if inst.cfg != nil {
		s.logf("serving %s (%s) at %s; edit a file and it reloads; Ctrl-C stops", inst.cfg.AppName, describe(inst.cfg), url)
	} else {
		s.logf("serving %s at %s once app.ini is fixed", s.appDir, url)
	}
	go s.afterReady(inst)

	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			return nil
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-tick.C:
			if changed := s.changes(); changed != "" {
				s.reload(changed)
			}
		}
	}
}

// describe says how the app runs, for the start line.
func describe(cfg *appconfig.Config) string {
	switch cfg.Runner.Kind {
	case appconfig.KindStatic:
		return "static files"
	case appconfig.KindPHP:
		if cfg.Runner.Path != "" {
			return "php, " + cfg.Runner.Path
		}
		return "php"
	}
	return cfg.Runner.Kind.String() + ", " + cfg.Runner.Path
}

// reload replaces the running application after a change.
func (s *Server) reload(changed string) {
	s.logf("%s changed: reloading", changed)
	next := s.load()
	s.snapshot = s.scan(next.watch)
	s.mu.Lock()
	old := s.cur
	s.cur = next
	s.reloads++
	s.mu.Unlock()
	go func() {
		// Requests the old process is answering may finish while the
		// new one loads.
		_ = next.wait(s.ctx)
		if old != nil {
			old.stop()
		}
	}()
	go s.afterReady(next)
}

// afterReady reports how a (re)load ended and runs update_fetch once,
// after the first load that works.
func (s *Server) afterReady(inst *instance) {
	err := inst.wait(s.ctx)
	if s.ctx.Err() != nil {
		return
	}
	if err != nil {
		ae := asAppError(err)
		if !ae.Printed {
			s.logf("%s", ae.Error())
		}
		s.logf("the application is not running: fix the error and save; the browser shows it meanwhile")
		return
	}
	if inst.backend != nil && inst.cfg != nil && len(inst.cfg.UpdateFetch) > 0 {
		s.fetchMu.Lock()
		defer s.fetchMu.Unlock()
		if !s.fetched {
			s.fetched = true
			s.updateFetch(inst)
		}
	}
}

// current returns the running instance.
func (s *Server) current() *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Reloads says how many times the application was reloaded (for tests).
func (s *Server) Reloads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloads
}

func (s *Server) logf(format string, args ...any) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	fmt.Fprintf(s.o.Log, "%s serve: %s\n", time.Now().Format("15:04:05"), msg)
}

// instance is one load of the application: its config, environment and
// running backend, or what stopped it from loading.
type instance struct {
	cfg      *appconfig.Config
	env      map[string]string // the application's variables, bootstrap's included
	static   fileDir
	writable string
	backend  backend
	err      error    // app.ini or services could not be loaded
	watch    []string // watched roots and files, for changes
}

// wait blocks until the backend is ready, returning why it is not.
func (i *instance) wait(ctx context.Context) error {
	if i.err != nil {
		return i.err
	}
	if i.backend == nil {
		return nil
	}
	return i.backend.wait(ctx)
}

func (i *instance) stop() {
	if i.backend != nil {
		i.backend.stop()
	}
}

// backend runs the application's process(es).
type backend interface {
	http.Handler
	// wait blocks until the application answers or failed to start.
	wait(ctx context.Context) error
	// stop ends it.
	stop()
}

// load reads app.ini, computes the environment and starts the backend.
// Errors are kept in the instance, for the error page.
func (s *Server) load() *instance {
	inst := &instance{static: fileDir{dir: filepath.Join(s.appDir, "static")}}
	cfg, err := appconfig.Load(s.appDir)
	if err != nil {
		inst.err = &appError{Title: "app.ini cannot be read", Output: err.Error()}
		inst.watch = []string{filepath.Join(s.appDir, appconfig.FileName)}
		return inst
	}
	inst.cfg = cfg
	inst.watch = s.watchList(cfg)
	verr := cfg.Validate(s.appDir)
	for _, w := range cfg.Warnings {
		s.logf("warning: %s", w)
	}
	if verr != nil {
		inst.err = &appError{Title: "app.ini does not match the directory", Output: verr.Error()}
		return inst
	}
	env, err := s.environment(cfg)
	if err != nil {
		inst.err = err
		return inst
	}
	inst.env = env
	inst.writable = env["CONFIG_WRITABLE_ROOT"]
	switch cfg.Runner.Kind {
	case appconfig.KindPython, appconfig.KindPaste:
		inst.backend, err = s.startPython(inst)
	case appconfig.KindCommand:
		inst.backend, err = s.startCommand(inst)
	case appconfig.KindPHP:
		inst.backend, err = s.startPHP(inst)
	}
	if err != nil {
		inst.err = err
	}
	return inst
}

// environment is what the application sees, as a node builds it
// (runner.Layout.Environment), with the development values.
func (s *Server) environment(cfg *appconfig.Config) (map[string]string, error) {
	logs := filepath.Join(s.appDir, "silver-logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, fmt.Errorf("SILVER_LOGS: %w", err)
	}
	temp := os.TempDir()
	for _, kv := range s.o.Environ {
		if v, ok := strings.CutPrefix(kv, appruntime.EnvTemp+"="); ok && v != "" {
			temp = v
		}
	}
	env := map[string]string{
		appruntime.EnvVersion:           version.DevelVersion(),
		appruntime.EnvInstanceName:      "localhost",
		appruntime.EnvAppName:           cfg.AppName,
		appruntime.EnvCanonicalHostname: "localhost",
		appruntime.EnvLogs:              logs,
		appruntime.EnvTemp:              temp,
	}
	switch {
	case s.o.ConfigDir != "":
		env[appruntime.EnvAppConfig] = s.o.ConfigDir
	case cfg.ConfigDefault != "":
		env[appruntime.EnvAppConfig] = filepath.Join(s.appDir, filepath.FromSlash(cfg.ConfigDefault))
	case cfg.ConfigRequired:
		return nil, &appError{Title: "the app needs a configuration",
			Output: "app.ini says config.required = true and has no config.default: give serve --config DIR " +
				"(toppcloud create-config makes one from config.template)"}
	}
	var settings map[string]string
	if s.o.Settings != nil {
		settings = s.o.Settings(cfg.AppName)
	}
	res, err := devel.Env(devel.Input{
		App: cfg.AppName, Services: cfg.Services, Settings: settings,
		DataDir: filepath.Join(s.o.DataDir, cfg.AppName), Home: s.o.Home, BaseDir: s.o.SettingsDir, User: s.o.User,
	})
	if err != nil {
		return nil, &appError{Title: "services", Output: err.Error()}
	}
	for _, p := range res.Provided {
		s.logf("service %s", p)
	}
	for _, m := range res.Missing {
		s.logf("warning: %s", m)
	}
	for k, v := range res.Env {
		env[k] = v
	}
	if s.o.KeysFile != "" {
		env[appruntime.EnvKeysFile] = s.o.KeysFile
	}
	if err := appruntime.CheckEnv(env); err != nil {
		return nil, &appError{Title: "environment", Output: err.Error()}
	}
	return env, nil
}

// processEnv is the environment of the app's process: the user's, the
// application's variables, and the bootstrap's for p.
func (s *Server) processEnv(inst *instance, p appruntime.Process) []string {
	env := map[string]string{}
	for k, v := range inst.env {
		env[k] = v
	}
	p.Dir, p.SecretFile = s.appDir, s.secret
	for k, v := range p.Env() {
		env[k] = v
	}
	return environ(s.o.Environ, env)
}

// process describes the app's process for appruntime.
func (s *Server) process(cfg *appconfig.Config, token string) appruntime.Process {
	return appruntime.Process{
		Kind: cfg.Runner.Kind, Runner: cfg.Runner.Path, RunnerName: cfg.Runner.Name, PHPRoot: cfg.PHPRoot, Token: token,
	}
}

// developmentSecret is the secret get_secret() returns under serve, made
// once per user as the original's ~/.silverlining/secret.txt was.
func developmentSecret(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "secret")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("development secret: %w", err)
	}
	tok, err := appruntime.NewToken()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return p, nil
	}
	if err != nil {
		return "", fmt.Errorf("development secret: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return "", fmt.Errorf("development secret: %w", err)
	}
	return p, nil
}

// resolvePython returns the interpreter python names, run from dir:
// sys.executable. Every reload starts Python, and version managers'
// shims (pyenv's python3 is a shell script running pyenv) can cost more
// than the reload itself; asking once keeps their choice for this app
// directory. On any failure python is returned as it is, and starting it
// reports the problem.
func resolvePython(python, dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.executable)")
	cmd.Dir = dir
	out, err := cmd.Output()
	exe := strings.TrimSpace(string(out))
	if err != nil || !filepath.IsAbs(exe) {
		return python
	}
	if st, err := os.Stat(exe); err != nil || st.IsDir() {
		return python
	}
	return exe
}

// lookPath finds a program, "" when it is not installed.
func (s *Server) lookPath(name string) string {
	p, err := s.o.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}
