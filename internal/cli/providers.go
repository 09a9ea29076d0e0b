package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/nodes"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/state"
)

// configFile returns the path of the config file: --config, then
// $TOPPCLOUD_CONFIG, then ~/.toppcloud.conf.
func (a *App) configFile() string {
	if a.configPath != "" {
		return a.configPath
	}
	if p := a.getenv(config.EnvVar); p != "" {
		return p
	}
	return filepath.Join(a.home, config.FileName)
}

// nodes returns the run's node session: the config file, the state
// directory and the SSH connections, each opened once for the command.
func (a *App) nodes() *nodes.Session {
	if a.sess != nil {
		return a.sess
	}
	o := nodes.Options{
		ConfigPath:  a.configFile(),
		StateDir:    state.Dir(a.getenv, a.home),
		Providers:   a.providers,
		Getenv:      a.getenv,
		Home:        a.home,
		SSHKey:      a.sshKey,
		HTTPClient:  a.httpClient(),
		Log:         a.logWriter(),
		EtcHosts:    a.etcHosts,
		AgentBinary: a.getenv(remote.EnvAgentBinary),
		LocalUser:   localUser(),
		Verbose:     a.verbose,
		Report:      reporter{a.out},
	}
	if a.interactive() {
		// The original created the config file by asking on first use,
		// then went on with the command.
		o.FirstRun = a.firstRun
	}
	a.sess = nodes.New(o)
	return a.sess
}

// reporter shows a node session's progress as step lines.
type reporter struct{ *Output }

func (r reporter) Step(format string, args ...any) nodes.Step { return r.Output.Step(format, args...) }

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

// confirmDataLoss asks before an app's data is deleted or replaced. Unlike
// confirm, no terminal is not a yes: a script that forgot -y must not
// empty a database, so it gets an error that names the flag.
func (a *App) confirmDataLoss(op, question string) error {
	if a.yes {
		return nil
	}
	if !a.interactive() {
		return fmt.Errorf("%s deletes data and there is no terminal to ask on: pass -y to confirm; nothing changed", op)
	}
	if ok, err := newTermPrompter(a).Confirm(question, false); err != nil || !ok {
		return fmt.Errorf("%s: not confirmed; nothing changed", op)
	}
	return nil
}
