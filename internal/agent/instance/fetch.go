package instance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
	"github.com/toppcloud/toppcloud/internal/assets"
)

// ErrFetchFailed is wrapped by every FetchError.
var ErrFetchFailed = errors.New("update_fetch failed")

// FetchError is an update_fetch entry that failed: a URL that answered
// with a non-2xx status, or a script that exited non-zero.
type FetchError struct {
	// Entry is the update_fetch line ("/setup", "script:bin/migrate").
	Entry string
	// Status is the HTTP status (URLs).
	Status int
	// Err is the cause (the script's exit, a connection error, ...).
	Err error
}

func (e *FetchError) Error() string {
	switch {
	case e.Status != 0:
		return fmt.Sprintf("update_fetch %s: the application answered %d %s", e.Entry, e.Status, http.StatusText(e.Status))
	case e.Err != nil:
		return fmt.Sprintf("update_fetch %s: %v", e.Entry, e.Err)
	}
	return "update_fetch " + e.Entry + ": failed"
}

// Unwrap gives ErrFetchFailed and the cause.
func (e *FetchError) Unwrap() []error { return []error{ErrFetchFailed, e.Err} }

// RunUpdateFetch runs the app's update_fetch entries in order against
// this (new, not yet live) instance, as the location's host, sending each
// line of output to out as it comes; it stops at the first failure.
func (i *Instance) RunUpdateFetch(ctx context.Context, host string, entries []appconfig.Fetch, out func(line string)) error {
	for _, f := range entries {
		if f.Script != nil {
			out("Calling update script " + scriptLine(*f.Script))
			cmd, err := i.ScriptCommand(ctx, *f.Script)
			if err != nil {
				return &FetchError{Entry: "script:" + scriptLine(*f.Script), Err: err}
			}
			if err := StreamCommand(cmd, out); err != nil {
				return &FetchError{Entry: "script:" + scriptLine(*f.Script), Err: err}
			}
			continue
		}
		out("Fetching update URL " + f.URL)
		if err := i.FetchURL(ctx, host, f.URL, out); err != nil {
			return err
		}
	}
	return nil
}

func scriptLine(c appconfig.Command) string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

// FetchURL makes an internal GET request for urlPath ("/setup?x=1") to
// the instance, with Host host and the instance's token, not through the
// router (no mount path: SCRIPT_NAME is empty), streaming the body's lines
// to out. A status outside 2xx is a *FetchError.
func (i *Instance) FetchURL(ctx context.Context, host, urlPath string, out func(line string)) error {
	return i.Fetch(ctx, UpdateUserAgent, host, urlPath, out)
}

// User agents of the agent's internal requests.
const (
	UpdateUserAgent = "toppcloud-update"
	CronUserAgent   = "toppcloud-cron"
)

// Fetch is FetchURL with the User-Agent the request says it comes from.
func (i *Instance) Fetch(ctx context.Context, userAgent, host, urlPath string, out func(line string)) error {
	u, err := url.ParseRequestURI(urlPath)
	if err != nil || !strings.HasPrefix(urlPath, "/") {
		return &FetchError{Entry: urlPath, Err: fmt.Errorf("not a URL path: %q", urlPath)}
	}
	if host == "" {
		host = "localhost"
	}
	var status int
	switch i.Kind {
	case appconfig.KindPython, appconfig.KindPaste, appconfig.KindCommand:
		status, err = i.fetchHTTP(ctx, userAgent, host, u, out)
	case appconfig.KindPHP:
		status, err = i.fetchFastCGI(ctx, userAgent, host, u, out)
	default:
		err = fmt.Errorf("a %v app has no process to fetch from", i.Kind)
	}
	if err != nil {
		return &FetchError{Entry: urlPath, Err: err}
	}
	if status < 200 || status > 299 {
		return &FetchError{Entry: urlPath, Status: status}
	}
	return nil
}

func (i *Instance) fetchHTTP(ctx context.Context, userAgent, host string, u *url.URL, out func(string)) (int, error) {
	conn, err := Dialer(i.Upstream())(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+u.RequestURI(), nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	req.Header.Set(InternalHeader, i.Token)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Forwarded-For", "127.0.0.1")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	if err := streamLines(resp.Body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, nil
}

// frontController is the PHP file a request runs: the runner, or
// php_root/index.php without one; a URL naming an existing .php file
// under php_root runs that file, as the router does.
func (i *Instance) frontController(urlPath string) string {
	root := filepath.Join(i.Dir(), filepath.FromSlash(i.PHPRoot))
	if strings.HasSuffix(urlPath, ".php") {
		clean := path.Clean("/" + urlPath)
		p := filepath.Join(root, filepath.FromSlash(clean))
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	if i.Runner != "" {
		return filepath.Join(i.Dir(), filepath.FromSlash(i.Runner))
	}
	return filepath.Join(root, "index.php")
}

func (i *Instance) fetchFastCGI(ctx context.Context, userAgent, host string, u *url.URL, out func(string)) (int, error) {
	conn, err := Dialer(i.Upstream())(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	script := i.frontController(u.Path)
	params := map[string]string{
		"GATEWAY_INTERFACE":         "CGI/1.1",
		"SERVER_SOFTWARE":           "toppcloud",
		"SERVER_PROTOCOL":           "HTTP/1.1",
		"REQUEST_METHOD":            "GET",
		"REQUEST_URI":               u.RequestURI(),
		"QUERY_STRING":              u.RawQuery,
		"SCRIPT_NAME":               u.Path,
		"SCRIPT_FILENAME":           script,
		"DOCUMENT_ROOT":             filepath.Join(i.Dir(), filepath.FromSlash(i.PHPRoot)),
		"SERVER_NAME":               host,
		"SERVER_PORT":               "80",
		"REMOTE_ADDR":               "127.0.0.1",
		"HTTP_HOST":                 host,
		"HTTP_USER_AGENT":           userAgent,
		"SILVER_MATCH_PATH":         "",
		"HTTP_X_TOPPCLOUD_INTERNAL": i.Token,
	}
	status, _, stream, body, err := fcgiRoundTrip(conn, params, nil)
	if err != nil {
		return 0, err
	}
	if err := streamLines(body, out); err != nil {
		return status, err
	}
	if s := strings.TrimSpace(stream.Stderr.String()); s != "" {
		for _, line := range strings.Split(s, "\n") {
			out(line)
		}
	}
	return status, nil
}

// ScriptCommand builds the command for an update_fetch `script:` entry:
// a Python script (*.py, or a #! line naming python) runs through the
// bootstrap's script runner, with the app's libraries on sys.path, as the
// original's call-script.py did; any other script is executed directly
// and must be executable. It runs as the app user, in the instance
// directory, with the instance's environment (without the internal
// token), unbuffered so its output streams.
func (i *Instance) ScriptCommand(ctx context.Context, c appconfig.Command) (*exec.Cmd, error) {
	argv, err := i.scriptArgv(c)
	if err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	return i.appCommand(ctx, argv, "script "+c.Path)
}

// scriptArgv is how a script of the app runs (update_fetch's and crons'
// script: entries, workers): a Python script through the bootstrap's
// script runner, anything else directly.
func (i *Instance) scriptArgv(c appconfig.Command) ([]string, error) {
	if err := checkRel(c.Path); err != nil {
		return nil, err
	}
	script := filepath.Join(i.Dir(), filepath.FromSlash(c.Path))
	if appruntime.IsPythonScript(script) {
		return append([]string{i.Layout.Python, assets.Path(i.Layout.Assets, assets.ScriptRunner), c.Path}, c.Args...), nil
	}
	return append([]string{script}, c.Args...), nil
}

// CheckConfigCommand builds the command that runs app.ini's
// config.checker (module:function) on the configuration directory
// configDir, as the original's update-check-config.py did: the app's
// libraries on sys.path, as the app user, in the instance directory,
// with the instance's environment. A non-zero exit means the
// configuration was refused; the output says why.
func (i *Instance) CheckConfigCommand(ctx context.Context, checker appconfig.Checker, configDir string) (*exec.Cmd, error) {
	if checker.IsZero() || strings.ContainsAny(checker.String(), " \t\n\x00/") {
		return nil, fmt.Errorf("config.checker %q: not module:function", checker)
	}
	if !filepath.IsAbs(configDir) {
		return nil, fmt.Errorf("config directory %q is not absolute", configDir)
	}
	argv := []string{i.Layout.Python, assets.Path(i.Layout.Assets, assets.ConfigChecker), checker.String(), configDir}
	return i.appCommand(ctx, argv, "config.checker")
}

// appCommand makes argv run the way the app's own processes do.
func (i *Instance) appCommand(ctx context.Context, argv []string, what string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = i.Dir()
	env := i.ProcessEnv()
	delete(env, EnvInternalToken)
	env["PYTHONUNBUFFERED"] = "1"
	env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	env["HOME"] = i.Layout.AppDir(i.App)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cred, err := credential(i.user())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cmd.SysProcAttr.Credential = cred
	// On cancel, end the whole process group, not just the interpreter.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// credential looks up the user's uid, gid and groups.
func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("app user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("app user %s: %w", name, err)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("app user %s: groups: %w", name, err)
	}
	for _, g := range ids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("app user %s: group %q: %w", name, g, err)
		}
		c.Groups = append(c.Groups, uint32(n))
	}
	return c, nil
}

// StreamCommand runs cmd with its stdout and stderr merged, sending each
// line to out as it is written; a non-zero exit is an error (an
// *exec.ExitError).
func StreamCommand(cmd *exec.Cmd, out func(line string)) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- streamLines(pr, out) }()
	werr := cmd.Wait()
	// Wait returns once the process is gone (or WaitDelay passed);
	// children keeping the pipe open must not hold us forever.
	var serr error
	select {
	case serr = <-done:
	case <-time.After(5 * time.Second):
		serr = errors.New("output still open after the script exited")
	}
	pr.Close()
	if werr != nil {
		return werr
	}
	return serr
}

// maxLine bounds one output line; longer ones are passed on in pieces.
const maxLine = 64 << 10

func streamLines(r io.Reader, out func(string)) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			out(string(bytes.TrimRight(line, "\r\n")))
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}
