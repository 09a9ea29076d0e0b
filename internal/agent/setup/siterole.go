package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// ReadSiteRole reads the node's part in a site, as setup-node last wrote
// it (layout.SiteRole). A node of its own has no such file: its role is
// the zero SiteRole.
func ReadSiteRole(h *host.Host, l layout.Layout) (protocol.SiteRole, error) {
	var r protocol.SiteRole
	data, err := h.ReadFile(l.SiteRole)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read site role: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read site role %s: %w", l.SiteRole, err)
	}
	return r, nil
}

// siteNameRE is a site's name: what [site:NAME] in the client's config
// takes, a word that is safe in file names and messages.
var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateSiteRole checks a role setup-node was sent: the node writes it
// and its other steps (router, services, firewall) act on its addresses.
func ValidateSiteRole(r protocol.SiteRole) error {
	if !siteNameRE.MatchString(r.Site) {
		return fmt.Errorf("site name %q: use 1 to 63 lower-case letters, digits, - and _, starting with a letter or digit", r.Site)
	}
	if !r.Balancer && !r.App && !r.Services {
		return fmt.Errorf("site %s: the node has no role (balancer, app or services)", r.Site)
	}
	for _, a := range r.TrustProxies {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("site %s: trusted proxy %q is not an IP address", r.Site, a)
		}
	}
	if r.ServiceListen != "" {
		if _, err := netip.ParseAddr(r.ServiceListen); err != nil {
			return fmt.Errorf("site %s: service listen address %q is not an IP address", r.Site, r.ServiceListen)
		}
	}
	for _, a := range r.ServiceClients {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("site %s: service client %q is not an IP address", r.Site, a)
		}
	}
	if r.Services && r.ServiceListen == "" {
		return fmt.Errorf("site %s: a services node needs the private address its databases listen on", r.Site)
	}
	return nil
}

// runsApps says whether a node with role site (nil: a node of its own)
// runs apps, and so needs their runtimes and units.
func runsApps(site *protocol.SiteRole) bool {
	return site == nil || site.App
}

// roleNames lists a role's parts, for messages.
func roleNames(r protocol.SiteRole) string {
	var parts []string
	for _, p := range []struct {
		on   bool
		name string
	}{{r.Balancer, "balancer"}, {r.App, "app"}, {r.Services, "services"}} {
		if p.on {
			parts = append(parts, p.name)
		}
	}
	return strings.Join(parts, ", ")
}

// ensureSiteRole writes the node's role in a site to layout.SiteRole, or
// removes the file from a node that is now one of its own.
func (s *setupRun) ensureSiteRole(ctx context.Context, st *protocol.Step) (bool, string, error) {
	if s.args.Site == nil {
		removed, err := s.h.Remove(s.l.SiteRole)
		if err != nil {
			return false, "", fmt.Errorf("remove %s: %w", s.l.SiteRole, err)
		}
		if removed {
			return true, "removed: the node is one of its own", nil
		}
		return false, "none: the node is one of its own", nil
	}
	data, err := json.MarshalIndent(s.args.Site, "", "  ")
	if err != nil {
		return false, "", err
	}
	// Readable by all: it names addresses, no secret, and the router's
	// and services' steps read it.
	changed, err := s.h.WriteFile(s.l.SiteRole, append(data, '\n'), host.Attr{Mode: 0o644})
	if err != nil {
		return false, "", err
	}
	return changed, fmt.Sprintf("site %s: %s", s.args.Site.Site, roleNames(*s.args.Site)), nil
}

// appUnits is the app units step on a node that runs apps; a site's
// balancer-only or services-only node has none.
func (s *setupRun) appUnits(ctx context.Context, st *protocol.Step) (bool, string, error) {
	if !runsApps(s.args.Site) {
		return false, fmt.Sprintf("not an app node (site %s: %s)", s.args.Site.Site, roleNames(*s.args.Site)), nil
	}
	return s.ensureAppUnits(ctx, st)
}

// appRuntimePackages are the NodePackages only a node that runs apps
// needs.
var appRuntimePackages = []string{"python3", "gunicorn", "python3-pastedeploy", "php-fpm"}

// RolePackages is NodePackages for a node with role site (nil: a node of
// its own): a site's node that runs no apps goes without their runtimes.
func RolePackages(site *protocol.SiteRole) []string {
	pkgs := NodePackages()
	if runsApps(site) {
		return pkgs
	}
	return slices.DeleteFunc(pkgs, func(p string) bool { return slices.Contains(appRuntimePackages, p) })
}
