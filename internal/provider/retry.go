package provider

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/toppcloud/toppcloud/internal/backoff"
)

// Defaults for RetryTransport.
const (
	DefaultRetryTries   = 5
	DefaultRetryMinWait = 500 * time.Millisecond
	DefaultRetryMaxWait = 30 * time.Second
)

// RetryTransport retries requests an API refused for a passing reason, so
// every driver backs off the same way:
//
//   - 429 Too Many Requests, for any method: the API did not act on the
//     request, so sending it again cannot create a thing twice;
//   - 500, 502, 503, 504 and network errors, only for idempotent methods
//     (GET, HEAD, OPTIONS, PUT, DELETE): a POST that may have been carried
//     out is never sent again.
//
// It waits as long as Retry-After says (seconds or an HTTP date), else
// backs off exponentially from MinWait, and gives up after Tries attempts
// or when a wait would pass the request's deadline, returning the last
// response untouched so the SDK reports the API's own error (a final 429
// maps to ErrRateLimited through KindForStatus).
//
// Drivers put it between their SDK and Env.HTTPClient's transport and turn
// the SDK's own retries off: several SDKs retry only through an HTTP client
// of their own making (which would bypass --debug-api logging), retry POSTs
// after a 5xx, or ignore Retry-After. Each attempt goes through Base, so
// each one is logged.
type RetryTransport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Tries is the most attempts per request, first included.
	Tries int
	// MinWait is the first backoff when the API gives no Retry-After; it
	// doubles with each attempt.
	MinWait time.Duration
	// MaxWait caps any one wait. A Retry-After longer than MaxWait ends the
	// retries instead: waiting less than the API asked would only be
	// refused again.
	MaxWait time.Duration
}

// NewRetryTransport returns a RetryTransport over base with the defaults.
func NewRetryTransport(base http.RoundTripper) *RetryTransport {
	return &RetryTransport{Base: base, Tries: DefaultRetryTries, MinWait: DefaultRetryMinWait, MaxWait: DefaultRetryMaxWait}
}

// RoundTrip implements http.RoundTripper.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tries := t.Tries
	if tries <= 0 {
		tries = DefaultRetryTries
	}
	// A body we cannot produce again rules out a second attempt.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	ctx := req.Context()
	next := t.MinWait
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := base.RoundTrip(r)
		if attempt >= tries || !replayable || !retryable(req.Method, resp, err) || ctx.Err() != nil {
			return resp, err
		}
		wait := next
		if resp != nil {
			if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				if t.maxWait() < ra {
					return resp, err
				}
				wait = ra
			}
		}
		wait = min(wait, t.maxWait())
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused, then drop it.
			_, _ = io.CopyN(io.Discard, resp.Body, 4096)
			_ = resp.Body.Close()
		}
		if wait <= 0 {
			continue
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, err
		}
		next *= 2
	}
}

func (t *RetryTransport) maxWait() time.Duration {
	if t.MaxWait <= 0 {
		return DefaultRetryMaxWait
	}
	return t.MaxWait
}

func retryable(method string, resp *http.Response, err error) bool {
	idempotent := false
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		idempotent = true
	}
	if err != nil {
		return idempotent
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return idempotent
	}
	return false
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// WithRetries returns a copy of hc (nil: http.DefaultClient) whose
// transport is a RetryTransport over hc's transport, keeping its timeout,
// redirect policy and cookie jar. The copy still sends every attempt
// through hc's transport, so --debug-api logging sees each one.
func WithRetries(hc *http.Client) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	c.Transport = NewRetryTransport(hc.Transport)
	return &c
}
