package protocol

// Sites: one app served by several nodes. A site ([site:NAME] in the
// client's config) has app nodes that each run the app as a node of its
// own does, an optional balancer node whose front server ends TLS and
// proxies the site's locations to the app nodes, and an optional services
// node that runs the site's databases on its private address for the app
// nodes. The client drives a site: the nodes know only their role.

// Operations of sites.
const (
	// OpBalance sets what a balancer node proxies for one site
	// (BalanceArgs, BalanceResult). A site with no locations is removed.
	OpBalance = "balance"
	// OpBalanceStatus reports every site a balancer proxies and how its
	// upstreams fare (BalanceStatusResult); it reads no arguments.
	OpBalanceStatus = "balance-status"
	// OpSiteServices prepares an app's services on a services node
	// (SiteServicesArgs) and returns the CONFIG_* variables the app nodes
	// give the app (SiteServicesResult).
	OpSiteServices = "site-services"
)

// HealthHost is the Host header of a balancer's active health checks: an
// app node's router answers 200 for it while it serves, whatever the
// apps' own paths answer.
const HealthHost = "toppcloud-health.invalid"

// HealthPath is the path of those checks.
const HealthPath = "/.toppcloud/health"

// SiteRole is what a node is for in a site; SetupArgs.Site carries it.
// A node belongs to at most one site.
type SiteRole struct {
	// Site is the site's name.
	Site string `json:"site"`
	// Balancer: the node fronts the site's app nodes (it needs no app
	// runtime).
	Balancer bool `json:"balancer,omitempty"`
	// App: the node runs the site's apps.
	App bool `json:"app,omitempty"`
	// Services: the node runs the site's databases (PostgreSQL,
	// MariaDB, Redis) for the app nodes.
	Services bool `json:"services,omitempty"`
	// TrustProxies are the addresses (the balancer's) whose
	// X-Forwarded-* headers an app node's front server believes; from
	// anyone else they are replaced, as on a node of its own.
	TrustProxies []string `json:"trust_proxies,omitempty"`
	// ServiceListen is the services node's private address: its
	// databases listen there besides loopback.
	ServiceListen string `json:"service_listen,omitempty"`
	// ServiceClients are the addresses (the app nodes') the services
	// node's firewall lets reach its databases' ports, and the database
	// servers let log in (pg_hba, MariaDB user hosts). Nobody else
	// reaches those ports.
	ServiceClients []string `json:"service_clients,omitempty"`
}

// BalanceArgs are OpBalance's arguments: the whole of one site on the
// balancer, replacing what it had.
type BalanceArgs struct {
	Site string `json:"site"`
	// Locations are the site's locations as the balancer serves them
	// ([http[s]://]HOST[:PORT][/PATH], as update takes them); https ones
	// get certificates on the balancer. Empty removes the site.
	Locations []string `json:"locations"`
	// Upstreams are the app nodes, HOST:PORT of their plain-HTTP front
	// servers (private addresses where the provider has them).
	Upstreams []string `json:"upstreams"`
	// Out are upstreams (of Upstreams) to send no new requests to: a
	// node that is switching. Requests in flight to them finish.
	Out []string `json:"out,omitempty"`
}

// BalanceResult is OpBalance's result.
type BalanceResult struct {
	// Changed: the balancer's routing changed (its router reloaded).
	Changed bool `json:"changed"`
}

// BalanceStatusResult is OpBalanceStatus's result.
type BalanceStatusResult struct {
	Sites []BalancedSite `json:"sites"`
}

// BalancedSite is one site a balancer proxies.
type BalancedSite struct {
	BalanceArgs
	// Upstreams' states as the balancer's Caddy sees them, in the order
	// of BalanceArgs.Upstreams.
	States []UpstreamState `json:"states"`
}

// UpstreamState is one upstream of a balancer.
type UpstreamState struct {
	Address string `json:"address"`
	// Healthy is the last active health check's verdict.
	Healthy bool `json:"healthy"`
	// Out: taken out by the client (BalanceArgs.Out).
	Out bool `json:"out,omitempty"`
	// Requests in flight and recent failures, as Caddy counts them.
	Requests int `json:"requests"`
	Fails    int `json:"fails"`
}

// ServiceRequest is one service.NAME key of an app.ini.
type ServiceRequest struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// SiteServicesArgs are OpSiteServices' arguments.
type SiteServicesArgs struct {
	App string `json:"app"`
	// Platform is app.ini's kind (python, php, ...).
	Platform string `json:"platform"`
	// Services are the app's; only those a services node runs
	// (postgresql, postgis, mysql, redis) are accepted.
	Services []ServiceRequest `json:"services"`
	// Clear drops and recreates the app's data first (update --clear).
	Clear    bool     `json:"clear,omitempty"`
	LockWait Duration `json:"lock_wait,omitempty"`
}

// SiteServicesResult is OpSiteServices' result. Env holds passwords:
// never print it.
type SiteServicesResult struct {
	// Env are the CONFIG_* variables, with hosts the services node's
	// private address.
	Env map[string]string `json:"env"`
}

// HoldDecision is what the client writes, as one JSON line, to an
// update it asked to hold (UpdateArgs.Hold) once the agent replied
// UpdateHeld: commit switches to the new instance; anything else,
// including the end of input, removes it and leaves the live one.
type HoldDecision struct {
	Commit bool `json:"commit"`
}

// UpdateHeld is the reply of a held update once the new instance runs,
// answered its health check and ran update_fetch (unless SkipFetch):
// everything but the switch is done.
type UpdateHeld struct {
	Instance string `json:"instance"`
}
