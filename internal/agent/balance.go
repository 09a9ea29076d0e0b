package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// balanceFile is balance.json: every site the node balances, as the
// client last sent it (OpBalance), sorted by site.
type balanceFile struct {
	Sites []protocol.BalanceArgs `json:"sites"`
}

// readBalance reads the node's balanced sites; none without the file.
func (a *Agent) readBalance() ([]protocol.BalanceArgs, error) {
	data, err := a.Host.ReadFile(a.Layout.Balance)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read balanced sites: %w", err)
	}
	var f balanceFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read balanced sites %s: %w", a.Layout.Balance, err)
	}
	return f.Sites, nil
}

// writeBalance replaces balance.json (atomically; root only, as the
// addresses of a site's nodes are nobody else's business).
func (a *Agent) writeBalance(sites []protocol.BalanceArgs) error {
	data, err := json.MarshalIndent(balanceFile{Sites: sites}, "", "\t")
	if err != nil {
		return err
	}
	if _, err := a.Host.WriteFile(a.Layout.Balance, append(data, '\n'), host.Attr{Mode: 0o600}); err != nil {
		return fmt.Errorf("save balanced sites: %w", err)
	}
	return nil
}

// parseBalanced turns stored sites into the router's.
func parseBalanced(sites []protocol.BalanceArgs) ([]router.Balanced, error) {
	var out []router.Balanced
	for _, s := range sites {
		b, err := router.ParseBalanced(s)
		if err != nil {
			return nil, fmt.Errorf("balanced site %s: %w", s.Site, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// withSite returns sites with args's site replaced by args (removed when
// it has no locations), sorted by site.
func withSite(sites []protocol.BalanceArgs, args protocol.BalanceArgs) []protocol.BalanceArgs {
	out := slices.DeleteFunc(slices.Clone(sites), func(s protocol.BalanceArgs) bool { return s.Site == args.Site })
	if len(args.Locations) > 0 {
		out = append(out, args)
	}
	slices.SortFunc(out, func(x, y protocol.BalanceArgs) int { return strings.Compare(x.Site, y.Site) })
	return out
}

// balance sets what the node proxies for one site, and loads the
// router's config if that changed it. Locations another site balances
// are refused; a route of the node's own at a balanced location is left
// out (with a warning) while the site has it.
func (a *Agent) balance(ctx context.Context, c *Call, args *protocol.BalanceArgs) (*protocol.BalanceResult, error) {
	if _, err := router.ParseBalanced(*args); err != nil {
		return nil, badRequest("%v", err)
	}
	release, err := a.Locks().Acquire(ctx, routesLock, "balance "+args.Site, routesLockWait, nil)
	if err != nil {
		return nil, err
	}
	defer release()
	old, err := a.readBalance()
	if err != nil {
		return nil, err
	}
	sites := withSite(old, *args)
	balanced, err := parseBalanced(sites)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	t, err := a.loadTable(c)
	if err != nil {
		return nil, err
	}
	st := a.resolve(c, t)
	opt, err := a.routerOptions()
	if err != nil {
		return nil, err
	}
	opt.Balanced = balanced
	r, err := router.Render(t, st.backends, opt)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	for _, w := range r.Warnings {
		c.Warnf("%v", w)
	}
	did, err := a.applier().Apply(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("load the routing config: %w", err)
	}
	if err := a.writeBalance(sites); err != nil {
		return nil, err
	}
	// As a deploy does: the front server gets a new https name's
	// certificate now rather than at its first visitor's handshake,
	// and a problem is told (the balance is done either way).
	for _, host := range newCertificateHosts(old, *args) {
		st := c.Out.Start("certificate " + host)
		st.Done(false, a.obtainCertificate(ctx, c, st, host))
	}
	return &protocol.BalanceResult{Changed: did.Front || did.Router}, nil
}

// newCertificateHosts are the hosts of args's https locations (not
// wildcards) that the site's entry in old did not have.
func newCertificateHosts(old []protocol.BalanceArgs, args protocol.BalanceArgs) []string {
	had := map[string]bool{}
	for _, s := range old {
		if s.Site != args.Site {
			continue
		}
		for _, l := range s.Locations {
			if loc, err := location.Parse(l); err == nil {
				had[certificateHost(loc)] = true
			}
		}
	}
	var out []string
	for _, l := range args.Locations {
		loc, err := location.Parse(l)
		if err != nil {
			continue
		}
		if h := certificateHost(loc); h != "" && !had[h] && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// probeHealth asks an upstream's router for the health route, as the
// balancer's Caddy does (Caddy 2.6.2 does not report what its checks
// found). Tests replace it.
var probeHealth = func(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, router.BalanceHealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+protocol.HealthPath, nil)
	if err != nil {
		return false
	}
	req.Host = protocol.HealthHost
	resp, err := healthClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

var healthClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// balanceStatus reports every balanced site and its upstreams: healthy as
// the health route answers now, requests and failures as the router's
// Caddy counts them.
func (a *Agent) balanceStatus(ctx context.Context, c *Call, _ *struct{}) (*protocol.BalanceStatusResult, error) {
	sites, err := a.readBalance()
	if err != nil {
		return nil, err
	}
	counts := map[string]router.UpstreamStatus{}
	if len(sites) > 0 {
		ups, err := a.admin(a.Layout.RouterAdminSocket).Upstreams(ctx)
		if err != nil {
			c.Warnf("the router's upstream counts: %v", err)
		}
		for _, u := range ups {
			counts[u.Address] = u
		}
	}
	healthy := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range sites {
		for _, u := range s.Upstreams {
			wg.Go(func() {
				ok := probeHealth(ctx, u)
				mu.Lock()
				healthy[u] = ok
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	res := &protocol.BalanceStatusResult{Sites: []protocol.BalancedSite{}}
	for _, s := range sites {
		bs := protocol.BalancedSite{BalanceArgs: s, States: []protocol.UpstreamState{}}
		for _, u := range s.Upstreams {
			n := counts[u]
			bs.States = append(bs.States, protocol.UpstreamState{
				Address: u, Healthy: healthy[u], Out: slices.Contains(s.Out, u),
				Requests: n.NumRequests, Fails: n.Fails,
			})
		}
		res.Sites = append(res.Sites, bs)
	}
	return res, nil
}
