// Package openstack is the driver for OpenStack clouds: Keystone (v3 or
// v2.0) for authentication and the service catalog, Nova for servers,
// through gophercloud. Its Driver is also the core of the rackspace driver,
// which differs only in how it authenticates and gets keys onto a server
// (see Config).
//
// Node states map from Nova's server status:
//
//	BUILD, REBUILD, REBOOT, HARD_REBOOT, PASSWORD, RESIZE, VERIFY_RESIZE,
//	REVERT_RESIZE, MIGRATING, PREP_RESIZE     -> pending
//	ACTIVE                                    -> running
//	SHUTOFF, STOPPED, SUSPENDED, PAUSED,
//	SHELVED, SHELVED_OFFLOADED                -> stopped
//	DELETED, SOFT_DELETED                     -> terminated
//	ERROR                                     -> error
//	anything else (RESCUE, UNKNOWN, ...)      -> unknown
//
// How public and private addresses are told apart is described at
// splitAddresses; the public_network option overrides the guess.
//
// Keys: with key_method keypair (the default) the first authorized key is
// imported as a Nova keypair named "toppcloud-<md5 fingerprint prefix>"
// (an existing keypair with the same fingerprint is reused; keypairs are
// kept after servers are destroyed, for reuse) and passed as key_name; all
// keys and CreateRequest.Files also go in cloud-init user data that lets
// root log in with them. When the keypair API answers 403, 404 or 501 the
// server is created with the user data alone. key_method user_data sends
// only the user data and never touches keypairs.
package openstack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	tokens2 "github.com/gophercloud/gophercloud/v2/openstack/identity/v2/tokens"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Name is the provider type.
const Name = "openstack"

var options = []provider.Option{
	provider.OptEndpoint.With(func(o *provider.Option) {
		o.Help = "Keystone URL with its version path, e.g. https://keystone.example.com:5000/v3 (v2.0 also works; no version means v3)"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"OS_AUTH_URL"}
	}),
	provider.OptUsername.With(func(o *provider.Option) {
		o.Help = "Keystone user name (not needed with an application credential)"
		o.Prompt = true
		o.EnvVars = []string{"OS_USERNAME"}
	}),
	{Name: "user_id", Help: "Keystone user ID, instead of username", EnvVars: []string{"OS_USER_ID"}},
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "Keystone password"
		o.Prompt = true
		o.EnvVars = []string{"OS_PASSWORD"}
	}),
	{Name: "project_name", Help: "project (tenant) name to work in", Prompt: true, EnvVars: []string{"OS_PROJECT_NAME", "OS_TENANT_NAME"}},
	{Name: "project_id", Help: "project (tenant) ID, instead of project_name", EnvVars: []string{"OS_PROJECT_ID", "OS_TENANT_ID"}},
	{Name: "user_domain_name", Help: "domain of the user (v3; Default when no user_domain_id)", EnvVars: []string{"OS_USER_DOMAIN_NAME"}},
	{Name: "user_domain_id", Help: "domain ID of the user (v3)", EnvVars: []string{"OS_USER_DOMAIN_ID"}},
	{Name: "project_domain_name", Help: "domain of the project (v3; Default when no project_domain_id)", EnvVars: []string{"OS_PROJECT_DOMAIN_NAME"}},
	{Name: "project_domain_id", Help: "domain ID of the project (v3)", EnvVars: []string{"OS_PROJECT_DOMAIN_ID"}},
	{Name: "application_credential_id", Help: "application credential ID (v3), instead of user and password", EnvVars: []string{"OS_APPLICATION_CREDENTIAL_ID"}},
	{Name: "application_credential_secret", Help: "application credential secret", Secret: true, EnvVars: []string{"OS_APPLICATION_CREDENTIAL_SECRET"}},
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "region name in the service catalog (may be empty when the cloud has one region)"
		o.Prompt = true
		o.EnvVars = []string{"OS_REGION_NAME"}
	}),
	{Name: "network", Help: "UUID of the network to attach new servers to (needed when the project has several)"},
	{Name: "public_network", Help: "name of the network whose addresses are public (default: guessed from names and address ranges)"},
	{Name: "key_method", Help: "how the SSH key reaches the server: keypair (import a Nova keypair, plus cloud-init) or user_data (cloud-init only)", Default: "keypair"},
	provider.OptImage,
	provider.OptSize,
	provider.OptSSHUser,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "any OpenStack cloud (Keystone v3 or v2.0, Nova)",
		Options:      options,
		DefaultImage: "name first *debian*12*",
		DefaultSize:  "ram first 2048",
		New:          New,
	})
}

// Options are the settings of a [provider:NAME] section with
// provider = openstack.
type Options struct {
	Endpoint          string `config:"endpoint"`
	Username          string `config:"username"`
	UserID            string `config:"user_id"`
	Secret            string `config:"secret"`
	ProjectName       string `config:"project_name"`
	ProjectID         string `config:"project_id"`
	UserDomainName    string `config:"user_domain_name"`
	UserDomainID      string `config:"user_domain_id"`
	ProjectDomainName string `config:"project_domain_name"`
	ProjectDomainID   string `config:"project_domain_id"`
	AppCredID         string `config:"application_credential_id"`
	AppCredSecret     string `config:"application_credential_secret"`
	Region            string `config:"region"`
	Network           string `config:"network"`
	PublicNetwork     string `config:"public_network"`
	KeyMethod         string `config:"key_method"`
	Image             string `config:"image"`
	Size              string `config:"size"`
	SSHUser           string `config:"ssh_user"`
}

// Config is what NewDriver needs. The openstack and rackspace drivers fill
// it from their settings.
type Config struct {
	// Provider names the provider in errors and in Node.Provider.
	Provider string
	// IdentityURL is the Keystone URL including its version path.
	IdentityURL string
	// Authenticate gets pc a token and a service catalog, typically with
	// gophercloud's openstack.AuthenticateV2 or AuthenticateV3 and
	// re-authentication allowed, so an expired token is renewed on a 401.
	Authenticate func(ctx context.Context, pc *gophercloud.ProviderClient) error
	// Service selects the compute endpoint in the catalog (Type "compute"
	// when empty; Name and Region as the cloud needs).
	Service gophercloud.EndpointOpts
	// HTTPClient carries every request (the CLI's, with --debug-api and
	// timeouts). Nil means http.DefaultClient.
	HTTPClient *http.Client
	// Inject is how keys and files reach a new server.
	Inject Injection
	// Network, if set, is the UUID of the network new servers attach to.
	Network string
	// PublicNetwork names the network whose addresses are public.
	PublicNetwork string
	// SSHUser is the login user on new nodes; "" or "root" means root.
	SSHUser string
	// Secrets are removed from every error message we produce.
	Secrets []string
	// MaxTries bounds attempts for a request refused with 429/5xx
	// (default 5); RetryBase is the first backoff when the API sends no
	// Retry-After (default 1s, doubling); a Retry-After longer than
	// MaxRetryWait (default 2m) is not waited for.
	MaxTries     int
	RetryBase    time.Duration
	MaxRetryWait time.Duration
}

// Driver talks to Nova through gophercloud. It authenticates on first use
// and keeps the token, renewing it when the API says it expired.
type Driver struct {
	cfg   Config
	retry retryPolicy

	authMu sync.Mutex // one authentication at a time
	sc     atomic.Pointer[gophercloud.ServiceClient]
}

// New is the openstack provider's constructor for the registry.
func New(env provider.Env) (provider.Driver, error) {
	return newFromEnv(env, nil)
}

// newFromEnv builds the driver; tune, if set, adjusts the Config (tests
// shorten the retry backoff with it).
func newFromEnv(env provider.Env, tune func(*Config)) (*Driver, error) {
	var o Options
	if err := env.Settings.Decode(&o); err != nil {
		return nil, err
	}
	identity, v3, err := identityURL(o.Endpoint)
	if err != nil {
		return nil, err
	}
	cfg := Config{
		Provider:      Name,
		IdentityURL:   identity,
		Service:       gophercloud.EndpointOpts{Type: "compute", Region: o.Region},
		HTTPClient:    env.HTTPClient,
		Network:       o.Network,
		PublicNetwork: o.PublicNetwork,
		SSHUser:       o.SSHUser,
		Secrets:       []string{o.Secret, o.AppCredSecret},
	}
	switch strings.ToLower(o.KeyMethod) {
	case "", "keypair":
		cfg.Inject = InjectKeypair
	case "user_data", "userdata", "cloud-init":
		cfg.Inject = InjectUserData
	default:
		return nil, fmt.Errorf("setting key_method: %q is not keypair or user_data", o.KeyMethod)
	}
	if o.Network != "" && !uuidRE.MatchString(o.Network) {
		return nil, fmt.Errorf("setting network: %q is not a network UUID (openstack network list shows them)", o.Network)
	}

	appCred := o.AppCredID != ""
	switch {
	case appCred && o.AppCredSecret == "":
		return nil, fmt.Errorf("setting application_credential_secret is missing (or $OS_APPLICATION_CREDENTIAL_SECRET); it goes with application_credential_id")
	case appCred && !v3:
		return nil, fmt.Errorf("application credentials need Keystone v3, but endpoint %s is v2.0", identity)
	case !appCred && (o.Username == "" && o.UserID == "" || o.Secret == ""):
		return nil, fmt.Errorf("no credentials: set username (or user_id) and secret, or application_credential_id and application_credential_secret (or the OS_* environment variables)")
	}

	if v3 {
		ao := gophercloud.AuthOptions{IdentityEndpoint: identity, AllowReauth: true}
		if appCred {
			ao.ApplicationCredentialID = o.AppCredID
			ao.ApplicationCredentialSecret = o.AppCredSecret
		} else {
			ao.Password = o.Secret
			if o.UserID != "" {
				ao.UserID = o.UserID
			} else {
				ao.Username = o.Username
				ao.DomainID = o.UserDomainID
				ao.DomainName = o.UserDomainName
				if ao.DomainID == "" && ao.DomainName == "" {
					ao.DomainName = "Default"
				}
			}
			scope := &gophercloud.AuthScope{}
			switch {
			case o.ProjectID != "":
				scope.ProjectID = o.ProjectID
			case o.ProjectName != "":
				scope.ProjectName = o.ProjectName
				scope.DomainID = o.ProjectDomainID
				scope.DomainName = o.ProjectDomainName
				if scope.DomainID == "" && scope.DomainName == "" {
					scope.DomainName = "Default"
				}
			}
			ao.Scope = scope
		}
		cfg.Authenticate = func(ctx context.Context, pc *gophercloud.ProviderClient) error {
			opts := ao
			return openstack.AuthenticateV3(ctx, pc, &opts, gophercloud.EndpointOpts{})
		}
	} else {
		ao := tokens2.AuthOptions{
			IdentityEndpoint: identity,
			Username:         o.Username,
			Password:         o.Secret,
			TenantID:         o.ProjectID,
			TenantName:       o.ProjectName,
			AllowReauth:      true,
		}
		if ao.Username == "" {
			return nil, fmt.Errorf("setting username: Keystone v2.0 needs a user name (user_id works only with v3)")
		}
		cfg.Authenticate = func(ctx context.Context, pc *gophercloud.ProviderClient) error {
			return openstack.AuthenticateV2(ctx, pc, ao, gophercloud.EndpointOpts{})
		}
	}
	if tune != nil {
		tune(&cfg)
	}
	return NewDriver(cfg)
}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
	versionRE = regexp.MustCompile(`/v(2\.0|3(\.\d+)?)/?$`)
)

// identityURL checks the endpoint and says whether it is Keystone v3. An
// endpoint without a version path gets /v3 appended.
func identityURL(raw string) (string, bool, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, fmt.Errorf("setting endpoint: %q is not an http(s) URL of Keystone, e.g. https://keystone.example.com:5000/v3", raw)
	}
	m := versionRE.FindStringSubmatch(u.Path)
	if m == nil {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v3"
		return u.String(), true, nil
	}
	return u.String(), m[1] != "2.0", nil
}

// NewDriver returns a driver for cfg. It does no I/O.
func NewDriver(cfg Config) (*Driver, error) {
	if cfg.Provider == "" || cfg.IdentityURL == "" || cfg.Authenticate == nil {
		return nil, errors.New("openstack: NewDriver needs Provider, IdentityURL and Authenticate")
	}
	if cfg.Inject == 0 {
		cfg.Inject = InjectKeypair
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Service.Type == "" {
		cfg.Service.Type = "compute"
	}
	cfg.Service.ApplyDefaults(cfg.Service.Type)
	if cfg.SSHUser == "root" {
		cfg.SSHUser = ""
	}
	d := &Driver{cfg: cfg, retry: retryPolicy{maxTries: cfg.MaxTries, base: cfg.RetryBase, maxWait: cfg.MaxRetryWait}}
	if d.retry.maxTries <= 0 {
		d.retry.maxTries = 5
	}
	if d.retry.base <= 0 {
		d.retry.base = time.Second
	}
	if d.retry.maxWait <= 0 {
		d.retry.maxWait = 2 * time.Minute
	}
	return d, nil
}

// compute returns the authenticated compute client, authenticating first
// if needed. A failed authentication is not remembered: the next call
// tries again.
func (d *Driver) compute(ctx context.Context) (*gophercloud.ServiceClient, error) {
	if sc := d.sc.Load(); sc != nil {
		return sc, nil
	}
	d.authMu.Lock()
	defer d.authMu.Unlock()
	if sc := d.sc.Load(); sc != nil {
		return sc, nil
	}
	pc, err := openstack.NewClient(d.cfg.IdentityURL)
	if err != nil {
		return nil, fmt.Errorf("%s: identity URL %s: %w", d.cfg.Provider, d.cfg.IdentityURL, err)
	}
	pc.HTTPClient = *d.cfg.HTTPClient
	pc.RetryFunc = d.retry.retry
	pc.UserAgent.Prepend("toppcloud/" + version.Version)
	if err := d.cfg.Authenticate(ctx, pc); err != nil {
		return nil, d.apiError(ctx, "authenticate at "+d.cfg.IdentityURL, err)
	}
	endpoint, err := pc.EndpointLocator(d.cfg.Service)
	if err != nil {
		return nil, d.endpointError(pc, err)
	}
	sc := &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: endpoint, Type: d.cfg.Service.Type}
	d.sc.Store(sc)
	return sc, nil
}

// endpointError explains a failed catalog lookup with what the catalog
// does offer.
func (d *Driver) endpointError(pc *gophercloud.ProviderClient, err error) error {
	svc := d.cfg.Service
	want := svc.Type
	if svc.Name != "" {
		want += " service " + svc.Name
	}
	regions := CatalogRegions(pc.GetAuthResult(), svc.Type, svc.Name)
	if len(regions) == 0 {
		return fmt.Errorf("%s: the service catalog has no %s endpoint (is the project set? is compute enabled for it?): %w", d.cfg.Provider, want, provider.ErrInvalid)
	}
	if svc.Region == "" {
		return fmt.Errorf("%s: no %s endpoint without a region; set region to one of: %s: %w", d.cfg.Provider, want, strings.Join(regions, ", "), provider.ErrInvalid)
	}
	return fmt.Errorf("%s: no %s endpoint in region %q; the catalog offers: %s: %w", d.cfg.Provider, want, svc.Region, strings.Join(regions, ", "), provider.ErrInvalid)
}

// CatalogRegions lists the regions in which the catalog of an auth result
// offers a service of type typ (and name, when not empty).
func CatalogRegions(r gophercloud.AuthResult, typ, name string) []string {
	var regions []string
	addRegion := func(r string) {
		if r != "" && !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	switch r := r.(type) {
	case tokens2.CreateResult:
		if cat, err := r.ExtractServiceCatalog(); err == nil {
			for _, e := range cat.Entries {
				if e.Type == typ && (name == "" || e.Name == name) {
					for _, ep := range e.Endpoints {
						addRegion(ep.Region)
					}
				}
			}
		}
	case tokens3.CreateResult:
		if cat, err := r.ExtractServiceCatalog(); err == nil {
			for _, e := range cat.Entries {
				if e.Type == typ && (name == "" || e.Name == name) {
					for _, ep := range e.Endpoints {
						addRegion(cmp.Or(ep.Region, ep.RegionID))
					}
				}
			}
		}
	}
	slices.Sort(regions)
	return regions
}

// eachPage walks a pager, bounded by maxPages.
func eachPage(ctx context.Context, p pagination.Pager, f func(pagination.Page) error) error {
	n := 0
	return p.EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
		n++
		if n > maxPages {
			return false, errTooManyPages
		}
		return true, f(page)
	})
}

// ListImages lists the active images (Nova's image list).
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	sc, err := d.compute(ctx)
	if err != nil {
		return nil, err
	}
	var out []provider.Image
	err = eachPage(ctx, listImages(sc), func(p pagination.Page) error {
		images, err := extractImages(p)
		if err != nil {
			return err
		}
		for _, im := range images {
			if im.Status != "" && !strings.EqualFold(im.Status, "ACTIVE") {
				continue
			}
			img := provider.Image{ID: im.ID, Name: im.Name}
			if img.Name == "" {
				img.Name = im.ID
			}
			if t, err := time.Parse(time.RFC3339, im.Created); err == nil {
				img.Created = t
			}
			if im.MinRAM > 0 {
				img.Note = fmt.Sprintf("needs %d MB RAM", im.MinRAM)
			}
			out = append(out, img)
		}
		return nil
	})
	if err != nil {
		return nil, d.apiError(ctx, "list images", err)
	}
	return out, nil
}

// ListSizes lists the flavors.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	sc, err := d.compute(ctx)
	if err != nil {
		return nil, err
	}
	var out []provider.Size
	err = eachPage(ctx, flavors.ListDetail(sc, nil), func(p pagination.Page) error {
		list, err := flavors.ExtractFlavors(p)
		if err != nil {
			return err
		}
		for _, f := range list {
			s := provider.Size{ID: f.ID, Name: f.Name, RAMMB: f.RAM, DiskGB: f.Disk, VCPUs: f.VCPUs}
			if s.Name == "" {
				s.Name = f.ID
			}
			if f.Disk == 0 {
				s.Note = "no root disk (boot from volume)"
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, d.apiError(ctx, "list sizes", err)
	}
	return out, nil
}

// ListNodes lists every server of the project in the region.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	sc, err := d.compute(ctx)
	if err != nil {
		return nil, err
	}
	var out []provider.Node
	err = eachPage(ctx, servers.List(sc, servers.ListOpts{}), func(p pagination.Page) error {
		list, err := servers.ExtractServers(p)
		if err != nil {
			return err
		}
		for i := range list {
			out = append(out, d.node(&list[i]))
		}
		return nil
	})
	if err != nil {
		return nil, d.apiError(ctx, "list servers", err)
	}
	return out, nil
}

// GetNode returns one server.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	if id == "" {
		return provider.Node{}, fmt.Errorf("%s: get server: empty ID: %w", d.cfg.Provider, provider.ErrInvalid)
	}
	sc, err := d.compute(ctx)
	if err != nil {
		return provider.Node{}, err
	}
	s, err := servers.Get(ctx, sc, url.PathEscape(id)).Extract()
	if err != nil {
		return provider.Node{}, d.apiError(ctx, "get server "+id, err)
	}
	return d.node(s), nil
}

// CreateNode creates a server and returns it pending. Keys go in as
// cfg.Inject says.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	if err := provider.ValidateHostname(req.Name); err != nil {
		return provider.Node{}, fmt.Errorf("%s: create server: %w", d.cfg.Provider, err)
	}
	if req.Image.ID == "" || req.Size.ID == "" {
		return provider.Node{}, fmt.Errorf("%s: create server %s: an image and a size are required: %w", d.cfg.Provider, req.Name, provider.ErrInvalid)
	}
	if len(req.AuthorizedKeys) == 0 {
		return provider.Node{}, fmt.Errorf("%s: create server %s: no authorized keys, nobody could log in: %w", d.cfg.Provider, req.Name, provider.ErrInvalid)
	}
	opts := servers.CreateOpts{Name: req.Name, ImageRef: req.Image.ID, FlavorRef: req.Size.ID}
	if d.cfg.Network != "" {
		opts.Networks = []servers.Network{{UUID: d.cfg.Network}}
	}
	switch d.cfg.Inject {
	case InjectPersonality:
		files, err := personality(req)
		if err != nil {
			return provider.Node{}, fmt.Errorf("%s: create server %s: %w", d.cfg.Provider, req.Name, err)
		}
		opts.Personality = files
	default:
		ud, err := cloudConfig(req.AuthorizedKeys, req.Files)
		if err != nil {
			return provider.Node{}, fmt.Errorf("%s: create server %s: %w", d.cfg.Provider, req.Name, err)
		}
		opts.UserData = ud
	}
	sc, err := d.compute(ctx)
	if err != nil {
		return provider.Node{}, err
	}
	var builder servers.CreateOptsBuilder = opts
	if d.cfg.Inject == InjectKeypair {
		name, err := d.ensureKeypair(ctx, sc, req.AuthorizedKeys[0])
		var ae *provider.APIError
		switch {
		case errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusNotImplemented ||
			(ae.Status == http.StatusForbidden && !errors.Is(err, provider.ErrQuota))):
			// No keypair API here, or not for us: the user data alone
			// carries the keys.
		case err != nil:
			return provider.Node{}, fmt.Errorf("create server %s: %w", req.Name, err)
		default:
			builder = keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: name}
		}
	}
	s, err := servers.Create(ctx, sc, builder, nil).Extract()
	if err != nil {
		return provider.Node{}, d.apiError(ctx, "create server "+req.Name, err)
	}
	if s.ID == "" {
		return provider.Node{}, &provider.APIError{Provider: d.cfg.Provider, Op: "create server " + req.Name, Message: "the API accepted the server but returned no ID"}
	}
	n := d.node(s)
	// The create response carries little more than the ID.
	n.Name = req.Name
	n.State = provider.StatePending
	n.Image, n.Size = req.Image.ID, req.Size.ID
	return n, nil
}

// DestroyNode deletes a server.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%s: delete server: empty ID: %w", d.cfg.Provider, provider.ErrInvalid)
	}
	sc, err := d.compute(ctx)
	if err != nil {
		return err
	}
	if err := servers.Delete(ctx, sc, url.PathEscape(id)).ExtractErr(); err != nil {
		return d.apiError(ctx, "delete server "+id, err)
	}
	return nil
}

// node converts a Nova server.
func (d *Driver) node(s *servers.Server) provider.Node {
	pub, priv := splitAddresses(s, d.cfg.PublicNetwork)
	n := provider.Node{
		ID:         s.ID,
		Name:       s.Name,
		State:      MapState(s.Status),
		PublicIPs:  pub,
		PrivateIPs: priv,
		Provider:   d.cfg.Provider,
		SSHUser:    d.cfg.SSHUser,
	}
	if id, ok := s.Image["id"].(string); ok {
		n.Image = id
	}
	if id, ok := s.Flavor["id"].(string); ok {
		n.Size = id
	} else if name, ok := s.Flavor["original_name"].(string); ok {
		n.Size = name
	}
	return n
}

// MapState maps a Nova server status onto provider.State; the table is in
// the package documentation.
func MapState(status string) provider.State {
	switch strings.ToUpper(status) {
	case "BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "PASSWORD", "RESIZE", "VERIFY_RESIZE", "REVERT_RESIZE", "MIGRATING", "PREP_RESIZE":
		return provider.StatePending
	case "ACTIVE":
		return provider.StateRunning
	case "SHUTOFF", "STOPPED", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED":
		return provider.StateStopped
	case "DELETED", "SOFT_DELETED":
		return provider.StateTerminated
	case "ERROR":
		return provider.StateError
	}
	return provider.StateUnknown
}

// apiError turns an error from gophercloud into a *provider.APIError
// carrying the API's own message and our sentinel, with secrets removed.
func (d *Driver) apiError(ctx context.Context, op string, err error) error {
	secrets := slices.Clone(d.cfg.Secrets)
	if sc := d.sc.Load(); sc != nil {
		secrets = append(secrets, sc.Token())
	}
	return redact(d.toAPIError(ctx, op, err), secrets)
}

func (d *Driver) toAPIError(ctx context.Context, op string, err error) error {
	var reauth *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &reauth) {
		err = reauth.ErrReauth
		op += " (renewing the token)"
	}
	var rc gophercloud.ErrUnexpectedResponseCode
	switch {
	case errors.As(err, &rc):
		wrapper, msg := errorBody(rc.Body)
		kind := kindFor(rc.Actual, wrapper, msg, rc.ResponseHeader)
		switch {
		case errors.Is(kind, provider.ErrAuth) && rc.Actual == http.StatusUnauthorized:
			msg = strings.TrimSuffix(msg, ".") + "; check the credentials in the provider section"
		case errors.Is(kind, provider.ErrRateLimited):
			msg = strings.TrimSuffix(msg, ".") + "; still refused after retrying, try again later"
		}
		return &provider.APIError{Provider: d.cfg.Provider, Op: op, Status: rc.Actual, Message: msg, Kind: kind}
	case errors.Is(err, errTooManyPages):
		return &provider.APIError{Provider: d.cfg.Provider, Op: op, Message: err.Error()}
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %s: %w", d.cfg.Provider, op, ctx.Err())
	case isTimeout(err):
		return fmt.Errorf("%s: %s: the API did not answer in time (check the endpoint and the network): %w", d.cfg.Provider, op, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %s: %w", d.cfg.Provider, op, err)
	}
	var ep *gophercloud.ErrEndpointNotFound
	if errors.As(err, &ep) {
		return fmt.Errorf("%s: %s: %w", d.cfg.Provider, op, err)
	}
	// What is left is a body gophercloud could not read: HTML from a
	// proxy, truncated JSON, a JSON shape other than Nova's.
	return &provider.APIError{Provider: d.cfg.Provider, Op: op, Message: "unexpected response from the API (" + err.Error() + "); check that endpoint is the Keystone URL of an OpenStack cloud"}
}

// redactedError hides secrets in an error's text but keeps the error
// chain, so errors.Is still finds sentinels and context errors.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	if ae, ok := err.(*provider.APIError); ok {
		c := *ae
		c.Op = redactString(c.Op, secrets)
		c.Message = redactString(c.Message, secrets)
		return &c
	}
	msg := redactString(err.Error(), secrets)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

func redactString(msg string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

var _ provider.Driver = (*Driver)(nil)
