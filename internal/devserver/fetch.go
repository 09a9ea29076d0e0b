package devserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/appruntime"
	"github.com/toppcloud/toppcloud/internal/assets"
)

// updateFetch runs app.ini's update_fetch entries against the loaded
// application, as a deploy does against a new instance: URLs as internal
// requests (the bootstrap sets silverlining.internal and .update), and
// scripts with the app's environment. A failure is reported and serving
// goes on: the developer fixes it and restarts serve.
func (s *Server) updateFetch(inst *instance) {
	for _, f := range inst.cfg.UpdateFetch {
		var err error
		if f.Script != nil {
			line := strings.Join(append([]string{f.Script.Path}, f.Script.Args...), " ")
			s.logf("update_fetch: calling update script %s", line)
			err = s.runScript(s.ctx, inst, *f.Script)
		} else {
			s.logf("update_fetch: fetching update URL %s", f.URL)
			err = s.fetchURL(inst, f.URL)
		}
		if err != nil {
			s.logf("update_fetch failed: %v (on a node this stops the deploy; serve goes on)", err)
			return
		}
	}
}

// runScript runs an update_fetch script: Python ones through the
// bootstrap's script runner, others directly.
func (s *Server) runScript(ctx context.Context, inst *instance, c appconfig.Command) error {
	script := filepath.Join(s.appDir, filepath.FromSlash(c.Path))
	var argv []string
	if appruntime.IsPythonScript(script) {
		argv = append([]string{s.o.Python, assets.Path(s.assets, assets.ScriptRunner), c.Path}, c.Args...)
	} else {
		argv = append([]string{script}, c.Args...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.appDir
	// Scripts are not requests: no token, as on a node.
	cmd.Env = append(s.processEnv(inst, s.process(inst.cfg, "")), "PYTHONUNBUFFERED=1")
	p, err := startProc("script "+c.Path, cmd, s.o.Log)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(time.Second)
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("script %s: %w", c.Path, p.err)
	}
	return nil
}

// fetchURL makes the internal request for urlPath straight to the
// application (not through static/), with the token, and prints the
// body.
func (s *Server) fetchURL(inst *instance, urlPath string) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, "http://localhost"+urlPath, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", urlPath, err)
	}
	req.Host = "localhost"
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = urlPath
	req.Header.Set(appruntime.InternalHeader, s.token)
	req.Header.Set(appruntime.MatchPathHeader, "/")
	req.Header.Set("User-Agent", "toppcloud-update")
	w := &bufferWriter{header: http.Header{}}
	inst.backend.ServeHTTP(w, req)
	if body := strings.TrimRight(w.body.String(), "\n"); body != "" {
		for _, line := range strings.Split(body, "\n") {
			s.logf("  %s", line)
		}
	}
	if st := w.code(); st < 200 || st > 299 {
		return fmt.Errorf("%s: the application answered %d %s", urlPath, st, http.StatusText(st))
	}
	return nil
}

// bufferWriter is a ResponseWriter that keeps the response.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }

func (w *bufferWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func (w *bufferWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
