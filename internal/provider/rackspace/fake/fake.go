// Package fake is Rackspace's cloud API for tests: the OpenStack fake
// (internal/provider/openstack/fake) configured the Rackspace way. It
// serves Rackspace Identity (Keystone v2.0 only, with the
// RAX-KSKEY:apiKeyCredentials credential type) and a catalog that lists
// the retired "cloudServers" service before "cloudServersOpenStack" with
// an endpoint per Rackspace region, each served by the fake's Nova.
//
// Point a [provider:NAME] section at it with
//
//	provider = rackspace
//	endpoint = <Server.IdentityV2()>     (http://127.0.0.1:PORT/identity/v2.0)
//	username = rackuser                  (DefaultUsername, or Options.Username)
//	secret   = <DefaultAPIKey>           (or Options.APIKey)
//	region   = DFW                       (any of Regions)
package fake

import (
	"fmt"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	osfake "github.com/toppcloud/toppcloud/internal/provider/openstack/fake"
)

// Server is the running fake; see the openstack fake for its methods
// (IdentityV2, FailNext, HangNext, ExpireTokens, AddServer, Created,
// Count, Close, ...).
type Server = osfake.Server

// Types shared with the openstack fake.
type (
	Image      = osfake.Image
	Flavor     = osfake.Flavor
	Address    = osfake.Address
	Created    = osfake.Created
	ServerSpec = osfake.ServerSpec
)

// Credentials the fake accepts by default.
const (
	DefaultUsername = "rackuser"
	DefaultAPIKey   = "0123456789abcdef0123456789abcdef"
	DefaultTenantID = "123456"
)

// Regions are the regions in the fake's catalog, as Rackspace's.
func Regions() []string { return []string{"DFW", "ORD", "IAD", "LON", "SYD", "HKG"} }

// Options configure the fake; the zero value is a Rackspace account with
// the Default* credentials.
type Options struct {
	Username, APIKey string
	// Password, if set, is also accepted as passwordCredentials.
	Password string
	TenantID string
	// AuthFailMessage replaces the message of 401 answers to token
	// requests.
	AuthFailMessage string

	// PageSize, BuildPolls, Images, Flavors, Addresses, MaxServers: as in
	// the openstack fake; Images and Flavors default to Rackspace-like
	// ones ("Debian 12 (Bookworm) (PVHVM)", "1 GB General Purpose v1").
	PageSize   int
	BuildPolls int
	Images     []Image
	Flavors    []Flavor
	Addresses  func(n int) []Address
	MaxServers int

	// Backend, BackendImage, BackendSize, BackendKeysFromPersonality: as
	// in the openstack fake. Personality files reach the backend as
	// CreateRequest.Files.
	Backend                    provider.Driver
	BackendImage               provider.Image
	BackendSize                provider.Size
	BackendKeysFromPersonality bool

	// Errorf reports requests the fake does not model (t.Errorf).
	Errorf func(format string, args ...any)
}

// New starts the fake on a loopback port.
func New(o Options) *Server {
	return osfake.New(openstackOptions(o))
}

// NewUnstarted returns the fake as an http.Handler whose catalog points at
// base, for mounting in your own server.
func NewUnstarted(o Options, base string) *Server {
	return osfake.NewUnstarted(openstackOptions(o), base)
}

func openstackOptions(o Options) osfake.Options {
	if o.Username == "" {
		o.Username = DefaultUsername
	}
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.TenantID == "" {
		o.TenantID = DefaultTenantID
	}
	if o.Images == nil {
		t := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
		o.Images = []Image{
			{ID: "a1b2c3d4-0000-4000-8000-000000000012", Name: "Debian 12 (Bookworm) (PVHVM)", Created: t},
			{ID: "a1b2c3d4-0000-4000-8000-000000000011", Name: "Debian 11 (Bullseye) (PVHVM)", Created: t.AddDate(-2, 0, 0)},
			{ID: "a1b2c3d4-0000-4000-8000-000000002404", Name: "Ubuntu 24.04 LTS (Noble Numbat) (PVHVM)", Created: t.AddDate(0, -2, 0)},
			{ID: "a1b2c3d4-0000-4000-8000-000000000009", Name: "CentOS Stream 9 (PVHVM)", Created: t.AddDate(0, -3, 0)},
		}
	}
	if o.Flavors == nil {
		o.Flavors = []Flavor{
			{ID: "2", Name: "512MB Standard Instance", RAM: 512, Disk: 20, VCPUs: 1},
			{ID: "3", Name: "1GB Standard Instance", RAM: 1024, Disk: 40, VCPUs: 1},
			{ID: "general1-1", Name: "1 GB General Purpose v1", RAM: 1024, Disk: 20, VCPUs: 1},
			{ID: "general1-2", Name: "2 GB General Purpose v1", RAM: 2048, Disk: 40, VCPUs: 2},
			{ID: "compute1-4", Name: "3.75 GB Compute v1", RAM: 3840, Disk: 0, VCPUs: 2},
		}
	}
	if o.Addresses == nil {
		o.Addresses = func(n int) []Address {
			return []Address{
				{Network: "public", Addr: fmt.Sprintf("2001:db8:1::%x", n), Version: 6},
				{Network: "public", Addr: fmt.Sprintf("198.51.100.%d", n%250+1), Version: 4},
				{Network: "private", Addr: fmt.Sprintf("10.176.0.%d", n%250+1), Version: 4},
			}
		}
	}
	return osfake.Options{
		Username:                   o.Username,
		Password:                   o.Password,
		NoPassword:                 o.Password == "",
		APIKey:                     o.APIKey,
		ProjectID:                  o.TenantID,
		ProjectName:                o.TenantID,
		IdentityVersions:           []string{"v2.0"},
		AuthFailMessage:            o.AuthFailMessage,
		RaxDefaultRegion:           "DFW",
		Regions:                    Regions(),
		ComputeName:                "cloudServersOpenStack",
		ComputeVersion:             "v2",
		DecoyCompute:               true,
		PageSize:                   o.PageSize,
		BuildPolls:                 o.BuildPolls,
		Images:                     o.Images,
		Flavors:                    o.Flavors,
		Addresses:                  o.Addresses,
		MaxServers:                 o.MaxServers,
		Backend:                    o.Backend,
		BackendImage:               o.BackendImage,
		BackendSize:                o.BackendSize,
		BackendKeysFromPersonality: o.BackendKeysFromPersonality,
		Errorf:                     o.Errorf,
	}
}
