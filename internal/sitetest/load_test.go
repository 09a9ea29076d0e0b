package sitetest

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// load sends requests to the balancer continuously: GET and POST, on
// kept-alive and on new connections, each client paced at loadRate a
// second. It counts the app nodes that answered; stop fails the test on
// any failed request.
type load struct {
	t        *testing.T
	done     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok       int
	failures []string
	nodes    map[string]int
	start    time.Time
}

const (
	loadClients = 4
	loadRate    = 25 // per client: 100 requests a second in all
	// loadMinimum is how long a load runs at least, so that its requests
	// come from before, during and after a quick switch.
	loadMinimum = 5 * time.Second
)

// helloRE finds the answering node in the app's answer.
var helloRE = regexp.MustCompile(`^Hello from (\S+), version`)

func startLoad(t *testing.T, addr, host string) *load {
	l := &load{t: t, done: make(chan struct{}), start: time.Now(), nodes: map[string]int{}}
	for i := range loadClients {
		keepAlive, post := i%2 == 0, i >= 2
		l.wg.Go(func() {
			tr := &http.Transport{DisableKeepAlives: !keepAlive, Proxy: nil, MaxIdleConnsPerHost: 1}
			client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
			defer tr.CloseIdleConnections()
			tick := time.NewTicker(time.Second / loadRate)
			defer tick.Stop()
			for {
				select {
				case <-l.done:
					return
				case <-tick.C:
				}
				l.one(client, addr, host, post, keepAlive)
			}
		})
	}
	return l
}

func (l *load) one(client *http.Client, addr, host string, post, keepAlive bool) {
	method, body := http.MethodGet, io.Reader(nil)
	if post {
		method, body = http.MethodPost, strings.NewReader("field=value")
	}
	req, _ := http.NewRequest(method, "http://"+addr+"/", body)
	req.Host = host
	if post {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	var b []byte
	var rerr error
	if err == nil {
		b, rerr = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	at := time.Since(l.start).Seconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	m := helloRE.FindSubmatch(b)
	switch {
	case err != nil:
		l.failures = append(l.failures, fmt.Sprintf("%.3fs %s keep-alive=%v: %v", at, method, keepAlive, err))
	case rerr != nil || resp.StatusCode != http.StatusOK || m == nil:
		l.failures = append(l.failures, fmt.Sprintf("%.3fs %s keep-alive=%v: %s %.80q (body: %v)", at, method, keepAlive, resp.Status, b, rerr))
	default:
		l.ok++
		l.nodes[string(m[1])]++
	}
}

// stop ends the load, fails the test on any failed request, and returns
// how many requests each app node answered.
func (l *load) stop() map[string]int {
	l.t.Helper()
	if d := loadMinimum - time.Since(l.start); d > 0 {
		time.Sleep(d)
	}
	close(l.done)
	l.wg.Wait()
	elapsed := time.Since(l.start)
	total := l.ok + len(l.failures)
	l.t.Logf("load: %d requests in %.1fs (%.0f/s), %d failed, answered by %v",
		total, elapsed.Seconds(), float64(total)/elapsed.Seconds(), len(l.failures), l.nodes)
	if len(l.failures) > 0 {
		l.t.Errorf("%d requests failed, e.g. %q", len(l.failures), l.failures[:min(5, len(l.failures))])
	}
	if total < 300 {
		l.t.Errorf("only %d requests were sent: the load did not cover the switches", total)
	}
	return l.nodes
}
