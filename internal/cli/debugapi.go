package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// debugTransport appends every provider API request and response to a
// file (--debug-api, the original's --debug-libcloud), with credentials
// and tokens replaced by "REDACTED" in headers, URLs and JSON or form
// bodies. It is written by hand because the redaction rules are ours.
type debugTransport struct {
	path string
	next http.RoundTripper
	warn func(string, ...any)
	mu   sync.Mutex
}

// sensitiveHeaders are removed whatever the provider.
var sensitiveHeaders = map[string]bool{
	"authorization":        true,
	"x-auth-token":         true,
	"x-subject-token":      true,
	"x-auth-key":           true,
	"x-amz-security-token": true,
	"cookie":               true,
	"set-cookie":           true,
	"proxy-authorization":  true,
}

// sensitiveKey matches JSON object keys and form/query parameter names
// whose values are secrets.
var sensitiveKey = regexp.MustCompile(`(?i)(pass(word)?|secret|api_?key|token|credential|private)`)

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "### %s %s %s\n", start.UTC().Format(time.RFC3339Nano), req.Method, redactURL(req.URL))
	writeHeaders(&buf, req.Header)
	if len(reqBody) > 0 {
		buf.WriteString("\n" + redactBody(req.Header.Get("Content-Type"), reqBody) + "\n")
	}
	if err != nil {
		fmt.Fprintf(&buf, "--- error after %s: %v\n\n", time.Since(start).Round(time.Millisecond), err)
		t.write(buf.Bytes())
		return resp, err
	}
	respBody, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	fmt.Fprintf(&buf, "--- %s (%s)\n", resp.Status, time.Since(start).Round(time.Millisecond))
	writeHeaders(&buf, resp.Header)
	if len(respBody) > 0 {
		buf.WriteString("\n" + redactBody(resp.Header.Get("Content-Type"), respBody) + "\n")
	}
	if rerr != nil {
		fmt.Fprintf(&buf, "--- reading body: %v\n", rerr)
	}
	buf.WriteString("\n")
	t.write(buf.Bytes())
	return resp, nil
}

func (t *debugTransport) write(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := os.OpenFile(t.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.warn("--debug-api: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.warn("--debug-api: %v", err)
	}
}

func writeHeaders(w io.Writer, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			if sensitiveHeaders[strings.ToLower(k)] {
				v = "REDACTED"
			}
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	for k := range q {
		if sensitiveKey.MatchString(k) {
			q.Set(k, "REDACTED")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// redactBody redacts JSON bodies structurally and form bodies by key.
// Anything else (XML from EC2) carries no credentials in our calls: EC2
// requests are signed, not authenticated by a body field; its bodies are
// still scanned for the few secret-looking elements as a precaution.
func redactBody(contentType string, b []byte) string {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		var v any
		if err := json.Unmarshal(trimmed, &v); err == nil {
			out, _ := json.Marshal(redactJSON(v))
			return string(out)
		}
	}
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		if q, err := url.ParseQuery(string(b)); err == nil {
			for k := range q {
				if sensitiveKey.MatchString(k) {
					q.Set(k, "REDACTED")
				}
			}
			return q.Encode()
		}
	}
	return xmlSecret.ReplaceAllString(string(b), "<$1>REDACTED</$1>")
}

var xmlSecret = regexp.MustCompile(`(?i)<((?:\w*)(?:secret|password|token)\w*)>[^<]*</\w+>`)

func redactJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if sensitiveKey.MatchString(k) {
				t[k] = "REDACTED"
				continue
			}
			t[k] = redactJSON(val)
		}
		return t
	case []any:
		for i := range t {
			t[i] = redactJSON(t[i])
		}
		return t
	}
	return v
}
