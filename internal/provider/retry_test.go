package provider

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// statusServer answers the given statuses in turn, then 200.
func statusServer(t *testing.T, retryAfter string, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		body, _ := io.ReadAll(r.Body)
		if n <= len(statuses) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(statuses[n-1])
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestRetryTransport_Policy(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		statuses   []int
		wantStatus int
		wantCalls  int32
	}{
		{"429 then ok", "GET", []int{429}, 200, 2},
		{"429 on POST is retried", "POST", []int{429, 429}, 200, 3},
		{"500 on GET is retried", "GET", []int{500, 503}, 200, 3},
		{"500 on DELETE is retried", "DELETE", []int{502}, 200, 2},
		{"500 on POST is not retried", "POST", []int{500}, 500, 1},
		{"404 is final", "GET", []int{404}, 404, 1},
		{"gives up after Tries", "GET", []int{429, 429, 429, 429}, 429, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := statusServer(t, "0", tt.statuses...)
			c := &http.Client{Transport: &RetryTransport{Tries: 3, MinWait: time.Millisecond}}
			req, _ := http.NewRequest(tt.method, srv.URL, strings.NewReader("payload"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || calls.Load() != tt.wantCalls {
				t.Fatalf("status %d after %d calls, want %d after %d", resp.StatusCode, calls.Load(), tt.wantStatus, tt.wantCalls)
			}
			if resp.StatusCode == 200 && string(body) != "payload" {
				t.Errorf("retried request lost its body: got %q", body)
			}
		})
	}
}

func TestRetryTransport_RetryAfterBeyondMaxWaitStops(t *testing.T) {
	srv, calls := statusServer(t, "3600", 429)
	c := &http.Client{Transport: &RetryTransport{Tries: 5, MinWait: time.Millisecond, MaxWait: time.Second}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || calls.Load() != 1 {
		t.Fatalf("status %d after %d calls; want the 429 returned at once", resp.StatusCode, calls.Load())
	}
}

func TestRetryTransport_ContextEndsWait(t *testing.T) {
	srv, calls := statusServer(t, "", 503, 503, 503)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := &http.Client{Transport: &RetryTransport{Tries: 5, MinWait: 10 * time.Second, MaxWait: time.Minute}}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want the 503 back or a context error", resp.StatusCode)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls; a wait past the deadline must not be started", calls.Load())
	}
}

func TestRetryAfter_Parse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
