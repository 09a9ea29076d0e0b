package router

// The subset of Caddy's JSON config (v2.6) that Render emits, as our own
// types: importing Caddy would pull its whole module tree into the agent.
// Field order is emission order; maps are emitted with sorted keys, so the
// same input always gives the same bytes.

type caddyConfig struct {
	Admin   caddyAdmin    `json:"admin"`
	Storage *caddyStorage `json:"storage,omitempty"`
	Apps    caddyApps     `json:"apps"`
}

type caddyAdmin struct {
	Listen string            `json:"listen"`
	Config caddyAdminPersist `json:"config"`
}

// caddyAdminPersist turns off Caddy's autosave: the agent writes the config
// file itself, and Caddy starts from that file.
type caddyAdminPersist struct {
	Persist bool `json:"persist"`
}

type caddyStorage struct {
	Module string `json:"module"`
	Root   string `json:"root"`
}

type caddyApps struct {
	HTTP httpApp `json:"http"`
	TLS  *tlsApp `json:"tls,omitempty"`
	PKI  *pkiApp `json:"pki,omitempty"`
}

type httpApp struct {
	HTTPPort    int                     `json:"http_port,omitempty"`
	HTTPSPort   int                     `json:"https_port,omitempty"`
	GracePeriod string                  `json:"grace_period,omitempty"`
	Servers     map[string]*caddyServer `json:"servers"`
}

type caddyServer struct {
	Listen                []string        `json:"listen"`
	Protocols             []string        `json:"protocols"`
	AutomaticHTTPS        autoHTTPS       `json:"automatic_https"`
	ReadTimeout           string          `json:"read_timeout,omitempty"`
	ReadHeaderTimeout     string          `json:"read_header_timeout,omitempty"`
	IdleTimeout           string          `json:"idle_timeout,omitempty"`
	TLSConnectionPolicies []tlsConnPolicy `json:"tls_connection_policies,omitempty"`
	Routes                []caddyRoute    `json:"routes"`
	Errors                *serverErrors   `json:"errors,omitempty"`
}

// serverErrors are the routes run when a handler returns an error: they
// render our pages once per server instead of once per route.
type serverErrors struct {
	Routes []caddyRoute `json:"routes"`
}

type autoHTTPS struct {
	Disable bool `json:"disable"`
}

type tlsConnPolicy struct{}

type caddyRoute struct {
	Match    []matcherSet `json:"match,omitempty"`
	Handle   []handler    `json:"handle"`
	Terminal bool         `json:"terminal,omitempty"`
}

// matcherSet is one set of matchers, all of which must match. A route's
// sets are OR'ed.
type matcherSet struct {
	// Header: a nil list matches a request without the field.
	Header       map[string][]string      `json:"header,omitempty"`
	HeaderRegexp map[string]regexpMatcher `json:"header_regexp,omitempty"`
	PathRegexp   *regexpMatcher           `json:"path_regexp,omitempty"`
	Path         []string                 `json:"path,omitempty"`
	Method       []string                 `json:"method,omitempty"`
	// Vars and VarsRegexp keys may be placeholders
	// ("{http.error.status_code}").
	Vars       map[string][]string      `json:"vars,omitempty"`
	VarsRegexp map[string]regexpMatcher `json:"vars_regexp,omitempty"`
	// Query, when set, is always empty: Caddy 2.6's query matcher with no
	// keys matches requests without a query string.
	Query    *struct{}    `json:"query,omitempty"`
	File     *fileMatcher `json:"file,omitempty"`
	RemoteIP *remoteIP    `json:"remote_ip,omitempty"`
	Not      []matcherSet `json:"not,omitempty"`
}

// remoteIP matches the connection's peer address (Caddy 2.6 reads no
// header for it unless told to).
type remoteIP struct {
	Ranges []string `json:"ranges"`
}

type regexpMatcher struct {
	Name    string `json:"name,omitempty"`
	Pattern string `json:"pattern"`
}

type fileMatcher struct {
	Root      string   `json:"root"`
	TryFiles  []string `json:"try_files"`
	SplitPath []string `json:"split_path,omitempty"`
}

// handler is one element of a route's handle list; each type sets its own
// "handler" name.
type handler interface{ caddyHandler() }

type requestBodyHandler struct {
	Handler string `json:"handler"` // "request_body"
	MaxSize int64  `json:"max_size"`
}

func (requestBodyHandler) caddyHandler() {}

type subrouteHandler struct {
	Handler string       `json:"handler"` // "subroute"
	Routes  []caddyRoute `json:"routes"`
}

type errorHandler struct {
	Handler    string `json:"handler"` // "error"
	Error      string `json:"error"`
	StatusCode int    `json:"status_code"`
}

type staticResponse struct {
	Handler    string              `json:"handler"` // "static_response"
	StatusCode string              `json:"status_code"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Body       string              `json:"body,omitempty"`
}

type headersHandler struct {
	Handler string     `json:"handler"` // "headers"
	Request *headerOps `json:"request"`
}

type headerOps struct {
	Set    map[string][]string `json:"set,omitempty"`
	Delete []string            `json:"delete,omitempty"`
}

type rewriteHandler struct {
	Handler         string `json:"handler"` // "rewrite"
	URI             string `json:"uri,omitempty"`
	StripPathPrefix string `json:"strip_path_prefix,omitempty"`
}

type fileServerHandler struct {
	Handler    string   `json:"handler"` // "file_server"
	Root       string   `json:"root"`
	IndexNames []string `json:"index_names,omitempty"`
}

type reverseProxyHandler struct {
	Handler        string `json:"handler"` // "reverse_proxy"
	BufferRequests bool   `json:"buffer_requests,omitempty"`
	// MaxBufferSize bounds what BufferRequests reads into memory; the
	// rest of a longer body streams after it (Caddy 2.6's name).
	MaxBufferSize int64          `json:"max_buffer_size,omitempty"`
	Transport     proxyTransport `json:"transport,omitempty"`
	// TrustedProxies: from these addresses Caddy keeps the request's
	// X-Forwarded-Proto and -Host and appends to X-Forwarded-For; from
	// others it replaces them.
	TrustedProxies []string       `json:"trusted_proxies,omitempty"`
	Headers        *proxyHeaders  `json:"headers,omitempty"`
	LoadBalancing  *loadBalancing `json:"load_balancing,omitempty"`
	HealthChecks   *healthChecks  `json:"health_checks,omitempty"`
	Upstreams      []upstream     `json:"upstreams"`
}

type loadBalancing struct {
	SelectionPolicy selectionPolicy `json:"selection_policy"`
	TryDuration     string          `json:"try_duration,omitempty"`
	TryInterval     string          `json:"try_interval,omitempty"`
}

type selectionPolicy struct {
	Policy string `json:"policy"`
}

type healthChecks struct {
	Active  *activeHealth  `json:"active,omitempty"`
	Passive *passiveHealth `json:"passive,omitempty"`
}

type activeHealth struct {
	URI          string              `json:"uri"`
	Headers      map[string][]string `json:"headers,omitempty"`
	Interval     string              `json:"interval"`
	Timeout      string              `json:"timeout"`
	ExpectStatus int                 `json:"expect_status,omitempty"`
}

type passiveHealth struct {
	FailDuration string `json:"fail_duration"`
	MaxFails     int    `json:"max_fails"`
}

type proxyHeaders struct {
	Request *headerOps `json:"request"`
}

type upstream struct {
	Dial string `json:"dial"`
}

// proxyTransport is a reverse_proxy transport module: *httpTransport or
// *fastcgiTransport.
type proxyTransport interface{ caddyTransport() }

// httpTransport is Caddy's default transport, spelled out to turn off
// connection reuse (see Render).
type httpTransport struct {
	Protocol  string         `json:"protocol"` // "http"
	KeepAlive *keepAliveConf `json:"keep_alive,omitempty"`
}

// keepAliveConf: MaxIdleConnsPerHost -1 makes Go's transport keep no
// idle connection at all while still speaking keep-alive HTTP/1.1 (no
// "Connection: close"); see singleUseTransport.
type keepAliveConf struct {
	MaxIdleConnsPerHost int    `json:"max_idle_conns_per_host,omitempty"`
	ProbeInterval       string `json:"probe_interval,omitempty"`
	IdleTimeout         string `json:"idle_timeout,omitempty"`
}

func (*httpTransport) caddyTransport()    {}
func (*fastcgiTransport) caddyTransport() {}

type fastcgiTransport struct {
	Protocol  string            `json:"protocol"` // "fastcgi"
	Root      string            `json:"root"`
	SplitPath []string          `json:"split_path"`
	Env       map[string]string `json:"env,omitempty"`
}

func (subrouteHandler) caddyHandler()     {}
func (staticResponse) caddyHandler()      {}
func (errorHandler) caddyHandler()        {}
func (headersHandler) caddyHandler()      {}
func (rewriteHandler) caddyHandler()      {}
func (fileServerHandler) caddyHandler()   {}
func (reverseProxyHandler) caddyHandler() {}

type tlsApp struct {
	Automation tlsAutomation `json:"automation"`
}

type tlsAutomation struct {
	Policies []automationPolicy `json:"policies"`
	OnDemand onDemandConf       `json:"on_demand"`
}

// automationPolicy without subjects applies to every name.
type automationPolicy struct {
	Issuers  []issuer `json:"issuers"`
	OnDemand bool     `json:"on_demand"`
}

// onDemandConf: before it obtains a certificate for a name a client asks
// for, Caddy GETs Ask?domain=NAME and goes on only on a 2xx.
type onDemandConf struct {
	Ask string `json:"ask"`
}

type issuer struct {
	Module string `json:"module"` // "acme" or "internal"
	// CA is the ACME directory URL ("" for Let's Encrypt).
	CA    string `json:"ca,omitempty"`
	Email string `json:"email,omitempty"`
	// TrustedRootsPEMFiles are the roots Caddy trusts for the ACME
	// server's own certificate (a private CA's).
	TrustedRootsPEMFiles []string `json:"trusted_roots_pem_files,omitempty"`
}

type pkiApp struct {
	CertificateAuthorities map[string]pkiCA `json:"certificate_authorities"`
}

type pkiCA struct {
	InstallTrust bool `json:"install_trust"`
}
