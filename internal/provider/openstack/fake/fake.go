// Package fake is an OpenStack API for tests: Keystone v2.0 and v3 token
// issue (with a service catalog pointing back at this server) and the part
// of Nova the openstack and rackspace drivers use (flavors, images,
// servers, keypairs), with Nova's pagination links and error bodies. Any
// other request gets HTTP 501 and is reported through Options.Errorf, so a
// driver that starts calling something new fails its tests instead of
// drifting silently.
//
// With Options.Backend set, servers are real: creating one creates a node
// through another provider.Driver (the local provider in end-to-end tests),
// and the fake reports that node's state and addresses.
//
// The rackspace driver's fake (internal/provider/rackspace/fake) is this
// server configured the Rackspace way.
package fake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Defaults for the credentials the fake accepts.
const (
	DefaultUsername      = "demo"
	DefaultPassword      = "fake-password-123"
	DefaultUserID        = "u-0001"
	DefaultDomainName    = "Default"
	DefaultDomainID      = "default"
	DefaultProjectName   = "demo-project"
	DefaultProjectID     = "p0001"
	DefaultRegion        = "RegionOne"
	DefaultComputeName   = "nova"
	DefaultPageSize      = 2
	DefaultBuildPolls    = 2
	DefaultPersonalities = 5
)

// Image is an image the fake offers.
type Image struct {
	ID, Name string
	Created  time.Time
}

// Flavor is a flavor the fake offers.
type Flavor struct {
	ID, Name         string
	RAM, Disk, VCPUs int
}

// Address is one address of a server, in the network named Network.
type Address struct {
	Network string
	Addr    string
	Version int    // 4 or 6
	Type    string // "fixed" (default) or "floating"
}

// Options configure the fake. The zero value is a working one-region
// OpenStack cloud with the Default* credentials.
type Options struct {
	// Credentials the fake accepts. Empty Username, Password, UserID,
	// domains and project take the Default* values.
	Username, Password string
	// NoPassword refuses password credentials (Rackspace accounts used
	// with an API key).
	NoPassword bool
	// APIKey, if set, is accepted for Username as Rackspace's
	// RAX-KSKEY:apiKeyCredentials on Keystone v2.0.
	APIKey string
	UserID string
	// UserDomainName/ID and ProjectDomainName/ID: Keystone v3 domains.
	UserDomainName, UserDomainID       string
	ProjectDomainName, ProjectDomainID string
	// ProjectName and ProjectID are the project (v2.0: tenant).
	ProjectName, ProjectID string
	// AppCredID and AppCredSecret, if set, are an accepted v3 application
	// credential.
	AppCredID, AppCredSecret string
	// IdentityVersions served: "v2.0", "v3". Default both.
	IdentityVersions []string
	// AuthFailMessage replaces the message of 401 answers to token
	// requests. Tests use it to make the API echo something.
	AuthFailMessage string
	// RaxDefaultRegion adds Rackspace's "RAX-AUTH:defaultRegion" to v2.0
	// token answers.
	RaxDefaultRegion string

	// Regions with a compute endpoint in the catalog. Default RegionOne.
	Regions []string
	// ComputeName is the compute service's name in the catalog (Rackspace:
	// cloudServersOpenStack). Default "nova".
	ComputeName string
	// ComputeVersion is the version piece of compute URLs. Default "v2.1".
	ComputeVersion string
	// DecoyCompute lists, before the real one, a second service of type
	// compute under another name (Rackspace's old "cloudServers") whose
	// URLs are not modelled: a driver must select the service by name.
	DecoyCompute bool

	// PageSize is how many entries a list page holds at most. Default 2,
	// so pagination is always exercised.
	PageSize int
	// BuildPolls is how many GETs of a new server answer BUILD before it is
	// ACTIVE. Default 2.
	BuildPolls int
	// Images and Flavors offered (defaults: a few Debian/Ubuntu images and
	// m1.* flavors).
	Images  []Image
	Flavors []Flavor
	// Addresses gives the n-th server (from 1) its addresses when it
	// becomes ACTIVE. Default: public 203.0.113.n and 2001:db8::n, private
	// 10.0.0.n. AccessIPv4/6 are set to the first public addresses.
	Addresses func(n int) []Address
	// MaxServers is the instance quota; 0 means none.
	MaxServers int
	// MaxPersonality is the injected files quota. Default 5.
	MaxPersonality int
	// NoKeypairs makes os-keypairs answer 404, as on clouds without it.
	NoKeypairs bool

	// Backend, if set, makes servers real: see the package documentation.
	// BackendImage and BackendSize are passed to Backend.CreateNode in
	// place of the requested image and flavor.
	Backend      provider.Driver
	BackendImage provider.Image
	BackendSize  provider.Size
	// BackendKeysFromPersonality also passes the lines of a personality
	// file /root/.ssh/authorized_keys as CreateRequest.AuthorizedKeys (for
	// backends that insist on keys). The file is in CreateRequest.Files
	// either way.
	BackendKeysFromPersonality bool

	// Errorf reports requests the fake does not model (t.Errorf). Nil
	// records them only (see Unexpected).
	Errorf func(format string, args ...any)
}

// Created records a server create request as the fake received it.
type Created struct {
	ID, Name, Region     string
	ImageRef, FlavorRef  string
	KeyName              string
	Personality          map[string][]byte // path -> decoded contents
	UserData             []byte            // decoded
	Networks             []string          // network UUIDs
	AdminPassReturned    string
	BackendCreateRequest *provider.CreateRequest // with Backend set
}

// Keypair is a keypair as stored by the fake.
type Keypair struct {
	Name, PublicKey, Fingerprint string
}

// server is the fake's record of one Nova server.
type server struct {
	id, name, region   string
	imageRef, flavor   string
	keyName            string
	status             string
	fault              string
	polls              int
	ordinal            int
	created            time.Time
	addresses          []Address
	accessV4, accessV6 string

	// With a backend.
	backendID      string
	backendPending bool // CreateNode still running
	deleted        bool // deleted while CreateNode was running
}

type canned struct {
	status int
	header http.Header
	body   string
	hang   bool
}

// Server is a running fake API.
type Server struct {
	opts Options
	ts   *httptest.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	tokens     map[string]string // token -> project ID ("" unscoped)
	servers    []*server
	keypairs   map[string][]Keypair // region -> keypairs
	created    []Created
	next       []canned
	count      map[string]int // "METHOD /path" -> requests
	unexpected []string
	ordinal    int
}

// New starts a fake on a loopback port. Close it when done.
func New(o Options) *Server {
	s := newServer(o)
	s.ts = httptest.NewServer(s)
	return s
}

// NewUnstarted returns a fake that is an http.Handler but listens nowhere;
// mount it with Start or in your own server. Its catalog points at base
// (the URL it will be reachable at, no trailing slash).
func NewUnstarted(o Options, base string) *Server {
	s := newServer(o)
	s.ts = &httptest.Server{URL: strings.TrimSuffix(base, "/")}
	return s
}

func newServer(o Options) *Server {
	setDefaults(&o)
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:     o,
		ctx:      ctx,
		cancel:   cancel,
		tokens:   map[string]string{},
		keypairs: map[string][]Keypair{},
		count:    map[string]int{},
	}
}

func setDefaults(o *Options) {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.Username, DefaultUsername)
	if !o.NoPassword {
		def(&o.Password, DefaultPassword)
	}
	def(&o.UserID, DefaultUserID)
	def(&o.UserDomainName, DefaultDomainName)
	def(&o.UserDomainID, DefaultDomainID)
	def(&o.ProjectDomainName, DefaultDomainName)
	def(&o.ProjectDomainID, DefaultDomainID)
	def(&o.ProjectName, DefaultProjectName)
	def(&o.ProjectID, DefaultProjectID)
	def(&o.ComputeName, DefaultComputeName)
	def(&o.ComputeVersion, "v2.1")
	if len(o.IdentityVersions) == 0 {
		o.IdentityVersions = []string{"v2.0", "v3"}
	}
	if len(o.Regions) == 0 {
		o.Regions = []string{DefaultRegion}
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.BuildPolls < 0 {
		o.BuildPolls = 0
	} else if o.BuildPolls == 0 {
		o.BuildPolls = DefaultBuildPolls
	}
	if o.MaxPersonality == 0 {
		o.MaxPersonality = DefaultPersonalities
	}
	if o.Images == nil {
		t := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		o.Images = []Image{
			{ID: "11111111-0000-4000-8000-000000000001", Name: "debian-12-genericcloud-amd64", Created: t},
			{ID: "11111111-0000-4000-8000-000000000002", Name: "debian-11-genericcloud-amd64", Created: t.AddDate(-2, 0, 0)},
			{ID: "11111111-0000-4000-8000-000000000003", Name: "ubuntu-24.04-server-cloudimg-amd64", Created: t.AddDate(0, -1, 0)},
		}
	}
	if o.Flavors == nil {
		o.Flavors = []Flavor{
			{ID: "1", Name: "m1.tiny", RAM: 512, Disk: 1, VCPUs: 1},
			{ID: "2", Name: "m1.small", RAM: 2048, Disk: 20, VCPUs: 1},
			{ID: "3", Name: "m1.medium", RAM: 4096, Disk: 40, VCPUs: 2},
			{ID: "4", Name: "m1.large", RAM: 8192, Disk: 80, VCPUs: 4},
		}
	}
	if o.Addresses == nil {
		o.Addresses = func(n int) []Address {
			return []Address{
				{Network: "public", Addr: fmt.Sprintf("203.0.113.%d", n%250+1), Version: 4},
				{Network: "public", Addr: fmt.Sprintf("2001:db8::%x", n), Version: 6},
				{Network: "private", Addr: fmt.Sprintf("10.0.0.%d", n%250+1), Version: 4},
			}
		}
	}
}

// URL is the fake's root URL.
func (s *Server) URL() string { return s.ts.URL }

// IdentityV2 is the Keystone v2.0 URL, for the endpoint setting.
func (s *Server) IdentityV2() string { return s.ts.URL + "/identity/v2.0" }

// IdentityV3 is the Keystone v3 URL, for the endpoint setting.
func (s *Server) IdentityV3() string { return s.ts.URL + "/identity/v3" }

// ComputeURL is the compute endpoint the catalog gives for region.
func (s *Server) ComputeURL(region string) string {
	return fmt.Sprintf("%s/compute/%s/%s/%s", s.ts.URL, region, s.opts.ComputeVersion, s.opts.ProjectID)
}

// Options returns the options in effect (with defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Close stops the fake. With a backend it first waits for creates in
// flight and destroys the backend nodes of servers not deleted through the
// API, so a test leaves nothing behind.
func (s *Server) Close() {
	s.wg.Wait()
	if s.opts.Backend != nil {
		s.mu.Lock()
		var ids []string
		for _, sv := range s.servers {
			if sv.backendID != "" {
				ids = append(ids, sv.backendID)
			}
		}
		s.mu.Unlock()
		for _, id := range ids {
			_ = s.opts.Backend.DestroyNode(context.Background(), id)
		}
	}
	s.cancel()
	if s.ts.Listener != nil {
		s.ts.Close()
	}
}

// FailNext makes the next n requests (of any kind) fail with status and
// Nova's error body for it; 429, 413 and 503 carry "Retry-After: 0".
func (s *Server) FailNext(n, status int) {
	h := http.Header{"Content-Type": {"application/json"}}
	if status == http.StatusTooManyRequests || status == http.StatusRequestEntityTooLarge || status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "0")
	}
	wrapper, msg := errorKind(status)
	body, _ := json.Marshal(map[string]any{wrapper: map[string]any{"message": msg, "code": status}})
	s.RespondNext(n, status, h, string(body))
}

// RespondNext makes the next n requests get exactly this answer (garbage
// bodies, odd statuses).
func (s *Server) RespondNext(n, status int, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, canned{status: status, header: header, body: body})
	}
}

// HangNext makes the next n requests never get an answer (until the
// client gives up or the fake is closed).
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, canned{hang: true})
	}
}

// ExpireTokens makes every token issued so far invalid, as if they had
// expired: the next API call gets 401 and the client must authenticate
// again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// ServerSpec describes a server added with AddServer.
type ServerSpec struct {
	Region     string // default: the first region
	Name       string
	Status     string // default ACTIVE
	ImageRef   string
	FlavorRef  string
	Addresses  []Address
	AccessIPv4 string
	AccessIPv6 string
}

// AddServer adds a server directly (as if created earlier, by anyone) and
// returns its ID.
func (s *Server) AddServer(spec ServerSpec) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.Region == "" {
		spec.Region = s.opts.Regions[0]
	}
	if spec.Status == "" {
		spec.Status = "ACTIVE"
	}
	s.ordinal++
	sv := &server{
		id: newUUID(), name: spec.Name, region: spec.Region, imageRef: spec.ImageRef, flavor: spec.FlavorRef,
		status: spec.Status, ordinal: s.ordinal, created: time.Now().UTC(), addresses: spec.Addresses,
		accessV4: spec.AccessIPv4, accessV6: spec.AccessIPv6,
	}
	s.servers = append(s.servers, sv)
	return sv.id
}

// SetStatus changes a server's status (and stops its BUILD countdown).
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sv := range s.servers {
		if sv.id == id {
			sv.status = status
			sv.polls = s.opts.BuildPolls
		}
	}
}

// Created returns the server create requests received, in order.
func (s *Server) Created() []Created {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Created(nil), s.created...)
}

// Keypairs returns the keypairs of region.
func (s *Server) Keypairs(region string) []Keypair {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Keypair(nil), s.keypairs[region]...)
}

// Count returns how many requests with method had a path ending in
// suffix ("POST", "/tokens").
func (s *Server) Count(method, suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.count {
		m, path, _ := strings.Cut(k, " ")
		if m == method && strings.HasSuffix(path, suffix) {
			n += c
		}
	}
	return n
}

// Unexpected returns the requests that were not modelled.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.count[r.Method+" "+r.URL.Path]++
	var c *canned
	if len(s.next) > 0 {
		c = &s.next[0]
		s.next = s.next[1:]
	}
	s.mu.Unlock()
	if c != nil {
		if c.hang {
			select {
			case <-r.Context().Done():
			case <-s.ctx.Done():
			}
			return
		}
		for k, v := range c.header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.status)
		_, _ = w.Write([]byte(c.body))
		return
	}

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "identity":
		s.serveIdentity(w, r, parts[1:])
	case len(parts) >= 4 && parts[0] == "compute":
		s.serveCompute(w, r, parts[1], parts[2], parts[3], parts[4:])
	default:
		s.notModelled(w, r)
	}
}

// notModelled answers 501 and reports the request.
func (s *Server) notModelled(w http.ResponseWriter, r *http.Request) {
	what := r.Method + " " + r.URL.RequestURI()
	s.mu.Lock()
	s.unexpected = append(s.unexpected, what)
	s.mu.Unlock()
	if s.opts.Errorf != nil {
		s.opts.Errorf("openstack fake: request not modelled: %s", what)
	}
	writeError(w, http.StatusNotImplemented, "notImplemented", "not modelled by the fake: "+what)
}

// errorKind is Nova's wrapper name and a typical message for a status.
func errorKind(status int) (string, string) {
	switch status {
	case 400:
		return "badRequest", "Bad request."
	case 401:
		return "unauthorized", "The request you have made requires authentication."
	case 403:
		return "forbidden", "Policy doesn't allow this operation to be performed."
	case 404:
		return "itemNotFound", "The resource could not be found."
	case 409:
		return "conflictingRequest", "There was a conflict when trying to complete your request."
	case 413, 429:
		return "overLimit", "This request was rate-limited."
	case 503:
		return "serviceUnavailable", "Service Unavailable"
	}
	return "computeFault", "The server has either erred or is incapable of performing the requested operation."
}

// writeError writes an error body in Nova's format.
func writeError(w http.ResponseWriter, status int, wrapper, message string) {
	writeJSON(w, status, map[string]any{wrapper: map[string]any{"message": message, "code": status}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "tok" + hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
