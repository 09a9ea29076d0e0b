package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/state"
)

// openedProvider is a config section with its driver constructed.
type openedProvider struct {
	section      string
	configPath   string
	info         provider.Info
	driver       provider.Driver
	settings     provider.Settings
	defaultImage string
	defaultSize  string
	sectionKeys  []string
	setEtcHosts  bool
}

// configFile returns the path of the config file: --config, then
// $TOPPCLOUD_CONFIG, then ~/.toppcloud.conf.
func (a *App) configFile() string {
	if a.configPath != "" {
		return a.configPath
	}
	if p := a.getenv("TOPPCLOUD_CONFIG"); p != "" {
		return p
	}
	return filepath.Join(a.home, ".toppcloud.conf")
}

// loadConfig reads the config file, creating it interactively on first
// use as the original did (but then going on with the command).
func (a *App) loadConfig(ctx context.Context) (*config.File, error) {
	path := a.configFile()
	f, err := config.Load(path)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, asUsage(err)
	}
	if !a.interactive() {
		return nil, usagef("%s does not exist and there is no terminal to ask for its contents; create it with: toppcloud init-config --provider TYPE [--username U] [--secret-file F] [--key PUBKEY]", path)
	}
	a.out.Printf("%s does not exist; let's create it.", path)
	if err := a.firstRun(ctx, path); err != nil {
		return nil, err
	}
	f, err = config.Load(path)
	if err != nil {
		return nil, asUsage(err)
	}
	return f, nil
}

// openProvider opens the section named by -p.
func (a *App) openProvider(ctx context.Context) (*openedProvider, error) {
	return a.openProviderSection(ctx, a.providerName)
}

// openProviderSection opens a named [provider:NAME] section.
func (a *App) openProviderSection(ctx context.Context, name string) (*openedProvider, error) {
	f, err := a.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := f.Provider(name, provider.Registered())
	if err != nil {
		return nil, asUsage(err)
	}
	info, ok := provider.Lookup(sec.Type)
	if !ok {
		return nil, asUsage(&provider.UnknownTypeError{Type: sec.Type, Known: provider.Names()})
	}
	settings := sec.Settings(info, a.getenv)
	setEtc, err := sec.SetEtcHosts()
	if err != nil {
		return nil, asUsage(err)
	}
	st, err := a.state()
	if err != nil {
		return nil, err
	}
	env := provider.Env{
		Section:    name,
		Settings:   settings,
		HTTPClient: a.httpClient(),
		Log:        a.logWriter(),
		StateDir:   filepath.Join(st.Dir(), "providers", name),
	}
	d, err := provider.Open(info.Name, env)
	if err != nil {
		var miss *provider.MissingOptionError
		if errors.As(err, &miss) {
			return nil, asUsage(fmt.Errorf("%w (in [provider:%s] of %s)", err, name, f.Path))
		}
		return nil, asUsage(err)
	}
	img, size := provider.DefaultMatchers(settings, info)
	return &openedProvider{
		section: name, configPath: f.Path, info: info, driver: d, settings: settings,
		defaultImage: img, defaultSize: size, sectionKeys: sec.AuthorizedKeys(), setEtcHosts: setEtc,
	}, nil
}

// httpClient is the client every provider API call goes through.
func (a *App) httpClient() *http.Client {
	c := &http.Client{Timeout: 2 * time.Minute}
	if a.debugAPI != "" {
		c.Transport = &debugTransport{path: a.debugAPI, next: http.DefaultTransport, warn: a.out.Warnf}
	}
	return c
}

// logWriter is where drivers write diagnostics: stderr at -v, else
// nowhere.
func (a *App) logWriter() *lineLog {
	return &lineLog{out: a.out}
}

// lineLog turns a driver's log writes into progress lines shown at -v.
type lineLog struct{ out *Output }

func (l *lineLog) Write(p []byte) (int, error) {
	l.out.Debugf("%s", trimNL(string(p)))
	return len(p), nil
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// state opens the client's state directory (~/.toppcloud).
func (a *App) state() (*state.Store, error) {
	dir := a.getenv("TOPPCLOUD_STATE")
	if dir == "" {
		dir = filepath.Join(a.home, ".toppcloud")
	}
	st, err := state.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	return st, nil
}

// interactive reports whether we may ask questions on the terminal.
func (a *App) interactive() bool {
	f, ok := a.stdin.(*os.File)
	return ok && isTerminal(f)
}

// confirm asks a yes/no question. -y answers yes. Without a terminal the
// answer is yes too: scripts call destroy-node on purpose.
func (a *App) confirm(question string) bool {
	if a.yes || !a.interactive() {
		return true
	}
	ok, err := newTermPrompter(a).Confirm(question, false)
	return err == nil && ok
}
