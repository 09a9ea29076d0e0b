package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	f, sock := startFakeCaddy(t)
	path := filepath.Join(t.TempDir(), "caddy.json")
	ctx := context.Background()
	admin := `"admin": {"listen": "unix/` + sock + `"}, `
	cfg1 := []byte("{" + admin + "\"apps\": {\"http\": {\"n\": 1}}}\n")
	cfg2 := []byte("{" + admin + "\"apps\": {\"http\": {\"n\": 2}}}\n")

	a := &Applier{Admin: NewAdmin(sock), ConfigPath: path}
	steps := []struct {
		applier *Applier
		cfg     []byte
		reload  bool
		loads   int
	}{
		{a, cfg1, true, 1},
		{a, cfg1, false, 1}, // same bytes as last time
		{a, cfg2, true, 2},
		// A new agent process: no memory, but Caddy already runs cfg2.
		{&Applier{Admin: NewAdmin(sock), ConfigPath: path}, cfg2, false, 2},
		{&Applier{Admin: NewAdmin(sock), ConfigPath: path}, cfg1, true, 3},
	}
	for i, s := range steps {
		reloaded, err := s.applier.Apply(ctx, s.cfg)
		if err != nil || reloaded != s.reload || f.loads != s.loads {
			t.Fatalf("step %d: reloaded = %v, err = %v, loads = %d; want %v, nil, %d", i, reloaded, err, f.loads, s.reload, s.loads)
		}
		onDisk, err := os.ReadFile(path)
		if err != nil || string(onDisk) != string(s.cfg) {
			t.Fatalf("step %d: file holds %q, %v", i, onDisk, err)
		}
	}

	// A refused config leaves the file alone.
	if _, err := a.Apply(ctx, []byte("{"+admin+`"bad": true}`)); err == nil {
		t.Fatal("refused config applied")
	}
	if onDisk, _ := os.ReadFile(path); string(onDisk) != string(cfg1) {
		t.Fatalf("file changed by a refused config: %q", onDisk)
	}
}
