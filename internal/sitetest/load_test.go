package sitetest

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/httpload"
)

// load sends requests to the balancer continuously: GET and POST, on
// kept-alive and on new connections, each client paced at loadRate a
// second. It counts the app nodes that answered; stop fails the test on
// any failed request.
type load struct {
	t *testing.T
	l *httpload.Load
}

const (
	loadRate = 25 // per client: 100 requests a second in all
	// loadMinimum is how long a load runs at least, so that its requests
	// come from before, during and after a quick switch.
	loadMinimum = 5 * time.Second
)

// helloRE finds the answering node in the app's answer.
var helloRE = regexp.MustCompile(`^Hello from (\S+), version`)

func startLoad(t *testing.T, addr, host string) *load {
	return &load{t: t, l: httpload.Start(httpload.Config{
		Addr: addr, Host: host, Clients: httpload.Mixed(),
		Body: "field=value", ContentType: "application/x-www-form-urlencoded",
		Rate: loadRate, Minimum: loadMinimum,
		Check: func(status int, body []byte) (string, bool) {
			m := helloRE.FindSubmatch(body)
			if status != http.StatusOK || m == nil {
				return "", false
			}
			return string(m[1]), true
		},
	})}
}

// stop ends the load, fails the test on any failed request, and returns
// how many requests each app node answered.
func (l *load) stop() map[string]int {
	l.t.Helper()
	r := l.l.Stop()
	l.t.Logf("load: %v, answered by %v", r, r.Labels)
	if len(r.Failures) > 0 {
		l.t.Errorf("%d requests failed, e.g. %q", len(r.Failures), r.Failures[:min(5, len(r.Failures))])
	}
	if r.Total() < 300 {
		l.t.Errorf("only %d requests were sent: the load did not cover the switches", r.Total())
	}
	return r.Labels
}
