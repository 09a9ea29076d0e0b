// Package rackspace is the driver for Rackspace Cloud Servers, the
// provider toppcloud started with. Today that is OpenStack Nova behind
// Rackspace Identity (Keystone v2.0 with the RAX-KSKEY:apiKeyCredentials
// credential type: username and API key), so the work is done by the
// openstack package's Driver; this package adds the Rackspace specifics:
//
//   - authentication with the API key (see apiKeyAuth);
//   - the compute endpoint is the catalog's "cloudServersOpenStack"
//     service in the configured region (DFW, ORD, IAD, LON, SYD, HKG),
//     checked before any request;
//   - keys reach the server the way the seed did it: root's
//     authorized_keys (CreateRequest.AuthorizedKeys, one per line) and
//     CreateRequest.Files are uploaded as Nova personality files, written
//     into the image before first boot (at most 5 files);
//   - a server's "public" network holds its public addresses, "private"
//     (ServiceNet) its private ones.
//
// Node states map from Nova's statuses as documented in package openstack
// (BUILD -> pending, ACTIVE -> running, SHUTOFF/SUSPENDED/... -> stopped,
// DELETED -> terminated, ERROR -> error, anything else -> unknown).
package rackspace

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	gcopenstack "github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/openstack"
)

// Name is the provider type.
const Name = "rackspace"

// DefaultIdentityURL is Rackspace Identity's Keystone v2.0 endpoint.
const DefaultIdentityURL = "https://identity.api.rackspacecloud.com/v2.0/"

// ComputeService is the name of Rackspace's Nova service in the catalog
// (the catalog also lists the retired first-generation "cloudServers").
const ComputeService = "cloudServersOpenStack"

// Regions returns the Rackspace regions with Cloud Servers.
func Regions() []string { return []string{"DFW", "ORD", "IAD", "LON", "SYD", "HKG"} }

var options = []provider.Option{
	provider.OptUsername.With(func(o *provider.Option) {
		o.Help = "Rackspace account user name"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"RAX_USERNAME"}
	}),
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "Rackspace API key (control panel: Your Account > API Access)"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"RAX_API_KEY"}
	}),
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "region: " + strings.Join(Regions(), ", ")
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"RAX_REGION"}
	}),
	provider.OptEndpoint.With(func(o *provider.Option) {
		o.Help = "Rackspace Identity URL with its version path"
		o.Default = DefaultIdentityURL
	}),
	provider.OptImage,
	provider.OptSize,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Rackspace Cloud Servers (username and API key)",
		Options:      options,
		DefaultImage: "name first Debian 12*",
		DefaultSize:  "ram first 1024",
		New:          New,
	})
}

// Options are the settings of a [provider:NAME] section with
// provider = rackspace.
type Options struct {
	Username string `config:"username"`
	Secret   string `config:"secret"`
	Region   string `config:"region"`
	Endpoint string `config:"endpoint"`
	Image    string `config:"image"`
	Size     string `config:"size"`
}

// Driver is the Rackspace driver: the OpenStack driver configured for
// Rackspace.
type Driver struct {
	os *openstack.Driver
}

// New is the rackspace provider's constructor for the registry.
func New(env provider.Env) (provider.Driver, error) {
	return newFromEnv(env, nil)
}

// newFromEnv builds the driver; tune, if set, adjusts the OpenStack
// configuration (tests shorten the retry backoff with it).
func newFromEnv(env provider.Env, tune func(*openstack.Config)) (*Driver, error) {
	var o Options
	if err := env.Settings.Decode(&o); err != nil {
		return nil, err
	}
	region, err := checkRegion(o.Region)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(o.Username) == "" || o.Secret == "" {
		return nil, fmt.Errorf("username and secret (the API key) are required; set them in the provider section or $RAX_USERNAME and $RAX_API_KEY")
	}
	identity := o.Endpoint
	if identity == "" {
		identity = DefaultIdentityURL
	}
	u, err := url.Parse(identity)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v2.0") {
		return nil, fmt.Errorf("setting endpoint: %q is not a Keystone v2.0 URL like %s", identity, DefaultIdentityURL)
	}
	creds := apiKeyAuth{Username: strings.TrimSpace(o.Username), APIKey: o.Secret}
	cfg := openstack.Config{
		Provider:    Name,
		IdentityURL: identity,
		Authenticate: func(ctx context.Context, pc *gophercloud.ProviderClient) error {
			return gcopenstack.AuthenticateV2(ctx, pc, creds, gophercloud.EndpointOpts{})
		},
		Service:       gophercloud.EndpointOpts{Type: "compute", Name: ComputeService, Region: region},
		HTTPClient:    env.HTTPClient,
		Inject:        openstack.InjectPersonality,
		PublicNetwork: "public",
		Secrets:       []string{o.Secret},
	}
	if tune != nil {
		tune(&cfg)
	}
	d, err := openstack.NewDriver(cfg)
	if err != nil {
		return nil, err
	}
	return &Driver{os: d}, nil
}

// checkRegion normalizes a region name and refuses unknown ones, listing
// the known.
func checkRegion(r string) (string, error) {
	region := strings.ToUpper(strings.TrimSpace(r))
	if !slices.Contains(Regions(), region) {
		if region == "" {
			return "", fmt.Errorf("setting region is missing; Rackspace regions: %s: %w", strings.Join(Regions(), ", "), provider.ErrInvalid)
		}
		return "", fmt.Errorf("setting region: unknown Rackspace region %q; use one of %s: %w", r, strings.Join(Regions(), ", "), provider.ErrInvalid)
	}
	return region, nil
}

// ListImages lists the region's images.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	return d.os.ListImages(ctx)
}

// ListSizes lists the region's flavors.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	return d.os.ListSizes(ctx)
}

// ListNodes lists every server of the account in the region.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	return d.os.ListNodes(ctx)
}

// GetNode returns one server.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	return d.os.GetNode(ctx, id)
}

// CreateNode creates a server with root's authorized_keys and the
// request's files uploaded as personality files.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	return d.os.CreateNode(ctx, req)
}

// DestroyNode deletes a server.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	return d.os.DestroyNode(ctx, id)
}

var _ provider.Driver = (*Driver)(nil)
