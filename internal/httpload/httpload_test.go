package httpload

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hello is the Check of the integration tests: a 200 naming its node.
func hello(status int, body []byte) (string, bool) {
	node, ok := strings.CutPrefix(string(body), "Hello from ")
	return node, ok && status == http.StatusOK
}

func TestLoad_CountsAnswersByLabel(t *testing.T) {
	var badPost atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "site.test" || r.URL.Path != "/x" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			if string(b) != "field=value" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				badPost.Add(1)
			}
		}
		io.WriteString(w, "Hello from web1")
	}))
	defer srv.Close()
	l := Start(Config{
		Addr: srv.Listener.Addr().String(), Host: "site.test", Path: "/x", Clients: Mixed(),
		Body: "field=value", ContentType: "application/x-www-form-urlencoded",
		Rate: 50, Minimum: 300 * time.Millisecond, Check: hello,
	})
	if !l.Wait(8, 10*time.Second) {
		t.Error("Wait(8) timed out")
	}
	r := l.Stop()
	if r.OK < 8 || len(r.Failures) != 0 || r.Labels["web1"] != r.OK || r.Total() != r.OK {
		t.Errorf("result %+v, want only successes, all labelled web1", r)
	}
	if r.Elapsed < 300*time.Millisecond {
		t.Errorf("Elapsed %v, shorter than Minimum", r.Elapsed)
	}
	if n := badPost.Load(); n > 0 {
		t.Errorf("%d POSTs came without the body or its content type", n)
	}
}

func TestLoad_RecordsFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name   string
		status int
		body   string
		addr   string // the server's if empty
		want   string
	}{
		{"bad gateway", http.StatusBadGateway, "Hello from web1", "", "502 Bad Gateway"},
		{"body refused", http.StatusOK, "Goodbye", "", `200 OK "Goodbye"`},
		{"connection refused", 0, "", refused, "GET keep-alive=true: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			addr := tt.addr
			if addr == "" {
				addr = srv.Listener.Addr().String()
			}
			l := Start(Config{Addr: addr, Clients: []Client{{KeepAlive: true}}, Pause: time.Millisecond, Check: hello})
			if !l.Wait(3, 10*time.Second) {
				t.Error("Wait(3) timed out")
			}
			r := l.Stop()
			if r.OK != 0 || len(r.Failures) < 3 {
				t.Fatalf("result %+v, want 3 failures at least and no success", r)
			}
			if !strings.Contains(r.Failures[0], tt.want) {
				t.Errorf("failure %q lacks %q", r.Failures[0], tt.want)
			}
		})
	}
}
