package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeCaddy imitates the admin API of Caddy 2.6.2 on a unix socket: it
// refuses any request whose Host header is not empty, takes /load and
// serves the loaded config at /config/ re-encoded (as Caddy does).
type fakeCaddy struct {
	mu     sync.Mutex
	config []byte
	loads  int
	hosts  []string
}

func (f *fakeCaddy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts = append(f.hosts, r.Host)
	if r.Host != "" {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":"host not allowed: `+r.Host+`"}`)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/load":
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"bad"`)) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"loading config: decoding: invalid character 'b'"}`)
			return
		}
		f.loads++
		f.config = body
	case r.Method == http.MethodGet && r.URL.Path == "/config/":
		if f.config == nil {
			_, _ = io.WriteString(w, "null\n")
			return
		}
		// Caddy answers with its own encoding: compact, keys sorted.
		_, _ = w.Write(compactSorted(f.config))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"not found"}`)
	}
}

func (f *fakeCaddy) current() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.config
}

func compactSorted(b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func startFakeCaddy(t *testing.T) (*fakeCaddy, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCaddy{}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f, sock
}

func TestAdmin_LoadAndCurrent(t *testing.T) {
	f, sock := startFakeCaddy(t)
	a := NewAdmin(sock)
	ctx := context.Background()

	cfg := []byte("{\n  \"b\": 1,\n  \"admin\": {\"listen\": \"unix/" + sock + "\"}\n}\n")
	if err := a.Load(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cur, err := a.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(cur) != `{"admin":{"listen":"unix/`+sock+`"},"b":1}` || !sameJSON(cur, cfg) {
		t.Fatalf("Current = %s", cur)
	}

	for _, c := range []string{`{"apps":{}}`, `{"admin":{"listen":"localhost:2019"}}`, `nope`} {
		if err := a.Load(ctx, []byte(c)); err == nil || f.loads != 1 {
			t.Fatalf("Load(%s) = %v, %d loads; want refused before posting", c, err, f.loads)
		}
	}
	err = a.Load(ctx, []byte(`{"admin":{"listen":"unix/`+sock+`"},"bad":true}`))
	var ae *AdminError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Message != "loading config: decoding: invalid character 'b'" {
		t.Fatalf("refused load: err = %#v", err)
	}
	if want := "caddy load: HTTP 400: loading config: decoding: invalid character 'b'"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	for _, h := range f.hosts {
		if h != "" {
			t.Fatalf("sent Host %q; Caddy 2.6.2 wants it empty on a unix socket", h)
		}
	}

	if _, err := NewAdmin(filepath.Join(t.TempDir(), "none.sock")).Current(ctx); !errors.Is(err, ErrAdminUnreachable) {
		t.Fatalf("no socket: err = %v", err)
	}
}

func TestAdmin_ContextCancelsAHungAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, never answer
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := NewAdmin(sock).Current(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestApplier_SkipsUnchangedConfigs(t *testing.T) {
	front, frontSock := startFakeCaddy(t)
	router, routerSock := startFakeCaddy(t)
	dir := t.TempDir()
	frontPath, routerPath := filepath.Join(dir, "front.json"), filepath.Join(dir, "router.json")
	ctx := context.Background()
	cfg := func(sock string, n int) []byte {
		return []byte(fmt.Sprintf("{\"admin\": {\"listen\": \"unix/%s\"}, \"apps\": {\"http\": {\"n\": %d}}}\n", sock, n))
	}
	newApplier := func() *Applier {
		return &Applier{
			Front:  ConfigTarget{Admin: NewAdmin(frontSock), Path: frontPath},
			Router: ConfigTarget{Admin: NewAdmin(routerSock), Path: routerPath},
		}
	}
	a := newApplier()
	steps := []struct {
		applier            *Applier
		front, router      int // config numbers
		want               Applied
		frontLoads, rLoads int
	}{
		{a, 1, 1, Applied{Front: true, Router: true}, 1, 1},
		{a, 1, 1, Applied{}, 1, 1}, // same bytes as last time
		{a, 1, 2, Applied{Router: true}, 1, 2},
		// A new agent process: no memory, but Caddy already runs these.
		{newApplier(), 1, 2, Applied{}, 1, 2},
		{newApplier(), 2, 1, Applied{Front: true, Router: true}, 2, 3},
	}
	for i, s := range steps {
		r := &Rendered{Front: cfg(frontSock, s.front), Router: cfg(routerSock, s.router)}
		did, err := s.applier.Apply(ctx, r)
		if err != nil || did != s.want || front.loads != s.frontLoads || router.loads != s.rLoads {
			t.Fatalf("step %d: applied %+v, err = %v, loads = %d/%d; want %+v, nil, %d/%d",
				i, did, err, front.loads, router.loads, s.want, s.frontLoads, s.rLoads)
		}
		for path, want := range map[string][]byte{frontPath: r.Front, routerPath: r.Router} {
			if onDisk, err := os.ReadFile(path); err != nil || string(onDisk) != string(want) {
				t.Fatalf("step %d: %s holds %q, %v", i, path, onDisk, err)
			}
		}
	}

	// A front config Caddy refuses: the router gets its previous config
	// back, and neither file changes.
	a = newApplier()
	good := &Rendered{Front: cfg(frontSock, 5), Router: cfg(routerSock, 5)}
	if _, err := a.Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := &Rendered{Front: []byte(`{"admin": {"listen": "unix/` + frontSock + `"}, "bad": true}`), Router: cfg(routerSock, 6)}
	if _, err := a.Apply(ctx, bad); err == nil {
		t.Fatal("refused config applied")
	}
	if got := router.current(); string(got) != string(good.Router) {
		t.Fatalf("router runs %q after the front refused its config; want the previous one back", got)
	}
	for path, want := range map[string][]byte{frontPath: good.Front, routerPath: good.Router} {
		if onDisk, _ := os.ReadFile(path); string(onDisk) != string(want) {
			t.Fatalf("%s changed by a refused config: %q", path, onDisk)
		}
	}
}
