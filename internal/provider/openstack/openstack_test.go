package openstack

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/openstack/fake"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

func newFake(t *testing.T, o fake.Options) *fake.Server {
	t.Helper()
	o.Errorf = t.Errorf
	s := fake.New(o)
	t.Cleanup(s.Close)
	return s
}

// env builds the provider environment for a section; OS_* variables of the
// machine running the tests are never consulted.
func env(raw map[string]string, client *http.Client) provider.Env {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return provider.Env{
		Section:    "test",
		Settings:   provider.Resolve(options, raw, func(string) string { return "" }),
		HTTPClient: client,
	}
}

// v3Settings are the settings of a section pointed at the fake's Keystone
// v3 with password credentials.
func v3Settings(s *fake.Server) map[string]string {
	return map[string]string{
		"endpoint":     s.IdentityV3(),
		"username":     fake.DefaultUsername,
		"secret":       fake.DefaultPassword,
		"project_name": fake.DefaultProjectName,
	}
}

func v2Settings(s *fake.Server) map[string]string {
	return map[string]string{
		"endpoint":     s.IdentityV2(),
		"username":     fake.DefaultUsername,
		"secret":       fake.DefaultPassword,
		"project_name": fake.DefaultProjectName,
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func fastRetry(c *Config) { c.RetryBase = time.Millisecond }

func newDriver(t *testing.T, raw map[string]string) *Driver {
	t.Helper()
	d, err := newFromEnv(env(raw, nil), fastRetry)
	if err != nil {
		t.Fatalf("new driver: %v", err)
	}
	return d
}

// checkKeypairKey verifies that the last create carried key as a keypair
// and in cloud-init user data for root.
func checkKeypairKey(s *fake.Server) func(t *testing.T, d provider.Driver, n provider.Node, key string) {
	return func(t *testing.T, d provider.Driver, n provider.Node, key string) {
		created := s.Created()
		i := slices.IndexFunc(created, func(c fake.Created) bool { return c.ID == n.ID })
		if i < 0 {
			t.Fatalf("fake has no create record for %s", n.ID)
		}
		c := created[i]
		kps := s.Keypairs(c.Region)
		k := slices.IndexFunc(kps, func(kp fake.Keypair) bool { return kp.Name == c.KeyName })
		if c.KeyName == "" || k < 0 {
			t.Fatalf("server created with key_name %q, keypairs %+v", c.KeyName, kps)
		}
		if !sameKey(kps[k].PublicKey, key) {
			t.Errorf("keypair %s holds %q, want %q", c.KeyName, kps[k].PublicKey, key)
		}
		ud := string(c.UserData)
		if !strings.HasPrefix(ud, "#cloud-config\n") || !strings.Contains(ud, key) || !strings.Contains(ud, `"disable_root":false`) {
			t.Errorf("user data does not let root in with the key:\n%s", ud)
		}
	}
}

func TestDriver_ConformanceV3(t *testing.T) {
	var s *fake.Server
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			s = newFake(t, fake.Options{})
			return newDriver(t, v3Settings(s))
		},
		NewBadAuth: func(t *testing.T) provider.Driver {
			s := newFake(t, fake.Options{})
			return newDriver(t, with(v3Settings(s), "secret", "wrong-password"))
		},
		Image: "name first *debian*12*",
		Size:  "ram first 2048",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			checkKeypairKey(s)(t, d, n, key)
		},
	})
}

func TestDriver_ConformanceV2(t *testing.T) {
	var s *fake.Server
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			s = newFake(t, fake.Options{})
			return newDriver(t, v2Settings(s))
		},
		NewBadAuth: func(t *testing.T) provider.Driver {
			s := newFake(t, fake.Options{})
			return newDriver(t, with(v2Settings(s), "username", "nobody"))
		},
		Image: "name debian-12-genericcloud-amd64",
		Size:  "name m1.small",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			checkKeypairKey(s)(t, d, n, key)
		},
	})
}

// The fake backed by another driver: creates reach the backend with the
// key, and the fake reports the backend node's state.
func TestDriver_ConformanceWithBackend(t *testing.T) {
	var mem *providertest.Memory
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			mem = providertest.NewMemory()
			mem.PendingPolls = 1
			s := newFake(t, fake.Options{Backend: mem, BackendImage: provider.Image{ID: "img-1"}, BackendSize: provider.Size{ID: "s-1"}})
			return newDriver(t, with(v3Settings(s), "key_method", "user_data"))
		},
		SkipBadAuth: "covered by TestDriver_ConformanceV3",
		Image:       "name first *debian*12*",
		Size:        "ram first 2048",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			if len(mem.Created) != 1 {
				t.Fatalf("backend got %d creates, want 1", len(mem.Created))
			}
			req := mem.Created[0]
			if req.Name != n.Name || req.Image.ID != "img-1" || req.Size.ID != "s-1" {
				t.Errorf("backend request = %+v", req)
			}
			if !slices.Contains(req.AuthorizedKeys, key) {
				t.Errorf("backend AuthorizedKeys = %q, want %q in it", req.AuthorizedKeys, key)
			}
			if n.Address() != "127.0.0.1" {
				t.Errorf("node address %q, want the backend's 127.0.0.1", n.Address())
			}
		},
	})
}

func TestDriver_ApplicationCredential(t *testing.T) {
	s := newFake(t, fake.Options{AppCredID: "ac-1", AppCredSecret: "ac-secret-1"})
	raw := map[string]string{"endpoint": s.IdentityV3(), "application_credential_id": "ac-1", "application_credential_secret": "ac-secret-1"}
	if _, err := newDriver(t, raw).ListNodes(context.Background()); err != nil {
		t.Fatalf("ListNodes with an application credential: %v", err)
	}
	_, err := newDriver(t, with(raw, "application_credential_secret", "nope")).ListNodes(context.Background())
	if !errors.Is(err, provider.ErrAuth) {
		t.Fatalf("bad application credential: %v, want ErrAuth", err)
	}
}

func TestDriver_Domains(t *testing.T) {
	s := newFake(t, fake.Options{UserDomainName: "people", ProjectDomainID: "d-projects"})
	raw := with(v3Settings(s), "user_domain_name", "people", "project_domain_id", "d-projects")
	if _, err := newDriver(t, raw).ListSizes(context.Background()); err != nil {
		t.Fatalf("ListSizes with domains: %v", err)
	}
	// Without the user domain the driver assumes Default, which this cloud
	// does not have for the user.
	_, err := newDriver(t, with(v3Settings(s), "project_domain_id", "d-projects")).ListSizes(context.Background())
	if !errors.Is(err, provider.ErrAuth) {
		t.Fatalf("wrong user domain: %v, want ErrAuth", err)
	}
	// By IDs.
	raw = map[string]string{"endpoint": s.IdentityV3(), "user_id": fake.DefaultUserID, "secret": fake.DefaultPassword, "project_id": fake.DefaultProjectID}
	if _, err := newDriver(t, raw).ListSizes(context.Background()); err != nil {
		t.Fatalf("ListSizes with user_id and project_id: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	if err := provider.CheckOptionFields(options, Options{}); err != nil {
		t.Fatal(err)
	}
	info, ok := provider.Lookup(Name)
	if !ok {
		t.Fatal("openstack is not registered")
	}
	for _, want := range []string{"endpoint", "username", "secret", "project_name", "region"} {
		i := slices.IndexFunc(info.Options, func(o provider.Option) bool { return o.Name == want })
		if i < 0 || !info.Options[i].Prompt {
			t.Errorf("option %s missing or not prompted", want)
		}
	}
	s := newFake(t, fake.Options{})
	d, err := provider.Open(Name, env(v3Settings(s), nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListImages(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOptions_EnvFallback(t *testing.T) {
	s := newFake(t, fake.Options{})
	envs := map[string]string{
		"OS_AUTH_URL":     s.IdentityV3(),
		"OS_USERNAME":     fake.DefaultUsername,
		"OS_PASSWORD":     fake.DefaultPassword,
		"OS_PROJECT_NAME": fake.DefaultProjectName,
		"OS_REGION_NAME":  fake.DefaultRegion,
	}
	e := provider.Env{Settings: provider.Resolve(options, nil, func(k string) string { return envs[k] }), HTTPClient: http.DefaultClient}
	d, err := New(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListSizes(context.Background()); err != nil {
		t.Fatalf("ListSizes with OS_* variables: %v", err)
	}
}

func TestNew_BadSettings(t *testing.T) {
	base := map[string]string{"endpoint": "https://keystone.example.com/v3", "username": "u", "secret": "p"}
	tests := []struct {
		name string
		raw  map[string]string
		want string
	}{
		{"no credentials", map[string]string{"endpoint": "https://k.example.com/v3"}, "no credentials"},
		{"app cred without secret", map[string]string{"endpoint": "https://k.example.com/v3", "application_credential_id": "x"}, "application_credential_secret"},
		{"app cred on v2", map[string]string{"endpoint": "https://k.example.com/v2.0", "application_credential_id": "x", "application_credential_secret": "y"}, "need Keystone v3"},
		{"bad endpoint", with(base, "endpoint", "keystone.example.com"), "not an http(s) URL"},
		{"bad key method", with(base, "key_method", "carrier-pigeon"), "key_method"},
		{"network name", with(base, "network", "my-net"), "not a network UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(env(tt.raw, nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestIdentityURL(t *testing.T) {
	tests := []struct {
		in   string
		want string
		v3   bool
	}{
		{"https://k.example.com:5000/v3", "https://k.example.com:5000/v3", true},
		{"https://k.example.com:5000/v3/", "https://k.example.com:5000/v3/", true},
		{"https://k.example.com/identity/v3.14", "https://k.example.com/identity/v3.14", true},
		{"https://k.example.com:5000/v2.0", "https://k.example.com:5000/v2.0", false},
		{"https://identity.api.rackspacecloud.com/v2.0/", "https://identity.api.rackspacecloud.com/v2.0/", false},
		{"https://k.example.com:5000", "https://k.example.com:5000/v3", true},
		{"https://k.example.com/identity/", "https://k.example.com/identity/v3", true},
	}
	for _, tt := range tests {
		got, v3, err := identityURL(tt.in)
		if err != nil || got != tt.want || v3 != tt.v3 {
			t.Errorf("identityURL(%q) = %q, %v, %v; want %q, %v", tt.in, got, v3, err, tt.want, tt.v3)
		}
	}
}

func TestMapState(t *testing.T) {
	tests := map[string]provider.State{
		"BUILD": provider.StatePending, "REBUILD": provider.StatePending, "HARD_REBOOT": provider.StatePending,
		"RESIZE": provider.StatePending, "VERIFY_RESIZE": provider.StatePending, "MIGRATING": provider.StatePending,
		"ACTIVE": provider.StateRunning, "active": provider.StateRunning,
		"SHUTOFF": provider.StateStopped, "STOPPED": provider.StateStopped, "SUSPENDED": provider.StateStopped,
		"PAUSED": provider.StateStopped, "SHELVED_OFFLOADED": provider.StateStopped,
		"DELETED": provider.StateTerminated, "SOFT_DELETED": provider.StateTerminated,
		"ERROR":  provider.StateError,
		"RESCUE": provider.StateUnknown, "UNKNOWN": provider.StateUnknown, "": provider.StateUnknown, "WEIRD": provider.StateUnknown,
	}
	for status, want := range tests {
		if got := MapState(status); got != want {
			t.Errorf("MapState(%q) = %s, want %s", status, got, want)
		}
	}
}

func TestSplitAddresses(t *testing.T) {
	addr := func(a string, v int, typ string) map[string]any {
		return map[string]any{"addr": a, "version": float64(v), "OS-EXT-IPS:type": typ}
	}
	tests := []struct {
		name          string
		server        servers.Server
		publicNetwork string
		pub, priv     []string
	}{
		{
			name: "rackspace",
			server: servers.Server{AccessIPv4: "198.51.100.7", AccessIPv6: "2001:db8::7", Addresses: map[string]any{
				"public":  []any{addr("2001:db8::7", 6, ""), addr("198.51.100.7", 4, "")},
				"private": []any{addr("10.176.1.2", 4, "")},
			}},
			pub: []string{"198.51.100.7", "2001:db8::7"}, priv: []string{"10.176.1.2"},
		},
		{
			name: "floating ip on a tenant network",
			server: servers.Server{Addresses: map[string]any{
				"tenant-net": []any{addr("192.168.0.5", 4, "fixed"), addr("203.0.113.9", 4, "floating"), addr("fd00::5", 6, "fixed")},
			}},
			pub: []string{"203.0.113.9"}, priv: []string{"192.168.0.5", "fd00::5"},
		},
		{
			name: "provider network with global addresses",
			server: servers.Server{Addresses: map[string]any{
				"vlan1001": []any{addr("2a01:4f8::1", 6, "fixed"), addr("203.0.113.20", 4, "fixed")},
			}},
			pub: []string{"203.0.113.20", "2a01:4f8::1"},
		},
		{
			name: "network named external with private range",
			server: servers.Server{Addresses: map[string]any{
				"ext-net": []any{addr("172.24.4.10", 4, "fixed")},
				"private": []any{addr("10.0.0.3", 4, "fixed")},
			}},
			pub: []string{"172.24.4.10"}, priv: []string{"10.0.0.3"},
		},
		{
			name: "only private: CGNAT and RFC 1918",
			server: servers.Server{Addresses: map[string]any{
				"lan": []any{addr("100.64.3.4", 4, "fixed"), addr("10.1.2.3", 4, "fixed")},
			}},
			priv: []string{"100.64.3.4", "10.1.2.3"},
		},
		{
			name: "public_network names it",
			server: servers.Server{Addresses: map[string]any{
				"dmz":    []any{addr("10.9.9.9", 4, "fixed")},
				"public": []any{addr("203.0.113.1", 4, "fixed")},
			}},
			publicNetwork: "dmz",
			pub:           []string{"10.9.9.9"}, priv: []string{"203.0.113.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, priv := splitAddresses(&tt.server, tt.publicNetwork)
			if !slices.Equal(pub, tt.pub) || !slices.Equal(priv, tt.priv) {
				t.Errorf("got public %q private %q, want %q %q", pub, priv, tt.pub, tt.priv)
			}
		})
	}
}

func TestDriver_Pagination(t *testing.T) {
	s := newFake(t, fake.Options{PageSize: 2})
	for i := range 7 {
		s.AddServer(fake.ServerSpec{Name: "srv" + string(rune('a'+i))})
	}
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	nodes, err := d.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 7 {
		t.Fatalf("ListNodes returned %d nodes, want 7", len(nodes))
	}
	if n := s.Count("GET", "/servers/detail"); n != 4 {
		t.Errorf("%d server list requests, want 4 pages", n)
	}
	sizes, err := d.ListSizes(ctx)
	if err != nil || len(sizes) != 4 {
		t.Fatalf("ListSizes = %d sizes, %v; want 4", len(sizes), err)
	}
	if sizes[1] != (provider.Size{ID: "2", Name: "m1.small", RAMMB: 2048, DiskGB: 20, VCPUs: 1}) {
		t.Errorf("size = %+v", sizes[1])
	}
	images, err := d.ListImages(ctx)
	if err != nil || len(images) != 3 {
		t.Fatalf("ListImages = %d images, %v; want 3", len(images), err)
	}
	if images[0].Created.IsZero() {
		t.Errorf("image without creation time: %+v", images[0])
	}
}

func TestDriver_RateLimitRetry(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{http.StatusTooManyRequests, http.StatusRequestEntityTooLarge} {
		before := s.Count("GET", "/servers/detail")
		s.FailNext(2, status)
		if _, err := d.ListNodes(ctx); err != nil {
			t.Fatalf("ListNodes after two %d answers: %v", status, err)
		}
		if n := s.Count("GET", "/servers/detail") - before; n != 3 {
			t.Errorf("status %d: %d tries, want 3", status, n)
		}
	}
	s.FailNext(10, http.StatusTooManyRequests)
	_, err := d.ListNodes(ctx)
	if !errors.Is(err, provider.ErrRateLimited) {
		t.Fatalf("ListNodes with 429 forever = %v, want ErrRateLimited", err)
	}
}

func TestDriver_ServerErrorRetry(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, with(v3Settings(s), "key_method", "user_data"))
	ctx := context.Background()
	s.FailNext(2, http.StatusInternalServerError) // two token requests
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatalf("ListSizes after two 500s: %v", err)
	}
	if n := s.Count("POST", "/auth/tokens"); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}
	s.FailNext(1, http.StatusBadGateway)
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatalf("ListSizes after a 502: %v", err)
	}
	// A create is not repeated after a 500: it may have happened.
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	s.FailNext(1, http.StatusServiceUnavailable)
	_, err := d.CreateNode(ctx, provider.CreateRequest{Name: "x1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}})
	if err == nil {
		t.Fatal("CreateNode after 503 succeeded")
	}
	var ae *provider.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Provider != "openstack" {
		t.Errorf("error = %#v", err)
	}
	if n := s.Count("POST", "/servers"); n != 1 {
		t.Errorf("create tried %d times, want 1", n)
	}
}

func TestDriver_Quota(t *testing.T) {
	s := newFake(t, fake.Options{MaxServers: 1})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	req := provider.CreateRequest{Name: "q1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}}
	if _, err := d.CreateNode(ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Name = "q2"
	_, err := d.CreateNode(ctx, req)
	if !errors.Is(err, provider.ErrQuota) || !strings.Contains(err.Error(), "Quota exceeded for instances") {
		t.Fatalf("second create = %v, want ErrQuota with Nova's message", err)
	}
}

func TestDriver_UnknownImageAndSize(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	_, err := d.CreateNode(ctx, provider.CreateRequest{Name: "x", Image: provider.Image{ID: "nope"}, Size: provider.Size{ID: "1"}, AuthorizedKeys: []string{providertest.TestKey}})
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "Can not find requested image") {
		t.Errorf("unknown image: %v", err)
	}
	_, err = d.CreateNode(ctx, provider.CreateRequest{Name: "x", Image: provider.Image{ID: "11111111-0000-4000-8000-000000000001"}, Size: provider.Size{ID: "99"}, AuthorizedKeys: []string{providertest.TestKey}})
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "Flavor '99'") {
		t.Errorf("unknown flavor: %v", err)
	}
	// The matcher lists the candidates from ListImages.
	images, _ := d.ListImages(ctx)
	m, _ := provider.ParseMatcher("name centos*")
	_, err = provider.MatchImage(images, m)
	if err == nil || !strings.Contains(err.Error(), "debian-12-genericcloud-amd64") {
		t.Errorf("no-match error does not list images: %v", err)
	}
}

func TestDriver_Reauthenticates(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, v2Settings(s))
	ctx := context.Background()
	if _, err := d.ListNodes(ctx); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	if _, err := d.ListNodes(ctx); err != nil {
		t.Fatalf("ListNodes after the token expired: %v", err)
	}
	if n := s.Count("POST", "/tokens"); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

func TestDriver_GarbageResponse(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
	}{
		{"html", http.Header{"Content-Type": {"text/html"}}, "<html><body>502 Bad Gateway</body></html>"},
		{"broken json", http.Header{"Content-Type": {"application/json"}}, `{"servers": [`},
		{"wrong shape", http.Header{"Content-Type": {"application/json"}}, `{"servers": "many"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fake.Options{})
			d := newDriver(t, v3Settings(s))
			ctx := context.Background()
			if _, err := d.ListSizes(ctx); err != nil {
				t.Fatal(err)
			}
			s.RespondNext(1, http.StatusOK, tt.header, tt.body)
			_, err := d.ListNodes(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), "openstack: list servers") {
				t.Fatalf("ListNodes on garbage = %v, want an error naming the provider", err)
			}
		})
	}
	t.Run("garbage from keystone", func(t *testing.T) {
		s := newFake(t, fake.Options{})
		s.RespondNext(1, http.StatusOK, http.Header{"Content-Type": {"text/html"}}, "<html>login portal</html>")
		_, err := newDriver(t, v3Settings(s)).ListNodes(context.Background())
		if err == nil || !strings.HasPrefix(err.Error(), "openstack: authenticate") {
			t.Fatalf("auth on garbage = %v", err)
		}
	})
}

func TestDriver_HangingAPI(t *testing.T) {
	s := newFake(t, fake.Options{})
	d, err := newFromEnv(env(v3Settings(s), &http.Client{Timeout: 300 * time.Millisecond}), fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListSizes(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.HangNext(1)
	_, err = d.ListNodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("ListNodes on a hanging API = %v, want a timeout error", err)
	}

	s.HangNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d2 := newDriver(t, v3Settings(s))
	_, err = d2.ListNodes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ListNodes with a deadline on a hanging API = %v, want DeadlineExceeded", err)
	}
}

func TestDriver_SecretsNotInErrors(t *testing.T) {
	const secret = "hunter2-very-secret"
	// A Keystone that echoes what it was sent must not make us print it.
	s := newFake(t, fake.Options{AuthFailMessage: "Invalid password " + secret + " for user demo"})
	d := newDriver(t, with(v3Settings(s), "secret", secret))
	_, err := d.ListNodes(context.Background())
	if !errors.Is(err, provider.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the secret: %v", err)
	}
	var ae *provider.APIError
	if !errors.As(err, &ae) || strings.Contains(ae.Message, secret) {
		t.Fatalf("APIError message shows the secret: %#v", err)
	}
	if !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("error does not say what to fix: %v", err)
	}
}

func TestDriver_UnknownRegion(t *testing.T) {
	s := newFake(t, fake.Options{Regions: []string{"RegionOne", "RegionTwo"}})
	_, err := newDriver(t, with(v3Settings(s), "region", "Atlantis")).ListNodes(context.Background())
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "RegionOne, RegionTwo") {
		t.Fatalf("unknown region: %v", err)
	}
	d := newDriver(t, with(v3Settings(s), "region", "RegionTwo"))
	images, _ := d.ListImages(context.Background())
	sizes, _ := d.ListSizes(context.Background())
	n, err := d.CreateNode(context.Background(), provider.CreateRequest{Name: "r2", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Created(); len(c) != 1 || c[0].ID != n.ID || c[0].Region != "RegionTwo" {
		t.Errorf("created %+v, want one server in RegionTwo", c)
	}
}

func TestDriver_NoProject(t *testing.T) {
	s := newFake(t, fake.Options{})
	raw := with(v3Settings(s), "project_name", "")
	_, err := newDriver(t, raw).ListNodes(context.Background())
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "is the project set") {
		t.Fatalf("unscoped token: %v", err)
	}
}

func TestDriver_KeypairReuse(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	for _, name := range []string{"k1", "k2"} {
		if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdr9VpVYqK1cB0vGhhuzDN9MyxcmK3TjYZyTZPs2qy7 second"}}); err != nil {
			t.Fatal(err)
		}
	}
	kps := s.Keypairs(fake.DefaultRegion)
	if len(kps) != 1 || !strings.HasPrefix(kps[0].Name, "toppcloud-") {
		t.Fatalf("keypairs = %+v, want one toppcloud-* keypair", kps)
	}
	c := s.Created()
	if c[0].KeyName != kps[0].Name || c[1].KeyName != kps[0].Name {
		t.Errorf("key names %q %q, want %q", c[0].KeyName, c[1].KeyName, kps[0].Name)
	}
	if !strings.Contains(string(c[1].UserData), "second") {
		t.Errorf("the second key is not in the user data: %s", c[1].UserData)
	}

	// A keypair the user imported under another name is reused too.
	s2 := newFake(t, fake.Options{})
	d2 := newDriver(t, v3Settings(s2))
	mine := newDriver(t, v3Settings(s2))
	sc, err := mine.compute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := createKeypair(ctx, sc, "my-laptop", providertest.TestKey); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.CreateNode(ctx, provider.CreateRequest{Name: "k3", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}}); err != nil {
		t.Fatal(err)
	}
	if got := s2.Created()[0].KeyName; got != "my-laptop" {
		t.Errorf("key_name %q, want the existing my-laptop", got)
	}
	if n := len(s2.Keypairs(fake.DefaultRegion)); n != 1 {
		t.Errorf("%d keypairs, want 1", n)
	}
}

func createKeypair(ctx context.Context, sc *gophercloud.ServiceClient, name, key string) error {
	_, err := keypairs.Create(ctx, sc, keypairs.CreateOpts{Name: name, PublicKey: key}).Extract()
	return err
}

func TestDriver_UserDataOnly(t *testing.T) {
	s := newFake(t, fake.Options{NoKeypairs: true})
	d := newDriver(t, with(v3Settings(s), "key_method", "user_data", "ssh_user", "debian"))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	n, err := d.CreateNode(ctx, provider.CreateRequest{Name: "u1", Image: images[0], Size: sizes[0],
		AuthorizedKeys: []string{providertest.TestKey}, Files: map[string][]byte{"/etc/motd": []byte("hello\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if n.SSHUser != "debian" {
		t.Errorf("SSHUser = %q, want debian", n.SSHUser)
	}
	if s.Count("GET", "/os-keypairs")+s.Count("POST", "/os-keypairs") != 0 {
		t.Error("user_data mode used the keypair API")
	}
	c := s.Created()[0]
	if c.KeyName != "" {
		t.Errorf("key_name %q sent", c.KeyName)
	}
	ud := string(c.UserData)
	for _, want := range []string{"#cloud-config\n", providertest.TestKey, `"path":"/etc/motd"`, `"content":"aGVsbG8K"`} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
}

func TestDriver_KeypairAPIMissing(t *testing.T) {
	s := newFake(t, fake.Options{NoKeypairs: true})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	_, err := d.CreateNode(ctx, provider.CreateRequest{Name: "k", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}})
	if err != nil {
		t.Fatalf("create without a keypair API = %v, want the user data alone to do", err)
	}
	c := s.Created()
	if len(c) != 1 || c[0].KeyName != "" || !strings.Contains(string(c[0].UserData), providertest.TestKey) {
		t.Errorf("created %+v, want no key_name and the key in user data", c)
	}
}

func TestDriver_Network(t *testing.T) {
	s := newFake(t, fake.Options{})
	const net = "5f8a9c7e-1234-4a5b-9c8d-0123456789ab"
	d := newDriver(t, with(v3Settings(s), "network", net))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: "n1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}}); err != nil {
		t.Fatal(err)
	}
	if got := s.Created()[0].Networks; !slices.Equal(got, []string{net}) {
		t.Errorf("networks %q, want [%s]", got, net)
	}
}

func TestDriver_BadCreateRequest(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, v3Settings(s))
	ctx := context.Background()
	img, size := provider.Image{ID: "i"}, provider.Size{ID: "s"}
	tests := []provider.CreateRequest{
		{Name: "bad_name!", Image: img, Size: size, AuthorizedKeys: []string{providertest.TestKey}},
		{Name: "ok", Size: size, AuthorizedKeys: []string{providertest.TestKey}},
		{Name: "ok", Image: img, Size: size},
		{Name: "ok", Image: img, Size: size, AuthorizedKeys: []string{"not a key"}},
	}
	for _, req := range tests {
		if _, err := d.CreateNode(ctx, req); err == nil {
			t.Errorf("CreateNode(%+v) succeeded", req)
		}
	}
	if n := s.Count("POST", "/servers"); n != 0 {
		t.Errorf("%d create requests reached the API", n)
	}
}

func TestRetryDelay(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		fail  uint
		after string
		want  time.Duration
		ok    bool
	}{
		{1, "", time.Second, true},
		{3, "", 4 * time.Second, true},
		{1, "7", 7 * time.Second, true},
		{1, "0", 0, true},
		{1, now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{1, "soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := retryDelay(tt.fail, tt.after, time.Second, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("retryDelay(%d, %q) = %v, %v; want %v, %v", tt.fail, tt.after, got, ok, tt.want, tt.ok)
		}
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		body, kind, msg string
	}{
		{`{"itemNotFound": {"message": "Instance x could not be found.", "code": 404}}`, "itemNotFound", "Instance x could not be found."},
		{`{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}`, "error", "The request you have made requires authentication."},
		{`<html>Bad Gateway</html>`, "", "<html>Bad Gateway</html>"},
	}
	for _, tt := range tests {
		kind, msg := errorBody([]byte(tt.body))
		if kind != tt.kind || msg != tt.msg {
			t.Errorf("errorBody(%s) = %q, %q", tt.body, kind, msg)
		}
	}
}

func TestPersonality(t *testing.T) {
	req := provider.CreateRequest{AuthorizedKeys: []string{"k1", " k2 "}, Files: map[string][]byte{"/etc/a": []byte("a")}}
	p, err := personality(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p[0].Path != "/etc/a" || p[1].Path != "/root/.ssh/authorized_keys" || string(p[1].Contents) != "k1\nk2\n" {
		t.Errorf("personality = %+v", p)
	}
	req.Files = map[string][]byte{"/1": nil, "/2": nil, "/3": nil, "/4": nil, "/5": nil}
	if _, err := personality(req); !errors.Is(err, provider.ErrInvalid) {
		t.Errorf("six files: %v, want ErrInvalid", err)
	}
	for _, p := range []string{"relative", "/" + strings.Repeat("x", 255)} {
		req.Files = map[string][]byte{p: nil}
		if _, err := personality(req); !errors.Is(err, provider.ErrInvalid) {
			t.Errorf("path %.20s...: %v, want ErrInvalid", p, err)
		}
	}
}
