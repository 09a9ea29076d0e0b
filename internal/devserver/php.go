package devserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/assets"
)

// phpRouter is the router script of `php -S` (see startPHP).
const phpRouter = "php/toppcloud_devserver_router.php"

// phpHeaderPrefix starts the headers the front server sends `php -S`'s
// router to say which script runs; client copies are deleted.
const phpHeaderPrefix = "X-Toppcloud-Devserver-"

// phpBackend runs a PHP app the way a node's router and php-fpm do:
// existing .php files under php_root run, other existing files are served
// as they are, everything else runs the front controller (the runner,
// else php_root/index.php). Each script runs through php-cgi (one process
// per request, the CGI variables set as the node's FastCGI ones), or, when
// only the PHP CLI is installed, through a `php -S` server whose router
// script includes the chosen script. Both prepend the node's PHP prelude,
// so SILVER_SECRET, silver_next_path() and the internal-request flag
// behave as on a node. PHP reads its files on every request: nothing needs
// a restart when they change.
type phpBackend struct {
	root    string // php_root
	front   string // the front controller, "" for none
	cgi     string // php-cgi, or ""
	prepend string
	env     []string
	s       *Server
	server  *processBackend // php -S, when there is no php-cgi
}

func (s *Server) startPHP(inst *instance) (backend, error) {
	b := &phpBackend{
		root:    filepath.Join(s.appDir, filepath.FromSlash(inst.cfg.PHPRoot)),
		prepend: assets.Path(s.assets, assets.PHPPrepend),
		s:       s,
	}
	if inst.cfg.Runner.Path != "" {
		b.front = filepath.Join(s.appDir, filepath.FromSlash(inst.cfg.Runner.Path))
	}
	b.env = s.processEnv(inst, s.process(inst.cfg, s.token))
	php := s.o.PHP
	b.cgi = s.o.PHPCGI
	if b.cgi == "" && php == "" {
		b.cgi, php = s.lookPath("php-cgi"), s.lookPath("php")
	}
	if b.cgi != "" {
		return b, nil
	}
	if php == "" {
		return nil, &appError{Title: "PHP is not installed",
			Output: "platform = php apps run under toppcloud serve with php-cgi or, failing that, the PHP CLI's built-in server (php -S);\n" +
				"neither php-cgi nor php was found on $PATH. Install one: Debian and Ubuntu: apt install php-cgi; macOS: brew install php."}
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("php: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(php, "-S", addr, assets.Path(s.assets, phpRouter))
	cmd.Dir = s.appDir
	cmd.Env = append(b.env, "PHP_CLI_SERVER_WORKERS=4")
	p, err := startProc("php -S", cmd, &phpLogFilter{w: s.o.Log})
	if err != nil {
		return nil, err
	}
	b.server = newProcessBackend(p, addr)
	go func() {
		b.server.err = p.waitPort(s.ctx, func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		})
		close(b.server.ready)
	}()
	return b, nil
}

func (b *phpBackend) wait(ctx context.Context) error {
	if b.server != nil {
		return b.server.wait(ctx)
	}
	return nil
}

func (b *phpBackend) stop() {
	if b.server != nil {
		b.server.stop()
	}
}

// phpTarget is what a request runs.
type phpTarget struct {
	redirect   string // add a slash
	file       string // served as it is
	script     string // SCRIPT_FILENAME
	scriptName string
	pathInfo   string
}

// route decides as the node's router does (router.phpRoutes).
func (b *phpBackend) route(urlPath string) (phpTarget, bool) {
	clean := path.Clean("/" + urlPath)
	abs := func(p string) string { return filepath.Join(b.root, filepath.FromSlash(p)) }
	isFile := func(p string) bool {
		st, err := os.Stat(abs(p))
		return err == nil && st.Mode().IsRegular()
	}
	if !strings.HasSuffix(urlPath, "/") && clean != "/" && isFile(clean+"/index.php") {
		return phpTarget{redirect: urlPath + "/"}, true
	}
	// An existing file, split at .php as php_fastcgi's split_path does
	// (/a.php/extra runs a.php with PATH_INFO /extra).
	candidate, rest := clean, ""
	if i := strings.Index(clean, ".php/"); i >= 0 {
		candidate, rest = clean[:i+4], clean[i+4:]
	}
	tries := []string{candidate, path.Join(candidate, "index.php")}
	if b.front == "" {
		tries = append(tries, "/index.php")
	}
	for _, t := range tries {
		if !isFile(t) {
			continue
		}
		if strings.HasSuffix(t, ".php") {
			return phpTarget{script: abs(t), scriptName: t, pathInfo: rest}, true
		}
		return phpTarget{file: abs(t)}, true
	}
	if b.front == "" {
		return phpTarget{}, false
	}
	return phpTarget{script: b.front, scriptName: "/" + filepath.Base(b.front), pathInfo: clean}, true
}

func (b *phpBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, ok := b.route(r.URL.Path)
	switch {
	case !ok:
		http.NotFound(w, r)
	case t.redirect != "":
		target := t.redirect
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	case t.file != "":
		http.ServeFile(w, r, t.file)
	case b.server != nil:
		r.Header.Set(phpHeaderPrefix+"Script-Filename", t.script)
		r.Header.Set(phpHeaderPrefix+"Script-Name", t.scriptName)
		r.Header.Set(phpHeaderPrefix+"Path-Info", t.pathInfo)
		r.Header.Set(phpHeaderPrefix+"Document-Root", b.root)
		b.server.ServeHTTP(w, r)
	default:
		env := append(append([]string{}, b.env...),
			"SCRIPT_FILENAME="+t.script,
			"SCRIPT_NAME="+t.scriptName,
			"PATH_INFO="+t.pathInfo,
			"DOCUMENT_ROOT="+b.root,
			"SILVER_MATCH_PATH=/",
			"REDIRECT_STATUS=200",
			"SERVER_SOFTWARE=toppcloud-serve",
		)
		h := &cgi.Handler{
			Path:   b.cgi,
			Dir:    filepath.Dir(t.script),
			Env:    env,
			Args:   []string{"-d", "auto_prepend_file=" + b.prepend},
			Stderr: b.s.o.Log,
		}
		h.ServeHTTP(w, r)
	}
}

// phpLogFilter drops the built-in server's own chatter (a line per
// connection and per worker started), keeping what PHP scripts print
// and their errors.
type phpLogFilter struct {
	w    io.Writer
	part []byte
}

var phpChatterRE = regexp.MustCompile(`^\[\d+\] \[[^]]+\] (127\.0\.0\.1:\d+ (Accepted|Closing|Closed without sending a request.*)|PHP \S+ Development Server \(.*\) started)$`)

func (f *phpLogFilter) Write(b []byte) (int, error) {
	f.part = append(f.part, b...)
	for {
		i := bytes.IndexByte(f.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := f.part[:i+1]
		f.part = f.part[i+1:]
		if !phpChatterRE.Match(bytes.TrimRight(line, "\r\n")) {
			if _, err := f.w.Write(line); err != nil {
				return len(b), err
			}
		}
	}
}
