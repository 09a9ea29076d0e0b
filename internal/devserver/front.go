package devserver

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appruntime"
)

// ServeHTTP is the front server: what a node's router does for one
// location mounted at /, then the application.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	where := s.serve(rec, r)
	s.logf("%s %s %d %s (%s)", r.Method, r.URL.RequestURI(), rec.code(), where, time.Since(start).Round(time.Millisecond))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	// Headers only the front server may set, as Caddy deletes them on a
	// node; Script-Name would let a client choose SCRIPT_NAME.
	for k := range r.Header {
		switch strings.ToUpper(strings.ReplaceAll(k, "-", "_")) {
		case "X_TOPPCLOUD_INTERNAL", "X_TOPPCLOUD_MATCH_PATH", "SCRIPT_NAME", "X_FORWARDED_PREFIX":
			delete(r.Header, k)
		}
		if strings.HasPrefix(http.CanonicalHeaderKey(k), phpHeaderPrefix) {
			delete(r.Header, k)
		}
	}
	inst := s.current()
	if inst == nil {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return "-"
	}
	if inst.static.serve(w, r) {
		return "static"
	}
	if inst.writable != "" {
		if (fileDir{dir: hostDir(inst.writable, r)}).serve(w, r) {
			return "writable root (host)"
		}
		if (fileDir{dir: inst.writable}).serve(w, r) {
			return "writable root"
		}
	}
	if err := inst.wait(r.Context()); err != nil {
		if r.Context().Err() != nil {
			return "gone"
		}
		writeError(w, http.StatusInternalServerError, err)
		return "error page"
	}
	if inst.backend == nil {
		http.NotFound(w, r)
		return "no file"
	}
	r.Header.Set(appruntime.MatchPathHeader, "/")
	inst.backend.ServeHTTP(w, r)
	return "app"
}

// writeError shows why the app cannot answer: the traceback of a load
// error, the output of a process that exited, an app.ini error.
func writeError(w http.ResponseWriter, status int, err error) {
	ae := asAppError(err)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em;overflow:auto}</style>
</head><body>
<h1>%s</h1>
<pre>%s</pre>
<p>toppcloud serve reloads the application when you save a file.</p>
</body></html>
`, html.EscapeString(ae.Title), html.EscapeString(ae.Title), html.EscapeString(ae.Output))
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the real writer (flushes of
// streamed responses).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
