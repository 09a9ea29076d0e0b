package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/toppcloud/toppcloud/internal/backoff"
	"github.com/toppcloud/toppcloud/internal/provider"
)

// Nova's image proxy (GET /images/detail). gophercloud v2 dropped its
// compute/v2/images package because the proxy is deprecated from
// microversion 2.36 on, but without a microversion header Nova still serves
// it, and so does Rackspace; using it keeps us to one service (compute) in
// the catalog instead of also needing Glance. The page type below plugs it
// into gophercloud's own pager, so requests, retries and re-authentication
// still go through the SDK.

// novaImage is one entry of GET /images/detail.
type novaImage struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Created string `json:"created"`
	MinDisk int    `json:"minDisk"`
	MinRAM  int    `json:"minRam"`
}

type imagePage struct {
	pagination.LinkedPageBase
}

func (p imagePage) IsEmpty() (bool, error) {
	if p.StatusCode == http.StatusNoContent {
		return true, nil
	}
	images, err := extractImages(p)
	return len(images) == 0, err
}

func (p imagePage) NextPageURL() (string, error) {
	var s struct {
		Links []gophercloud.Link `json:"images_links"`
	}
	if err := p.ExtractInto(&s); err != nil {
		return "", err
	}
	return gophercloud.ExtractNextURL(s.Links)
}

func extractImages(p pagination.Page) ([]novaImage, error) {
	var s struct {
		Images []novaImage `json:"images"`
	}
	err := p.(imagePage).ExtractInto(&s)
	return s.Images, err
}

func listImages(sc *gophercloud.ServiceClient) pagination.Pager {
	return pagination.NewPager(sc, sc.ServiceURL("images", "detail"), func(r pagination.PageResult) pagination.Page {
		return imagePage{pagination.LinkedPageBase{PageResult: r}}
	})
}

// maxPages bounds every listing so an API that keeps handing out "next"
// links (or links back to the same page) cannot keep us busy forever.
const maxPages = 1000

// errTooManyPages is returned when a listing exceeds maxPages.
var errTooManyPages = fmt.Errorf("the API returned more than %d pages; giving up", maxPages)

// errorBody reads the error formats of Nova and Keystone. Nova and Keystone
// v2.0 wrap the message in an object named for the error kind:
//
//	{"itemNotFound": {"message": "Instance x could not be found.", "code": 404}}
//	{"overLimit": {"message": "...", "code": 413, "retryAfter": "30"}}
//	{"unauthorized": {"message": "...", "code": 401}}
//
// Keystone v3 uses {"error": {"message": ..., "code": 401, "title": ...}}.
// It returns the wrapper's name ("itemNotFound", "error") and the message.
func errorBody(body []byte) (kind, message string) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil || len(outer) == 0 {
		return "", plainMessage(body)
	}
	for k, raw := range outer {
		var inner struct {
			Message string `json:"message"`
			Title   string `json:"title"`
		}
		if json.Unmarshal(raw, &inner) == nil && (inner.Message != "" || inner.Title != "") {
			if inner.Message == "" {
				inner.Message = inner.Title
			}
			return k, inner.Message
		}
	}
	return "", plainMessage(body)
}

// plainMessage keeps a short, single-line excerpt of a body that is not in
// a known error format (an HTML error page from a proxy, say).
func plainMessage(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// kindFor refines provider.KindForStatus with what Nova tells us: 403 and
// 413 are quota errors when the message says so (Nova: "Quota exceeded for
// instances"), 413 with Retry-After is Rackspace's rate limit.
func kindFor(status int, wrapper, message string, header http.Header) error {
	quota := strings.Contains(strings.ToLower(message), "quota")
	switch {
	case status == http.StatusForbidden && quota:
		return provider.ErrQuota
	case status == http.StatusRequestEntityTooLarge && !quota && header.Get("Retry-After") != "":
		return provider.ErrRateLimited
	case wrapper == "overLimit" && status != http.StatusTooManyRequests && header.Get("Retry-After") == "":
		return provider.ErrQuota
	case wrapper == "itemNotFound":
		return provider.ErrNotFound
	}
	return provider.KindForStatus(status)
}

// retryPolicy decides which failed requests gophercloud repeats. It is
// installed as the ProviderClient's RetryFunc, so gophercloud does the
// repeating and we only say whether and when.
type retryPolicy struct {
	maxTries int           // total attempts, including the first
	base     time.Duration // first backoff when the API gives no Retry-After
	maxWait  time.Duration // a longer Retry-After is not waited for
}

func (p retryPolicy) retry(ctx context.Context, method, url string, _ *gophercloud.RequestOpts, err error, failCount uint) error {
	var rc gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &rc) {
		// Transport errors (timeouts, refused connections) and unreadable
		// bodies are not repeated: the HTTP client's timeout bounds one try
		// and the caller's context bounds the whole operation.
		return err
	}
	if int(failCount) >= p.maxTries || !retryable(method, url, rc.Actual, rc.ResponseHeader) {
		return err
	}
	wait, ok := retryDelay(failCount, rc.ResponseHeader.Get("Retry-After"), p.base, time.Now())
	if !ok || wait > p.maxWait {
		return err
	}
	return backoff.Sleep(ctx, wait)
}

// retryable: a rate-limit refusal means the request was not carried out,
// so any method may be repeated; a 5xx may have done something, so only
// idempotent requests are (token requests count as idempotent: asking for
// a token twice is harmless).
func retryable(method, url string, status int, header http.Header) bool {
	switch {
	case status == http.StatusTooManyRequests:
		return true
	case status == http.StatusRequestEntityTooLarge && header.Get("Retry-After") != "":
		return true
	case status >= 500 && status != http.StatusNotImplemented:
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut:
			return true
		case http.MethodPost:
			return strings.HasSuffix(strings.TrimSuffix(url, "/"), "/tokens")
		}
	}
	return false
}

// retryDelay is how long to wait before try failCount+1: what Retry-After
// says (seconds or an HTTP date) when present, else base doubled per
// failure. ok is false when Retry-After cannot be read.
func retryDelay(failCount uint, retryAfter string, base time.Duration, now time.Time) (time.Duration, bool) {
	if retryAfter = strings.TrimSpace(retryAfter); retryAfter != "" {
		if secs, err := strconv.Atoi(retryAfter); err == nil {
			if secs < 0 {
				secs = 0
			}
			return time.Duration(secs) * time.Second, true
		}
		if at, err := http.ParseTime(retryAfter); err == nil {
			return max(at.Sub(now), 0), true
		}
		return 0, false
	}
	shift := min(failCount-1, 10)
	return base << shift, true
}

// isTimeout tells transport timeouts apart so their message can say what
// to check.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
