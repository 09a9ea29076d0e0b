package devserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/assets"
)

// loadErrorStatus is the bootstrap's exit status for "the application
// could not be loaded" (APP_LOAD_ERROR in toppcloud_wsgi.py).
const loadErrorStatus = 4

// devserverScript runs the bootstrap under wsgiref (see its doc).
const devserverScript = "python/toppcloud_devserver.py"

// processBackend is an application process reached over HTTP on
// 127.0.0.1: the Python bootstrap or a command app.
type processBackend struct {
	p      *proc
	target *url.URL
	ready  chan struct{}
	err    error // set before ready closes
	proxy  *httputil.ReverseProxy
}

func newProcessBackend(p *proc, addr string) *processBackend {
	b := &processBackend{p: p, target: &url.URL{Scheme: "http", Host: addr}, ready: make(chan struct{})}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(b.target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		// One connection per request, as on a node: a restarted process
		// never gets a stale pooled connection.
		Transport:     &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 0},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			select {
			case <-b.p.done:
				writeError(w, http.StatusBadGateway, b.p.exitError())
			case <-time.After(200 * time.Millisecond):
				writeError(w, http.StatusBadGateway, &appError{Title: "the application did not answer", Output: err.Error()})
			}
		},
	}
	return b
}

func (b *processBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.proxy.ServeHTTP(w, r) }

func (b *processBackend) wait(ctx context.Context) error {
	select {
	case <-b.ready:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *processBackend) stop() { b.p.stop(3 * time.Second) }

// startPython starts the bootstrap for a python or paste app on a
// listening socket of its own, and reports ready when the application
// has loaded (the script writes "ready" on a pipe) or failed to (the
// bootstrap exits 4 after printing the traceback).
func (s *Server) startPython(inst *instance) (backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("python: %w", err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("python: %w", err)
	}
	defer lf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("python: %w", err)
	}
	env := s.processEnv(inst, s.process(inst.cfg, s.token))
	env = append(env, "TOPPCLOUD_DEVSERVER_LISTEN_FD=3", "TOPPCLOUD_DEVSERVER_STATUS_FD=4", "PYTHONUNBUFFERED=1")
	cmd := exec.Command(s.o.Python, assets.Path(s.assets, devserverScript))
	cmd.Dir = s.appDir
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{lf, pw}
	p, err := startProc("the application", cmd, s.o.Log)
	pw.Close()
	if err != nil {
		pr.Close()
		if _, lerr := s.o.LookPath(s.o.Python); lerr != nil {
			return nil, &appError{Title: "python3 is not installed", Output: fmt.Sprintf(
				"%s apps run with python3, which was not found (%v): install Python 3 (Debian: apt install python3; macOS: brew install python)", inst.cfg.Runner.Kind, lerr)}
		}
		return nil, err
	}
	b := newProcessBackend(p, ln.Addr().String())
	go func() {
		defer pr.Close()
		line, _ := bufio.NewReader(pr).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			<-p.done
			e := p.exitError()
			if p.exitCode() == loadErrorStatus {
				e.Title = fmt.Sprintf("the application (runner %s) failed to load", filepath.ToSlash(inst.cfg.Runner.Path))
				e.Output = loadTraceback(e.Output)
			}
			b.err = e
		}
		close(b.ready)
	}()
	return b, nil
}

// loadTraceback is the bootstrap's report from a process's output: from
// its "failed to load" line on, when there is one.
func loadTraceback(out string) string {
	if i := strings.LastIndex(out, "toppcloud: the application (runner"); i >= 0 {
		if j := strings.IndexByte(out[i:], '\n'); j >= 0 {
			return strings.TrimSpace(out[i+j+1:])
		}
	}
	return out
}
