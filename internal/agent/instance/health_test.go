package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// unixServer serves h on a unix socket in a fresh directory.
func unixServer(t *testing.T, h http.Handler) (string, *httptest.Server) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock, srv
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "tc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func fastCheck(probe Probe) HealthCheck {
	return HealthCheck{
		Instance: "demo.1", Probe: probe,
		Timeout: 500 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Output: func(context.Context) ([]string, error) { return []string{"line 1", "the app's error"}, nil },
	}
}

func TestHealthCheck_Wait(t *testing.T) {
	answer := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
	}
	for _, tc := range []struct {
		name       string
		setup      func(t *testing.T) (sock string, exited func(context.Context) error)
		wantReason string // "" for success
	}{
		{
			name: "answers 200",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				sock, _ := unixServer(t, answer(200))
				return sock, nil
			},
		},
		{
			name: "an error page is an answer",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				sock, _ := unixServer(t, answer(500))
				return sock, nil
			},
		},
		{
			name: "starts listening late",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				dir := shortDir(t)
				sock := filepath.Join(dir, "late.sock")
				var calls atomic.Int32
				return sock, func(context.Context) error {
					// The process "binds" on the fifth look.
					if calls.Add(1) == 5 {
						ln, err := net.Listen("unix", sock)
						if err != nil {
							return err
						}
						srv := httptest.NewUnstartedServer(answer(204))
						srv.Listener = ln
						srv.Start()
						t.Cleanup(srv.Close)
					}
					return nil
				}
			},
		},
		{
			name: "process exits",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				var calls atomic.Int32
				return filepath.Join(shortDir(t), "none.sock"), func(context.Context) error {
					if calls.Add(1) >= 3 {
						return fmt.Errorf("%w: exit status 4", ErrExited)
					}
					return nil
				}
			},
			wantReason: "exited",
		},
		{
			name: "nothing listens",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				return filepath.Join(shortDir(t), "none.sock"), func(context.Context) error { return nil }
			},
			wantReason: "timeout",
		},
		{
			name: "accepts but never answers",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				sock, _ := unixServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					<-r.Context().Done()
				}))
				return sock, nil
			},
			wantReason: "timeout",
		},
		{
			name: "speaks something else",
			setup: func(t *testing.T) (string, func(context.Context) error) {
				sock := filepath.Join(shortDir(t), "garbage.sock")
				ln, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Write([]byte("SSH-2.0-OpenSSH\r\n"))
						c.Close()
					}
				}()
				return sock, nil
			},
			wantReason: "timeout",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, exited := tc.setup(t)
			h := fastCheck(HTTPProbe(Dialer("unix/"+sock), "example.com", "/"))
			h.Exited = exited
			err := h.Wait(context.Background())
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				return
			}
			var he *HealthError
			if !errors.As(err, &he) || !errors.Is(err, ErrNotHealthy) {
				t.Fatalf("Wait: %v, want a HealthError", err)
			}
			if he.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q (%v)", he.Reason, tc.wantReason, err)
			}
			if strings.Join(he.Tail, "|") != "line 1|the app's error" {
				t.Errorf("tail %q", he.Tail)
			}
			if tc.wantReason == "exited" && !errors.Is(err, ErrExited) {
				t.Errorf("%v does not wrap ErrExited", err)
			}
		})
	}
}

func TestHealthCheck_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h := fastCheck(HTTPProbe(Dialer("unix/"+filepath.Join(shortDir(t), "x.sock")), "example.com", "/"))
	err := h.Wait(ctx)
	var he *HealthError
	if !errors.Is(err, context.Canceled) || errors.As(err, &he) {
		t.Errorf("Wait with a cancelled context: %v", err)
	}
}

func TestHealthCheck_SendsHost(t *testing.T) {
	got := make(chan string, 10)
	sock, _ := unixServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Host + " " + r.URL.Path
	}))
	if err := fastCheck(HTTPProbe(Dialer("unix/"+sock), "blog.example.com", "/")).Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "blog.example.com /" {
		t.Errorf("request %q", g)
	}
}

func TestInstance_Upstream(t *testing.T) {
	l := layout.Default()
	for _, tc := range []struct {
		kind appconfig.Kind
		want string
	}{
		{appconfig.KindPython, "unix//run/toppcloud/blog.1/app.sock"},
		{appconfig.KindPaste, "unix//run/toppcloud/blog.1/app.sock"},
		{appconfig.KindPHP, "unix//run/toppcloud/blog.1/app.sock"},
		// Through its proxy, which checks the port's listener is the app's.
		{appconfig.KindCommand, "unix//run/toppcloud/blog.1/app.sock"},
		{appconfig.KindStatic, ""},
	} {
		i := &Instance{App: "blog", Name: "blog.1", Kind: tc.kind, Port: 20001, Layout: l}
		if got := i.Upstream(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.kind, got, tc.want)
		}
		if (i.Probe() == nil) != (tc.kind == appconfig.KindStatic) {
			t.Errorf("%v: probe %v", tc.kind, i.Probe() != nil)
		}
	}
}
