// Package httpload sends paced HTTP requests at a server and records every
// one that fails; integration tests use it to show that a switch drops
// nothing.
package httpload

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Client is one sender: it sends its requests one after another, on one
// kept-alive connection or on a new connection each.
type Client struct {
	// Method is the request method; GET if empty.
	Method string
	// KeepAlive reuses the connection between requests.
	KeepAlive bool
}

// Mixed returns four clients, one for each of GET and POST on kept-alive
// and on new connections: the ways a switch can drop a request differ
// between them.
func Mixed() []Client {
	return []Client{
		{Method: http.MethodGet, KeepAlive: true},
		{Method: http.MethodGet},
		{Method: http.MethodPost, KeepAlive: true},
		{Method: http.MethodPost},
	}
}

// Config is what a load sends, where, how fast and what answer counts.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Host is the Host header; Addr if empty.
	Host string
	// Path is the request target; "/" if empty.
	Path string
	// Clients send concurrently, each in its own goroutine.
	Clients []Client
	// Body is sent with every POST, with ContentType if that is set.
	Body        string
	ContentType string
	// Rate paces each client at that many requests a second (fewer when
	// answers are slower). If zero, a client waits Pause after each
	// answer instead, and with no Pause sends as fast as it is answered.
	Rate  int
	Pause time.Duration
	// Timeout bounds one request; 30 seconds if zero.
	Timeout time.Duration
	// Minimum is how long the load runs at least: Stop waits for it, so
	// that a quick switch still has requests before, during and after it.
	Minimum time.Duration
	// Check decides whether an answer counts as a success, and may name
	// what answered (Result.Labels counts the names). If nil, status 200
	// succeeds.
	Check func(status int, body []byte) (label string, ok bool)
}

// Result is what a load saw.
type Result struct {
	// OK counts the successful requests.
	OK int
	// Failures describes each failed request: when (since the start), the
	// method, keep-alive, and the error or the answer.
	Failures []string
	// Labels counts the successes by the label Check gave them.
	Labels map[string]int
	// Elapsed is how long the load ran.
	Elapsed time.Duration
}

// Total is the number of requests answered or failed.
func (r Result) Total() int { return r.OK + len(r.Failures) }

// String summarizes r for a test log.
func (r Result) String() string {
	s := r.Elapsed.Seconds()
	return fmt.Sprintf("%d requests in %.1fs (%.0f/s), %d failed", r.Total(), s, float64(r.Total())/s, len(r.Failures))
}

// Load is a running load; Stop ends it.
type Load struct {
	cfg   Config
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup

	mu  sync.Mutex
	res Result
}

// Start starts cfg's clients and returns at once.
func Start(cfg Config) *Load {
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Check == nil {
		cfg.Check = func(status int, _ []byte) (string, bool) { return "", status == http.StatusOK }
	}
	l := &Load{cfg: cfg, start: time.Now(), done: make(chan struct{}), res: Result{Labels: map[string]int{}}}
	for _, c := range cfg.Clients {
		if c.Method == "" {
			c.Method = http.MethodGet
		}
		l.wg.Go(func() { l.run(c) })
	}
	return l
}

func (l *Load) run(c Client) {
	tr := &http.Transport{DisableKeepAlives: !c.KeepAlive, Proxy: nil, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: l.cfg.Timeout, Transport: tr}
	var tick <-chan time.Time
	if l.cfg.Rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(l.cfg.Rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		wait := tick
		if wait == nil {
			wait = time.After(l.cfg.Pause)
		}
		select {
		case <-l.done:
			return
		case <-wait:
		}
		l.one(client, c)
	}
}

func (l *Load) one(client *http.Client, c Client) {
	var body io.Reader
	if c.Method == http.MethodPost {
		body = strings.NewReader(l.cfg.Body)
	}
	req, err := http.NewRequest(c.Method, "http://"+l.cfg.Addr+l.cfg.Path, body)
	if err != nil {
		l.fail(c, err.Error())
		return
	}
	req.Host = l.cfg.Host
	if body != nil && l.cfg.ContentType != "" {
		req.Header.Set("Content-Type", l.cfg.ContentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		l.fail(c, err.Error())
		return
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	label, ok := l.cfg.Check(resp.StatusCode, b)
	if rerr != nil || !ok {
		// How the answer was framed tells which hop cut it short: a
		// chunked answer that a proxy stops copying ends cleanly.
		l.fail(c, fmt.Sprintf("%s %.80q (body: %v; length %d, transfer-encoding %v, server %q)",
			resp.Status, b, rerr, resp.ContentLength, resp.TransferEncoding, resp.Header.Get("Server")))
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.OK++
	if label != "" {
		l.res.Labels[label]++
	}
}

func (l *Load) fail(c Client, what string) {
	at := l.Elapsed().Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Failures = append(l.res.Failures, fmt.Sprintf("%.3fs %s keep-alive=%v: %s", at, c.Method, c.KeepAlive, what))
}

// Elapsed is the time since Start, the clock Result.Failures are stamped
// with: a caller logs its own steps with it to line them up.
func (l *Load) Elapsed() time.Duration { return time.Since(l.start) }

// Wait waits until n more requests have been answered or have failed,
// for timeout at most, and reports whether they were.
func (l *Load) Wait(n int, timeout time.Duration) bool {
	target := l.total() + n
	for deadline := time.Now().Add(timeout); l.total() < target; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func (l *Load) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res.Total()
}

// Stop waits out Config.Minimum, ends the load once the requests in
// flight are done, and returns what it saw.
func (l *Load) Stop() Result {
	if d := l.cfg.Minimum - l.Elapsed(); d > 0 {
		time.Sleep(d)
	}
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.Elapsed = l.Elapsed()
	return r
}
