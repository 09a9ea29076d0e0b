package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// ErrAdminUnreachable: nothing answers on Caddy's admin socket (Caddy not
// running, or another socket path).
var ErrAdminUnreachable = errors.New("caddy admin API unreachable")

// AdminError is a request Caddy's admin API refused; Message is Caddy's own
// explanation (for /load: what is wrong with the config).
type AdminError struct {
	Op      string // "load", "get config"
	Status  int
	Message string
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("caddy %s: HTTP %d: %s", e.Op, e.Status, e.Message)
}

// maxAdminResponse bounds what we read back from the admin API.
const maxAdminResponse = 16 << 20

// Admin talks to Caddy's admin API on its unix socket.
//
// Written on net.Conn rather than http.Client: Caddy 2.6.2 accepts
// requests on a unix-socket admin endpoint only with an empty Host header,
// and Go's http.Transport refuses a URL without a host (and, since Go
// 1.20.6, any invalid Host such as the " " Caddy's own CLI used to send).
// Request.Write with an empty URL host writes exactly "Host: ".
type Admin struct {
	socket string
}

// NewAdmin returns a client for the admin API listening on socket.
func NewAdmin(socket string) *Admin { return &Admin{socket: socket} }

// Load replaces Caddy's whole config (POST /load). Caddy starts the new
// servers on the listeners it already has, then stops the old ones
// gracefully: requests in flight finish on the old config within its grace
// period. It returns once the new config is running.
//
// Load refuses, before posting, a config that would not keep the admin API
// on this socket: Caddy 2.6.2 switches to a new config's admin endpoint
// even when it then refuses the config, so a config without our admin
// section leaves Caddy's API on localhost:2019 and the socket gone.
func (a *Admin) Load(ctx context.Context, config []byte) error {
	var head struct {
		Admin struct {
			Listen string `json:"listen"`
		} `json:"admin"`
	}
	if err := json.Unmarshal(config, &head); err != nil {
		return fmt.Errorf("caddy load: config is not JSON: %w", err)
	}
	if want := "unix/" + a.socket; head.Admin.Listen != want {
		return fmt.Errorf("caddy load: config moves the admin API to %q, want %q", head.Admin.Listen, want)
	}
	status, body, err := a.do(ctx, http.MethodPost, "/load", config)
	if err != nil {
		return fmt.Errorf("caddy load: %w", err)
	}
	if status != http.StatusOK {
		return &AdminError{Op: "load", Status: status, Message: adminMessage(body)}
	}
	return nil
}

// Current returns the running config (GET /config/), as Caddy serializes
// it: the same JSON value that was loaded, not the same bytes.
func (a *Admin) Current(ctx context.Context) ([]byte, error) {
	status, body, err := a.do(ctx, http.MethodGet, "/config/", nil)
	if err != nil {
		return nil, fmt.Errorf("caddy get config: %w", err)
	}
	if status != http.StatusOK {
		return nil, &AdminError{Op: "get config", Status: status, Message: adminMessage(body)}
	}
	return body, nil
}

// UpstreamStatus is one reverse_proxy upstream as Caddy 2.6.2 reports it
// (GET /reverse_proxy/upstreams): requests in flight and recent failures,
// counted per address over every handler. It has no health field: active
// health is kept per handler.
type UpstreamStatus struct {
	Address     string `json:"address"`
	NumRequests int    `json:"num_requests"`
	Fails       int    `json:"fails"`
}

// Upstreams returns the state of every upstream of the running config.
func (a *Admin) Upstreams(ctx context.Context) ([]UpstreamStatus, error) {
	status, body, err := a.do(ctx, http.MethodGet, "/reverse_proxy/upstreams", nil)
	if err != nil {
		return nil, fmt.Errorf("caddy upstreams: %w", err)
	}
	if status != http.StatusOK {
		return nil, &AdminError{Op: "get upstreams", Status: status, Message: adminMessage(body)}
	}
	var out []UpstreamStatus
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("caddy upstreams: %w", err)
	}
	return out, nil
}

func (a *Admin) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", a.socket)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", ErrAdminUnreachable, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := http.NewRequestWithContext(ctx, method, "http://unix"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.URL.Host = ""
	req.Host = ""
	req.Close = true
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := req.Write(conn); err != nil {
		return 0, nil, ctxErr(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0, nil, ctxErr(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminResponse))
	if err != nil {
		return 0, nil, ctxErr(ctx, err)
	}
	return resp.StatusCode, data, nil
}

// ctxErr prefers the context's error over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// adminMessage extracts Caddy's {"error": "..."} message, or returns the
// body trimmed.
func adminMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return s
	}
	return "(no message)"
}

// Applier loads rendered configs into the front server and the router
// and keeps each one's --config file in step, so a reboot brings the same
// configs back. A config equal to the last one applied, or to the one
// Caddy runs, is not posted: a route change posts the router's only.
// Not safe for concurrent use; the agent applies under its routes lock.
type Applier struct {
	Front  ConfigTarget
	Router ConfigTarget
}

// ConfigTarget is one Caddy process: its admin API and the file it starts
// from (caddy run --config FILE).
type ConfigTarget struct {
	Admin *Admin
	Path  string

	last []byte
}

// Applied says which of the two processes loaded a new config.
type Applied struct {
	Front, Router bool
}

// Apply makes r the running configs: the router's first, so that a new
// port's router socket exists before the front server proxies to it. If
// the front server then refuses its config, the router's previous config
// is loaded back, so the two never disagree. A config Caddy refuses never
// reaches the disk.
func (a *Applier) Apply(ctx context.Context, r *Rendered) (Applied, error) {
	prevRouter := a.Router.last
	var did Applied
	var err error
	if did.Router, err = a.Router.apply(ctx, r.Router); err != nil {
		return did, fmt.Errorf("router: %w", err)
	}
	if did.Front, err = a.Front.apply(ctx, r.Front); err != nil {
		if did.Router && prevRouter != nil {
			if _, rerr := a.Router.apply(ctx, prevRouter); rerr != nil {
				err = fmt.Errorf("%w (and putting the router's previous config back: %v)", err, rerr)
			}
		}
		return did, fmt.Errorf("front server: %w", err)
	}
	return did, nil
}

// apply makes config the running one and reports whether Caddy loaded it.
// The file is written only after Caddy accepted the config.
func (c *ConfigTarget) apply(ctx context.Context, config []byte) (loaded bool, err error) {
	if c.last != nil && bytes.Equal(c.last, config) {
		return false, nil
	}
	if cur, err := c.Admin.Current(ctx); err == nil && sameJSON(cur, config) {
		if err := c.writeFile(config); err != nil {
			return false, err
		}
		c.last = bytes.Clone(config)
		return false, nil
	}
	if err := c.Admin.Load(ctx, config); err != nil {
		return false, err
	}
	if err := c.writeFile(config); err != nil {
		return true, err
	}
	c.last = bytes.Clone(config)
	return true, nil
}

func (c *ConfigTarget) writeFile(config []byte) error {
	if old, err := os.ReadFile(c.Path); err == nil && bytes.Equal(old, config) {
		return nil
	}
	if err := atomicfile.Write(c.Path, config, atomicfile.Options{Perm: 0o644}); err != nil {
		return fmt.Errorf("write caddy config: %w", err)
	}
	return nil
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
