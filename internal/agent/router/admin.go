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

// Applier loads rendered configs into Caddy and keeps Caddy's --config file
// in step, so a reboot brings the same config back. Reloads are kept rare
// (each one drops websockets and idle keep-alive connections): a config
// equal to the last one applied, or to the one Caddy runs, is not posted.
// Not safe for concurrent use; the agent applies under its routes lock.
type Applier struct {
	Admin *Admin
	// ConfigPath is the file Caddy runs with (caddy run --config FILE).
	ConfigPath string

	last []byte
}

// Apply makes config the running one. It reports whether Caddy was
// reloaded. The file is written only after Caddy accepted the config, so a
// config Caddy refuses never reaches the disk.
func (a *Applier) Apply(ctx context.Context, config []byte) (reloaded bool, err error) {
	if a.last != nil && bytes.Equal(a.last, config) {
		return false, nil
	}
	if cur, err := a.Admin.Current(ctx); err == nil && sameJSON(cur, config) {
		if err := a.writeFile(config); err != nil {
			return false, err
		}
		a.last = bytes.Clone(config)
		return false, nil
	}
	if err := a.Admin.Load(ctx, config); err != nil {
		return false, err
	}
	if err := a.writeFile(config); err != nil {
		return true, err
	}
	a.last = bytes.Clone(config)
	return true, nil
}

func (a *Applier) writeFile(config []byte) error {
	if old, err := os.ReadFile(a.ConfigPath); err == nil && bytes.Equal(old, config) {
		return nil
	}
	if err := atomicfile.Write(a.ConfigPath, config, atomicfile.Options{Perm: 0o644}); err != nil {
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
