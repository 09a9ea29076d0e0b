package rackspace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/openstack"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
	"github.com/toppcloud/toppcloud/internal/provider/rackspace/fake"
)

func newFake(t *testing.T, o fake.Options) *fake.Server {
	t.Helper()
	o.Errorf = t.Errorf
	s := fake.New(o)
	t.Cleanup(s.Close)
	return s
}

// section is what a [provider:rs] section pointed at the fake holds.
func section(s *fake.Server, region string) map[string]string {
	return map[string]string{
		"endpoint": s.IdentityV2(),
		"username": fake.DefaultUsername,
		"secret":   fake.DefaultAPIKey,
		"region":   region,
	}
}

func env(raw map[string]string) provider.Env {
	return provider.Env{
		Section:    "rs",
		Settings:   provider.Resolve(options, raw, func(string) string { return "" }),
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
	}
}

func newDriver(t *testing.T, raw map[string]string) *Driver {
	t.Helper()
	d, err := newFromEnv(env(raw), func(c *openstack.Config) { c.RetryBase = time.Millisecond })
	if err != nil {
		t.Fatalf("new driver: %v", err)
	}
	return d
}

// checkPersonality verifies the seed's key injection: root's
// authorized_keys uploaded as a personality file, nothing else.
func checkPersonality(s *fake.Server) func(t *testing.T, d provider.Driver, n provider.Node, key string) {
	return func(t *testing.T, d provider.Driver, n provider.Node, key string) {
		created := s.Created()
		i := slices.IndexFunc(created, func(c fake.Created) bool { return c.ID == n.ID })
		if i < 0 {
			t.Fatalf("no create record for %s", n.ID)
		}
		c := created[i]
		if got := string(c.Personality["/root/.ssh/authorized_keys"]); got != key+"\n" {
			t.Errorf("personality /root/.ssh/authorized_keys = %q, want %q", got, key+"\n")
		}
		if c.KeyName != "" || c.UserData != nil {
			t.Errorf("unexpected key_name %q or user data %q", c.KeyName, c.UserData)
		}
	}
}

func TestDriver_Conformance(t *testing.T) {
	var s *fake.Server
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			s = newFake(t, fake.Options{})
			return newDriver(t, section(s, "DFW"))
		},
		NewBadAuth: func(t *testing.T) provider.Driver {
			s := newFake(t, fake.Options{})
			return newDriver(t, with(section(s, "DFW"), "secret", "not-the-key"))
		},
		Image: "name first Debian 12*",
		Size:  "ram first 1024",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			checkPersonality(s)(t, d, n, key)
		},
	})
}

// The way the end-to-end test uses the fake: backed by another driver,
// whose CreateNode gets the personality file as a file to place.
func TestDriver_ConformanceWithBackend(t *testing.T) {
	var mem *providertest.Memory
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			mem = providertest.NewMemory()
			mem.PendingPolls = 2
			s := newFake(t, fake.Options{Backend: mem, BackendImage: provider.Image{ID: "img-1", Name: "debian-12"}, BackendSize: provider.Size{ID: "s-2"}})
			return newDriver(t, section(s, "ORD"))
		},
		SkipBadAuth: "covered by TestDriver_Conformance",
		Image:       "name first Debian 12*",
		Size:        "ram first 1024",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			if len(mem.Created) != 1 {
				t.Fatalf("backend got %d creates, want 1", len(mem.Created))
			}
			req := mem.Created[0]
			if got := string(req.Files["/root/.ssh/authorized_keys"]); got != key+"\n" {
				t.Errorf("backend file /root/.ssh/authorized_keys = %q, want the key", got)
			}
			if req.Name != n.Name || req.Image.ID != "img-1" || req.Size.ID != "s-2" {
				t.Errorf("backend request = %+v", req)
			}
			if n.Address() != "127.0.0.1" {
				t.Errorf("node address %q, want the backend's", n.Address())
			}
		},
	})
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

func TestRegistry(t *testing.T) {
	if err := provider.CheckOptionFields(options, Options{}); err != nil {
		t.Fatal(err)
	}
	info, ok := provider.Lookup(Name)
	if !ok {
		t.Fatal("rackspace is not registered")
	}
	var prompts []string
	for _, o := range info.Options {
		if o.Prompt {
			prompts = append(prompts, o.Name)
		}
	}
	if !slices.Equal(prompts, []string{"username", "secret", "region"}) {
		t.Errorf("first-run prompts = %q, want username, secret, region", prompts)
	}
	s := newFake(t, fake.Options{})
	d, err := provider.Open(Name, env(section(s, "DFW")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListSizes(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := provider.Resolve(options, nil, func(string) string { return "" }).Get("endpoint"); got != DefaultIdentityURL {
		t.Errorf("default endpoint = %q", got)
	}
}

func TestOptions_EnvFallback(t *testing.T) {
	s := newFake(t, fake.Options{})
	envs := map[string]string{"RAX_USERNAME": fake.DefaultUsername, "RAX_API_KEY": fake.DefaultAPIKey, "RAX_REGION": "iad"}
	e := provider.Env{Settings: provider.Resolve(options, map[string]string{"endpoint": s.IdentityV2()}, func(k string) string { return envs[k] }), HTTPClient: http.DefaultClient}
	d, err := provider.Open(Name, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListNodes(context.Background()); err != nil {
		t.Fatalf("ListNodes with RAX_* variables: %v", err)
	}
}

func TestNew_Region(t *testing.T) {
	s := newFake(t, fake.Options{})
	for _, region := range []string{"Atlantis", "", "dfw1"} {
		_, err := New(env(section(s, region)))
		if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "DFW, ORD, IAD, LON, SYD, HKG") {
			t.Errorf("region %q: %v, want ErrInvalid listing the regions", region, err)
		}
	}
	if n := s.Count("POST", "/tokens"); n != 0 {
		t.Errorf("%d token requests for bad regions, want none", n)
	}
	// Case does not matter, and the server lands in that region.
	d := newDriver(t, section(s, "syd"))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	if _, err := d.CreateNode(ctx, provider.CreateRequest{Name: "syd1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}}); err != nil {
		t.Fatal(err)
	}
	if c := s.Created(); len(c) != 1 || c[0].Region != "SYD" {
		t.Errorf("created %+v, want one server in SYD", c)
	}
}

func TestNew_BadSettings(t *testing.T) {
	base := map[string]string{"username": "u", "secret": "k", "region": "DFW"}
	tests := []struct {
		name string
		raw  map[string]string
		want string
	}{
		{"no key", with(base, "secret", ""), "API key"},
		{"v3 endpoint", with(base, "endpoint", "https://identity.example.com/v3"), "not a Keystone v2.0 URL"},
		{"not a url", with(base, "endpoint", "identity.api.rackspacecloud.com"), "not a Keystone v2.0 URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(env(tt.raw))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestAPIKeyAuth_Body(t *testing.T) {
	a := apiKeyAuth{Username: "bob", APIKey: "k3y-k3y-k3y"}
	m, err := a.ToTokenV2CreateMap()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(m); got != "map[auth:map[RAX-KSKEY:apiKeyCredentials:map[apiKey:k3y-k3y-k3y username:bob]]]" {
		t.Errorf("body = %s", got)
	}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a)} {
		if strings.Contains(s, "k3y") {
			t.Errorf("formatting shows the key: %s", s)
		}
	}
}

func TestDriver_Addresses(t *testing.T) {
	s := newFake(t, fake.Options{BuildPolls: 1})
	d := newDriver(t, section(s, "DFW"))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	n, err := d.CreateNode(ctx, provider.CreateRequest{Name: "a1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}})
	if err != nil {
		t.Fatal(err)
	}
	if n.State != provider.StatePending {
		t.Errorf("new node state %s, want pending", n.State)
	}
	for n.State != provider.StateRunning {
		if n, err = d.GetNode(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(n.PublicIPs, []string{"198.51.100.2", "2001:db8:1::1"}) || !slices.Equal(n.PrivateIPs, []string{"10.176.0.2"}) {
		t.Errorf("public %q private %q", n.PublicIPs, n.PrivateIPs)
	}
	if n.Provider != "rackspace" || n.SSHUser != "" || n.Size != sizes[0].ID || n.Image != images[0].ID {
		t.Errorf("node = %+v", n)
	}
}

func TestDriver_FilesAsPersonality(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, section(s, "LON"))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	keys := []string{providertest.TestKey, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 other"}
	_, err := d.CreateNode(ctx, provider.CreateRequest{Name: "f1", Image: images[0], Size: sizes[0], AuthorizedKeys: keys,
		Files: map[string][]byte{"/etc/toppcloud/hello": []byte("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Created()[0]
	if got := string(c.Personality["/root/.ssh/authorized_keys"]); got != keys[0]+"\n"+keys[1]+"\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	if got := string(c.Personality["/etc/toppcloud/hello"]); got != "hi" {
		t.Errorf("extra file = %q", got)
	}
	files := map[string][]byte{}
	for i := range 5 {
		files[fmt.Sprintf("/etc/f%d", i)] = nil
	}
	_, err = d.CreateNode(ctx, provider.CreateRequest{Name: "f2", Image: images[0], Size: sizes[0], AuthorizedKeys: keys, Files: files})
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "at most 5") {
		t.Errorf("six personality files: %v", err)
	}
	if n := s.Count("POST", "/servers"); n != 1 {
		t.Errorf("%d creates reached the API, want 1", n)
	}
}

func TestDriver_Pagination(t *testing.T) {
	s := newFake(t, fake.Options{PageSize: 2})
	for i := range 5 {
		s.AddServer(fake.ServerSpec{Region: "DFW", Name: fmt.Sprintf("old%d", i)})
	}
	s.AddServer(fake.ServerSpec{Region: "ORD", Name: "elsewhere"})
	nodes, err := newDriver(t, section(s, "DFW")).ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"old0", "old1", "old2", "old3", "old4"}) {
		t.Errorf("ListNodes names = %q", names)
	}
}

func TestDriver_RateLimitAndQuota(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, section(s, "DFW"))
	ctx := context.Background()
	images, _ := d.ListImages(ctx)
	sizes, _ := d.ListSizes(ctx)
	req := provider.CreateRequest{Name: "r1", Image: images[0], Size: sizes[0], AuthorizedKeys: []string{providertest.TestKey}}

	// Rackspace's rate limit: 413 overLimit with Retry-After; even a
	// create is repeated, as it was not carried out.
	s.FailNext(1, http.StatusRequestEntityTooLarge)
	if _, err := d.CreateNode(ctx, req); err != nil {
		t.Fatalf("create after a rate limit: %v", err)
	}
	if n := s.Count("POST", "/servers"); n != 2 {
		t.Errorf("%d create requests, want 2", n)
	}

	// Quota: 413 overLimit without Retry-After.
	s.RespondNext(1, http.StatusRequestEntityTooLarge, http.Header{"Content-Type": {"application/json"}},
		`{"overLimit": {"message": "Quota exceeded for ram: Requested 1024, but already used 65536 of 65536 ram", "code": 413}}`)
	req.Name = "r2"
	_, err := d.CreateNode(ctx, req)
	if !errors.Is(err, provider.ErrQuota) || !strings.Contains(err.Error(), "Quota exceeded for ram") || !strings.HasPrefix(err.Error(), "rackspace: create server r2") {
		t.Fatalf("quota: %v", err)
	}

	s.FailNext(20, http.StatusTooManyRequests)
	_, err = d.ListNodes(ctx)
	if !errors.Is(err, provider.ErrRateLimited) {
		t.Fatalf("endless 429: %v, want ErrRateLimited", err)
	}
}

func TestDriver_Reauthenticates(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, section(s, "HKG"))
	ctx := context.Background()
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatalf("after token expiry: %v", err)
	}
	if n := s.Count("POST", "/tokens"); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

func TestDriver_SecretsNotInErrors(t *testing.T) {
	const key = "deadbeefdeadbeefdeadbeefcafe0001"
	s := newFake(t, fake.Options{AuthFailMessage: "Username or api key is invalid: " + key})
	_, err := newDriver(t, with(section(s, "DFW"), "secret", key)).ListNodes(context.Background())
	if !errors.Is(err, provider.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Fatalf("error shows the API key: %v", err)
	}
	if !strings.Contains(err.Error(), "Username or api key is invalid") {
		t.Errorf("error lacks Rackspace's message: %v", err)
	}
}

func TestDriver_GarbageAndHang(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriver(t, section(s, "DFW"))
	ctx := context.Background()
	if _, err := d.ListSizes(ctx); err != nil {
		t.Fatal(err)
	}
	s.RespondNext(1, http.StatusOK, http.Header{"Content-Type": {"application/json"}}, "this is not json")
	if _, err := d.ListImages(ctx); err == nil || !strings.HasPrefix(err.Error(), "rackspace: list images") {
		t.Errorf("garbage: %v", err)
	}
	s.HangNext(1)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := d.ListImages(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang: %v, want DeadlineExceeded", err)
	}
}
