package instance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Health check defaults.
const (
	// DefaultProbeTimeout bounds one request.
	DefaultProbeTimeout = 5 * time.Second
	// Polling starts fast (most apps are up in well under a second) and
	// backs off.
	DefaultMinBackoff = 25 * time.Millisecond
	DefaultMaxBackoff = time.Second
	// DefaultTailLines is how much of the process's output a failure shows.
	DefaultTailLines = 80
)

// ErrNotHealthy is wrapped by every HealthError.
var ErrNotHealthy = errors.New("instance did not become healthy")

// HealthError says why an instance never answered, with the end of its
// output, which usually holds the application's own error.
type HealthError struct {
	Instance string
	// Reason is "exited" or "timeout".
	Reason string
	// Err is the exit (from Exited) or the last probe's error.
	Err error
	// Tail is the last lines of the process's output.
	Tail []string
}

func (e *HealthError) Error() string {
	what := "did not answer in time"
	if e.Reason == "exited" {
		what = "exited before answering"
	}
	msg := fmt.Sprintf("instance %s %s", e.Instance, what)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap gives ErrNotHealthy and the cause.
func (e *HealthError) Unwrap() []error { return []error{ErrNotHealthy, e.Err} }

// Probe makes one attempt to reach the instance; nil means it answered
// (any response, even an error page: the process is up and serving).
type Probe func(ctx context.Context) error

// HealthCheck waits until an instance answers.
type HealthCheck struct {
	Instance string
	Probe    Probe
	// Exited returns a non-nil error once the process has exited (with
	// how: "exit status 4"), nil while it runs. Optional.
	Exited func(ctx context.Context) error
	// Output returns the last lines of the process's output, for the
	// error. Optional.
	Output func(ctx context.Context) ([]string, error)
	// Zero values mean the Default... constants.
	Timeout      time.Duration
	ProbeTimeout time.Duration
	MinBackoff   time.Duration
	MaxBackoff   time.Duration
}

// Wait polls until the probe succeeds. It fails fast when Exited reports
// the process gone, and after Timeout otherwise; both give a *HealthError
// carrying the output's tail. A cancelled ctx returns ctx's error.
func (h HealthCheck) Wait(ctx context.Context) error {
	timeout := orDefault(h.Timeout, protocol.DefaultHealthTimeout)
	probeTimeout := orDefault(h.ProbeTimeout, DefaultProbeTimeout)
	backoff := orDefault(h.MinBackoff, DefaultMinBackoff)
	maxBackoff := orDefault(h.MaxBackoff, DefaultMaxBackoff)

	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if h.Exited != nil {
			if err := h.Exited(wctx); err != nil && wctx.Err() == nil {
				return h.fail(ctx, "exited", err)
			}
		}
		pctx, pcancel := context.WithTimeout(wctx, probeTimeout)
		err := h.Probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		last = err
		t := time.NewTimer(backoff)
		select {
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return fmt.Errorf("wait for instance %s: %w", h.Instance, ctx.Err())
			}
			// A process that died during the last wait is the better
			// explanation than "timeout".
			if h.Exited != nil {
				if err := h.Exited(context.WithoutCancel(ctx)); err != nil {
					return h.fail(ctx, "exited", err)
				}
			}
			return h.fail(ctx, "timeout", fmt.Errorf("no answer within %s (last try: %w)", timeout, last))
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func (h HealthCheck) fail(ctx context.Context, reason string, err error) error {
	e := &HealthError{Instance: h.Instance, Reason: reason, Err: err}
	if h.Output != nil {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if tail, oerr := h.Output(octx); oerr == nil {
			e.Tail = tail
		} else {
			e.Tail = []string{"(could not read the output: " + oerr.Error() + ")"}
		}
	}
	return e
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// DialFunc opens a connection to an instance.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Dialer returns how to reach address, "unix/PATH" (or "unix//abs") as
// the router writes upstreams, or HOST:PORT.
func Dialer(upstream string) DialFunc {
	network, addr := "tcp", upstream
	if p, ok := strings.CutPrefix(upstream, "unix/"); ok {
		network, addr = "unix", p
	}
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// HTTPProbe sends GET path with the given Host over dial and accepts any
// HTTP response.
func HTTPProbe(dial DialFunc, host, path string) Probe {
	return func(ctx context.Context) error {
		conn, err := dial(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "toppcloud-health")
		req.Close = true
		if err := req.Write(conn); err != nil {
			return fmt.Errorf("send request: %w", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		resp.Body.Close()
		return nil
	}
}

// FastCGIProbe asks php-fpm for its ping path, which it answers itself:
// the pool is up and accepting requests.
func FastCGIProbe(dial DialFunc, pingPath string) Probe {
	return func(ctx context.Context) error {
		conn, err := dial(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		params := map[string]string{
			"REQUEST_METHOD":    "GET",
			"SCRIPT_NAME":       pingPath,
			"SCRIPT_FILENAME":   pingPath,
			"REQUEST_URI":       pingPath,
			"SERVER_PROTOCOL":   "HTTP/1.1",
			"GATEWAY_INTERFACE": "CGI/1.1",
		}
		_, _, _, _, err = fcgiRoundTrip(conn, params, nil)
		return err
	}
}

// Probe returns the instance's health probe: HTTP for python, paste and
// command apps, FastCGI's ping for php; nil for a static app.
func (i *Instance) Probe() Probe {
	dial := Dialer(i.Upstream())
	switch i.Kind {
	case appconfig.KindStatic:
		return nil
	case appconfig.KindPHP:
		return FastCGIProbe(dial, FPMPingPath)
	}
	host := i.Env[EnvCanonicalHostname]
	if host == "" {
		host = "localhost"
	}
	return HTTPProbe(dial, host, "/")
}

// Health returns a HealthCheck for the instance with default timeouts;
// exited and output are usually Exited and Tail for its unit.
func (i *Instance) Health(exited func(context.Context) error, output func(context.Context) ([]string, error)) HealthCheck {
	return HealthCheck{Instance: i.Name, Probe: i.Probe(), Exited: exited, Output: output}
}
