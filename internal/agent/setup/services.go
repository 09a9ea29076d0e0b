package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/version"
)

// ensureAppUnits lays down what application instances run with: the
// template unit toppcloud-app@.service and the runtime files (the WSGI
// bootstrap, the PHP prelude). Instances' own drop-ins come with deploys.
// The distribution's php-fpm service is stopped: every PHP instance runs
// its own php-fpm master as its app user, and the default pool (as
// www-data) would only cost memory.
func (s *setupRun) ensureAppUnits(ctx context.Context, st *protocol.Step) (bool, string, error) {
	did, err := (&instance.Node{Host: s.h, Layout: s.l}).InstallRuntime(ctx)
	if err != nil {
		return len(did) > 0, "", err
	}
	fpms, err := s.systemd.ServiceFiles(ctx, "php*-fpm.service")
	if err != nil {
		return len(did) > 0, "", err
	}
	for _, f := range fpms {
		if f.State == "masked" || f.State == "disabled" && !s.systemd.Active(ctx, f.Name) {
			continue
		}
		if err := s.systemd.DisableNow(ctx, f.Name); err != nil {
			return true, "", err
		}
		did = append(did, "stopped "+f.Name)
	}
	if len(did) == 0 {
		return false, instance.TemplateUnitName + ", " + s.l.Assets, nil
	}
	return true, strings.Join(did, ", "), nil
}

func (s *setupRun) adminAnswers(ctx context.Context, admin *router.Admin) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := admin.Current(ctx)
	return err == nil
}

// waitAdmin waits until a Caddy's admin API answers on socket.
func (s *setupRun) waitAdmin(ctx context.Context, admin *router.Admin, socket string) error {
	deadline := time.Now().Add(s.hooks.CaddyWait)
	for {
		if s.adminAnswers(ctx, admin) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy's admin API did not answer on %s within %s", socket, s.hooks.CaddyWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// withCaddyLog adds a Caddy unit's last journal lines to an error about
// it.
func (s *setupRun) withCaddyLog(ctx context.Context, unit string, err error) error {
	tail, jerr := s.systemd.Journal(ctx, unit, 15, "cat")
	if jerr != nil || len(tail) == 0 {
		return err
	}
	return &protocol.Error{Code: protocol.CodeCommandFailed, Message: err.Error() + " (" + unit + "'s log below)", Tail: tail}
}

// checkFrontServer asks Caddy on port 80 for a page; any HTTP answer will
// do (a new node answers 404 with the not-found page).
func checkFrontServer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr := &http.Transport{DialContext: (&net.Dialer{}).DialContext, DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1/", nil)
		req.Host = "toppcloud-setup-check.invalid"
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *setupRun) ensureLogs(ctx context.Context, st *protocol.Step) (bool, string, error) {
	var did []string
	rot, err := renderFile("logrotate.conf", map[string]string{"SetupLog": s.l.SetupLog})
	if err != nil {
		return false, "", err
	}
	if c, err := s.h.WriteFile(s.l.Logrotate, rot, host.Attr{Mode: 0o644}); err != nil {
		return false, "", err
	} else if c {
		did = append(did, s.l.Logrotate)
	}
	timer, err := renderFile("logrotate-timer.conf", nil)
	if err != nil {
		return false, "", err
	}
	if err := os.MkdirAll(s.h.Path(path.Dir(s.l.LogrotateTimer)), 0o755); err != nil {
		return len(did) > 0, "", err
	}
	if c, err := s.h.WriteFile(s.l.LogrotateTimer, timer, host.Attr{Mode: 0o644}); err != nil {
		return len(did) > 0, "", err
	} else if c {
		did = append(did, s.l.LogrotateTimer)
		s.reload = true
		if err := s.daemonReload(ctx); err != nil {
			return true, "", err
		}
		if err := s.systemd.Restart(ctx, "logrotate.timer"); err != nil {
			return true, "", err
		}
	}
	jd, err := renderFile("journald.conf", nil)
	if err != nil {
		return false, "", err
	}
	if err := os.MkdirAll(s.h.Path(path.Dir(s.l.Journald)), 0o755); err != nil {
		return len(did) > 0, "", err
	}
	if c, err := s.h.WriteFile(s.l.Journald, jd, host.Attr{Mode: 0o644}); err != nil {
		return len(did) > 0, "", err
	} else if c {
		did = append(did, s.l.Journald)
		// Storage= needs a restart; journald keeps the streams of running
		// services across it.
		if err := s.systemd.Restart(ctx, "systemd-journald.service"); err != nil {
			return true, "", err
		}
	}
	if len(did) == 0 {
		return false, "logrotate and journald configured", nil
	}
	return true, strings.Join(did, ", "), nil
}

// recordNodeInfo writes node.json when this run changed the node (or it
// is missing or from another agent), and appends to the setup history in
// any case.
func (s *setupRun) recordNodeInfo(ctx context.Context, st *protocol.Step) (bool, string, error) {
	now := s.h.Time().UTC().Truncate(time.Second)
	fp, err := s.n.Fingerprint()
	if err != nil {
		return false, "", err
	}
	old, err := ReadNodeInfo(s.h, s.l)
	if err != nil {
		s.warnf("%v; writing a new one", err)
		old = nil
	}
	write := len(s.changed) > 0 || old == nil || old.Fingerprint != fp || old.Version != version.Version ||
		old.Name != s.args.Name || !samePackages(old.Packages, s.packages) || old.OS != s.os
	s.appendHistory(now, fp, write)
	if !write {
		return false, "unchanged since " + old.SetupAt.Format(time.RFC3339), nil
	}
	ni := protocol.NodeInfo{
		Format: protocol.NodeInfoFormat, Name: s.args.Name,
		Version: version.Version, Protocol: version.Protocol, Fingerprint: fp,
		FirstSetupAt: now, SetupAt: now, SetupBy: s.req.LocalUser,
		OS: s.os, Packages: s.packages, Changed: slices.Clone(s.changed),
	}
	if ni.Changed == nil {
		ni.Changed = []string{}
	}
	if old != nil && !old.FirstSetupAt.IsZero() {
		ni.FirstSetupAt = old.FirstSetupAt
	}
	data, err := json.MarshalIndent(ni, "", "  ")
	if err != nil {
		return false, "", err
	}
	if _, err := s.h.WriteFile(s.l.NodeInfo, append(data, '\n'), host.Attr{Mode: 0o644}); err != nil {
		return false, "", err
	}
	return true, "version " + version.Version, nil
}

func samePackages(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// appendHistory adds a line to the setup history. A failure to write it
// is a warning: the node is set up all the same.
func (s *setupRun) appendHistory(now time.Time, fp string, recorded bool) {
	what := "no changes"
	switch {
	case len(s.changed) > 0:
		what = "changed: " + strings.Join(s.changed, ", ")
	case recorded:
		what = "node.json updated (another agent binary or package versions)"
	}
	line := fmt.Sprintf("%s setup-node by %s, toppcloud %s (sha256 %s): %s\n",
		now.Format(time.RFC3339), orUnknown(s.req.LocalUser), version.Version, fp[:min(12, len(fp))], what)
	if err := s.h.AppendFile(s.l.SetupLog, []byte(line), host.Attr{Mode: 0o640, Group: "adm"}); err != nil {
		s.warnf("append to %s: %v", s.l.SetupLog, err)
	}
}

// ReadNodeInfo reads what setup-node recorded (node.json); nil when it
// never completed.
func ReadNodeInfo(h *host.Host, l layout.Layout) (*protocol.NodeInfo, error) {
	b, err := h.ReadFile(l.NodeInfo)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ni protocol.NodeInfo
	if err := json.Unmarshal(b, &ni); err != nil {
		return nil, fmt.Errorf("%s: %w", l.NodeInfo, err)
	}
	return &ni, nil
}
