package setup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// RouterUnit is the router's systemd unit: the second Caddy, behind the
// front server (caddy.service).
const RouterUnit = "toppcloud-router.service"

// FrontUnit is the front server's unit, Debian's caddy.service with our
// drop-in.
const FrontUnit = "caddy.service"

// ensureCaddy makes the node's two Caddy processes run the agent's
// configs with their admin APIs on unix sockets only: the router first,
// then the front server that proxies to it. Configs missing on disk (a
// new node) are written from the route table before the processes start;
// running ones are replaced through the admin APIs only where they
// differ from what the route table renders, so re-running setup-node on
// a serving node reloads nothing.
func (s *setupRun) ensureCaddy(ctx context.Context, st *protocol.Step) (bool, string, error) {
	var did []string
	tlsChanged, err := s.writeTLSSettings()
	if err != nil {
		return false, "", err
	}
	if tlsChanged {
		did = append(did, "TLS settings")
	}
	storage := host.Attr{Mode: 0o700, User: layout.CaddyUser, Group: layout.CaddyGroup}
	if c, err := s.h.EnsureDir(s.l.CaddyStorage, storage); err != nil {
		return len(did) > 0, "", err
	} else if c {
		did = append(did, "storage "+s.l.CaddyStorage)
	}

	unit, err := renderFile("toppcloud-router.service", map[string]string{
		"Config": s.l.RouterConfig, "Socket": s.l.RouterAdminSocket, "Dir": s.l.RouterDir,
		"FirewallUnit": layout.FirewallUnit, "User": layout.CaddyUser, "Group": layout.CaddyGroup,
	})
	if err != nil {
		return false, "", err
	}
	unitChanged, err := s.h.WriteFile(path.Join(s.l.Units, RouterUnit), unit, host.Attr{Mode: 0o644})
	if err != nil {
		return len(did) > 0, "", err
	}
	dropIn, err := renderFile("caddy-dropin.conf", map[string]string{
		"Config": s.l.CaddyConfig, "Socket": s.l.AdminSocket, "FirewallUnit": layout.FirewallUnit, "RouterUnit": RouterUnit,
	})
	if err != nil {
		return false, "", err
	}
	if err := os.MkdirAll(s.h.Path(path.Dir(s.l.CaddyDropIn)), 0o755); err != nil {
		return false, "", err
	}
	dropInChanged, err := s.h.WriteFile(s.l.CaddyDropIn, dropIn, host.Attr{Mode: 0o644})
	if err != nil {
		return len(did) > 0, "", err
	}
	if unitChanged {
		did = append(did, RouterUnit)
	}
	if dropInChanged {
		did = append(did, "systemd drop-in")
	}
	if unitChanged || dropInChanged {
		s.reload = true
	}
	if err := s.daemonReload(ctx); err != nil {
		return true, "", err
	}

	r, err := s.n.Routing()
	if err != nil {
		return len(did) > 0, "", fmt.Errorf("render the routing config: %w", err)
	}
	procs := []struct {
		unit, config, socket string
		data                 []byte
		changed              bool
	}{
		{RouterUnit, s.l.RouterConfig, s.l.RouterAdminSocket, r.Router, unitChanged},
		{FrontUnit, s.l.CaddyConfig, s.l.AdminSocket, r.Front, dropInChanged},
	}
	for _, p := range procs {
		// Caddy (user caddy) must read its config; one missing (a new
		// node) is written now, so the process starts with it.
		cur, err := s.h.ReadFile(p.config)
		switch {
		case errors.Is(err, os.ErrNotExist) || (err == nil && len(cur) == 0):
			if _, err := s.h.WriteFile(p.config, p.data, host.Attr{Mode: 0o644}); err != nil {
				return len(did) > 0, "", err
			}
			p.changed = true
			did = append(did, path.Base(p.config))
		case err != nil:
			return len(did) > 0, "", err
		case !bytes.Contains(cur, []byte(p.socket)):
			// From an agent that put the admin socket elsewhere: the
			// process would start with an admin API no one finds.
			if _, err := s.h.WriteFile(p.config, p.data, host.Attr{Mode: 0o644}); err != nil {
				return len(did) > 0, "", err
			}
			p.changed = true
			did = append(did, path.Base(p.config)+" (admin socket moved)")
		default:
			if c, err := s.h.WriteFile(p.config, cur, host.Attr{Mode: 0o644}); err != nil {
				return len(did) > 0, "", err
			} else if c {
				did = append(did, path.Base(p.config)+" mode")
			}
		}
		enabled, err := s.systemd.Enable(ctx, p.unit)
		if err != nil {
			return true, "", err
		}
		if enabled {
			did = append(did, "enabled "+p.unit)
		}
		admin := s.n.admin(s.h.Path(p.socket))
		if p.changed || !s.systemd.Active(ctx, p.unit) || !s.adminAnswers(ctx, admin) {
			st.Progress("restarting " + p.unit)
			if err := s.systemd.Restart(ctx, p.unit); err != nil {
				return true, "", s.withCaddyLog(ctx, p.unit, err)
			}
			did = append(did, "restarted "+p.unit)
			if err := s.waitAdmin(ctx, admin, p.socket); err != nil {
				return true, "", s.withCaddyLog(ctx, p.unit, err)
			}
		}
	}
	// Each process runs what its file says unless the file is from an
	// older agent or someone loaded something else through the API:
	// Apply posts the rendered configs only then.
	ap := &router.Applier{
		Front:  router.ConfigTarget{Admin: s.n.admin(s.h.Path(s.l.AdminSocket)), Path: s.h.Path(s.l.CaddyConfig)},
		Router: router.ConfigTarget{Admin: s.n.admin(s.h.Path(s.l.RouterAdminSocket)), Path: s.h.Path(s.l.RouterConfig)},
	}
	loaded, err := ap.Apply(ctx, r)
	if err != nil {
		return true, "", fmt.Errorf("load the routing config: %w", err)
	}
	if loaded.Router {
		did = append(did, "router config loaded")
	}
	if loaded.Front {
		did = append(did, "front config loaded")
	}
	if err := s.hooks.HTTPCheck(ctx); err != nil {
		return len(did) > 0, "", fmt.Errorf("caddy runs but does not answer on port 80: %w", err)
	}
	if len(did) == 0 {
		return false, "front server and router running, admin APIs on " + s.l.AdminSocket + " and " + s.l.RouterAdminSocket, nil
	}
	return true, strings.Join(did, ", "), nil
}

// writeTLSSettings records the client's TLS settings (nil: keep what the
// node has) and the ACME CA's root beside them, for Caddy to read.
func (s *setupRun) writeTLSSettings() (bool, error) {
	t := s.args.TLS
	if t == nil {
		return false, nil
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return false, err
	}
	changed, err := s.h.WriteFile(s.l.TLSSettings, append(data, '\n'), host.Attr{Mode: 0o644})
	if err != nil {
		return false, err
	}
	if t.ACMECARoot == "" {
		if err := os.Remove(s.h.Path(s.l.ACMECARoot)); err == nil {
			changed = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return changed, err
		}
		return changed, nil
	}
	c, err := s.h.WriteFile(s.l.ACMECARoot, []byte(t.ACMECARoot), host.Attr{Mode: 0o644})
	return changed || c, err
}

// ReadTLSSettings returns how the node gets certificates, as the last
// setup-node recorded it; a node set up by an older agent has Let's
// Encrypt.
func ReadTLSSettings(h *host.Host, l layout.Layout) (protocol.TLSSettings, error) {
	b, err := h.ReadFile(l.TLSSettings)
	if errors.Is(err, os.ErrNotExist) {
		return protocol.TLSSettings{Issuer: protocol.IssuerACME}, nil
	}
	if err != nil {
		return protocol.TLSSettings{}, err
	}
	var t protocol.TLSSettings
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("%s: %w", l.TLSSettings, err)
	}
	if err := validateTLS(t); err != nil {
		return t, fmt.Errorf("%s: %w", l.TLSSettings, err)
	}
	return t, nil
}

// validateTLS checks TLS settings the way the router renders them.
func validateTLS(t protocol.TLSSettings) error {
	if t.Issuer != protocol.IssuerACME && t.Issuer != protocol.IssuerInternal {
		return fmt.Errorf("TLS issuer %q: want %q or %q", t.Issuer, protocol.IssuerACME, protocol.IssuerInternal)
	}
	if t.ACMECA != "" && (!strings.HasPrefix(t.ACMECA, "https://") || strings.ContainsAny(t.ACMECA, " {}")) {
		return fmt.Errorf("ACME directory %q: want an https:// URL", t.ACMECA)
	}
	if strings.ContainsAny(t.ACMEEmail, " \t\n{}<>") {
		return fmt.Errorf("ACME email %q: not an address", t.ACMEEmail)
	}
	if t.ACMECARoot != "" && !strings.Contains(t.ACMECARoot, "-----BEGIN CERTIFICATE-----") {
		return errors.New("ACME CA root: not a PEM certificate")
	}
	return nil
}
