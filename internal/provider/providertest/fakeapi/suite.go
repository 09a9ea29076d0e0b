package fakeapi

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
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

// Suite describes one token-cloud driver and its fake for RunSuite.
type Suite struct {
	// Provider is the driver's type name; errors must mention it.
	Provider string
	// NewServer starts the provider's fake with o (its embedded *Server).
	NewServer func(o Options) *Server
	// NewDriver builds the driver from settings through its constructor,
	// as the registry would.
	NewDriver func(s provider.Settings, hc *http.Client) (provider.Driver, error)
	// Settings are extra settings for a working driver (region). The suite
	// adds secret and endpoint.
	Settings map[string]string
	// RegionRequired: create without a region must fail before any request.
	RegionRequired bool
	// Image and Size are matchers the fake satisfies.
	Image, Size string
	// ListPath is the path servers are listed at ("/v2/droplets").
	ListPath string
	// States maps raw API statuses to the state the driver must report.
	States map[string]provider.State
	// KeyAPI: the driver registers keys through the provider's key API, so
	// the suite checks that a key is registered once and reused.
	KeyAPI bool
}

// RunSuite runs the conformance suite and the tests every token-cloud
// driver shares against the driver's fake: backend plumbing, state
// mapping, addresses, pagination, retries, quota, bad input, garbage and
// hanging APIs, and secrets kept out of errors.
func RunSuite(t *testing.T, h Suite) {
	ctx := context.Background()
	start := func(t *testing.T, o Options) *Server {
		t.Helper()
		if o.Errorf == nil {
			o.Errorf = t.Errorf
		}
		srv := h.NewServer(o)
		t.Cleanup(srv.Close)
		return srv
	}
	driverWith := func(t *testing.T, srv *Server, token string, hc *http.Client, drop ...string) provider.Driver {
		t.Helper()
		s := provider.Settings{"secret": token, "endpoint": srv.URL()}
		for k, v := range h.Settings {
			if !slices.Contains(drop, k) {
				s[k] = v
			}
		}
		if hc == nil {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		d, err := h.NewDriver(s, hc)
		if err != nil {
			t.Fatalf("new driver: %v", err)
		}
		return d
	}
	driver := func(t *testing.T, srv *Server) provider.Driver {
		return driverWith(t, srv, srv.Options().Token, nil)
	}
	pick := func(t *testing.T, d provider.Driver) (provider.Image, provider.Size) {
		t.Helper()
		im, err := providertest.MatchImage(ctx, d, h.Image)
		if err != nil {
			t.Fatal(err)
		}
		sz, err := providertest.MatchSize(ctx, d, h.Size)
		if err != nil {
			t.Fatal(err)
		}
		return im, sz
	}
	create := func(t *testing.T, d provider.Driver, name string) (provider.Node, error) {
		t.Helper()
		im, sz := pick(t, d)
		return d.CreateNode(ctx, provider.CreateRequest{Name: name, Image: im, Size: sz, AuthorizedKeys: []string{providertest.TestKey}})
	}

	t.Run("Conformance", func(t *testing.T) {
		var srv *Server
		providertest.Run(t, providertest.Opt{
			New: func(t *testing.T) provider.Driver {
				srv = start(t, Options{})
				return driver(t, srv)
			},
			NewBadAuth: func(t *testing.T) provider.Driver {
				s := start(t, Options{})
				return driverWith(t, s, "wrong-token", nil)
			},
			Image: h.Image,
			Size:  h.Size,
			CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
				if !slices.Contains(srv.NodeKeys(n.ID), key) {
					t.Errorf("server %s was created with keys %q, want %q among them", n.ID, srv.NodeKeys(n.ID), key)
				}
			},
		})
	})

	t.Run("Backend", func(t *testing.T) {
		mem := providertest.NewMemory()
		mem.PendingPolls = 1
		images, _ := mem.ListImages(ctx)
		sizes, _ := mem.ListSizes(ctx)
		srv := start(t, Options{Backend: mem, BackendImage: images[0], BackendSize: sizes[0]})
		d := driver(t, srv)
		n, err := create(t, d, "backed-1")
		if err != nil {
			t.Fatalf("CreateNode: %v", err)
		}
		// The backend works in the background, as a cloud would.
		for i := 0; ; i++ {
			n, err = d.GetNode(ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if n.State == provider.StateRunning {
				break
			}
			if i > 200 {
				t.Fatalf("backed node still %s", n.State)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(mem.Created) != 1 {
			t.Fatalf("backend got %d creates, want 1", len(mem.Created))
		}
		got := mem.Created[0]
		if got.Name != "backed-1" || got.Image.ID != images[0].ID || got.Size.ID != sizes[0].ID {
			t.Errorf("backend create = %+v, want name backed-1 with the backend's image and size", got)
		}
		if !slices.Contains(got.AuthorizedKeys, providertest.TestKey) {
			t.Errorf("backend got keys %q, want the test key", got.AuthorizedKeys)
		}
		if n.Address() != "127.0.0.1" {
			t.Errorf("backed node address %q, want the backend's 127.0.0.1 (node %+v)", n.Address(), n)
		}
		if err := d.DestroyNode(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
		if left, _ := mem.ListNodes(ctx); len(left) != 0 {
			t.Errorf("backend still has %d nodes after destroy", len(left))
		}
	})

	t.Run("BackendFailure", func(t *testing.T) {
		mem := providertest.NewMemory()
		mem.FailCreate = errors.New("no room")
		var reported []string
		srv := start(t, Options{Backend: mem, Errorf: func(f string, a ...any) { reported = append(reported, fmt.Sprintf(f, a...)) }})
		d := driver(t, srv)
		n, err := create(t, d, "backed-2")
		if err != nil {
			t.Fatalf("CreateNode: %v (the API accepts; the backend fails later)", err)
		}
		if err := d.DestroyNode(ctx, n.ID); err != nil {
			t.Fatalf("DestroyNode after a failed backend create: %v", err)
		}
		if len(reported) != 1 || !strings.Contains(reported[0], "no room") {
			t.Errorf("reported %q, want the backend failure", reported)
		}
	})

	t.Run("StateMapping", func(t *testing.T) {
		srv := start(t, Options{})
		want := map[string]provider.State{}
		for raw, st := range h.States {
			n := srv.AddNode(Node{Name: "state-" + strings.NewReplacer("_", "-", " ", "-").Replace(raw), RawStatus: raw, Image: "x", Size: "x"})
			want[n.ID] = st
		}
		nodes, err := driver(t, srv).ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != len(want) {
			t.Fatalf("listed %d nodes, want %d", len(nodes), len(want))
		}
		for _, n := range nodes {
			if n.State != want[n.ID] {
				t.Errorf("node %s (%s): state %s, want %s", n.ID, n.Name, n.State, want[n.ID])
			}
		}
	})

	t.Run("Addresses", func(t *testing.T) {
		srv := start(t, Options{})
		seeded := srv.AddNode(Node{Name: "addr-1", State: provider.StateRunning, Image: "x", Size: "x",
			PublicIPv4: []string{"203.0.113.10"}, PrivateIPv4: []string{"192.168.130.5"}, PublicIPv6: []string{"2001:db8:0:1::1"}})
		n, err := driver(t, srv).GetNode(ctx, seeded.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"203.0.113.10", "2001:db8:0:1::1"}; !slices.Equal(n.PublicIPs, want) {
			t.Errorf("public IPs %q, want %q (IPv4 first)", n.PublicIPs, want)
		}
		if want := []string{"192.168.130.5"}; !slices.Equal(n.PrivateIPs, want) {
			t.Errorf("private IPs %q, want %q", n.PrivateIPs, want)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		srv := start(t, Options{PageSize: 2})
		var ids []string
		for i := range 5 {
			ids = append(ids, srv.AddNode(Node{Name: "page-" + string(rune('a'+i)), State: provider.StateRunning, Image: "x", Size: "x"}).ID)
		}
		nodes, err := driver(t, srv).ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range nodes {
			got = append(got, n.ID)
		}
		if !slices.Equal(got, ids) {
			t.Errorf("listed %q, want %q", got, ids)
		}
		if n := srv.CountRequests("GET", h.ListPath); n != 3 {
			t.Errorf("%d list requests for 5 servers at 2 a page, want 3", n)
		}
	})

	t.Run("RateLimitRetry", func(t *testing.T) {
		srv := start(t, Options{})
		srv.RateLimitNext(2, "0")
		if _, err := driver(t, srv).ListSizes(ctx); err != nil {
			t.Fatalf("ListSizes after two 429s: %v", err)
		}
		if n := len(srv.Requests()); n < 3 {
			t.Errorf("%d requests, want the two refused ones retried", n)
		}
	})

	t.Run("RateLimitExhausted", func(t *testing.T) {
		srv := start(t, Options{})
		srv.RateLimitNext(50, "0")
		_, err := driver(t, srv).ListNodes(ctx)
		if !errors.Is(err, provider.ErrRateLimited) {
			t.Fatalf("ListNodes under a lasting 429 = %v, want ErrRateLimited", err)
		}
		checkNamed(t, h.Provider, err)
	})

	t.Run("ServerErrorRetry", func(t *testing.T) {
		srv := start(t, Options{})
		srv.FailNext(1, http.StatusInternalServerError)
		if _, err := driver(t, srv).ListImages(ctx); err != nil {
			t.Fatalf("ListImages after a 500: %v", err)
		}
	})

	t.Run("Quota", func(t *testing.T) {
		srv := start(t, Options{ServerLimit: 1})
		d := driver(t, srv)
		if _, err := create(t, d, "quota-1"); err != nil {
			t.Fatal(err)
		}
		_, err := create(t, d, "quota-2")
		if !errors.Is(err, provider.ErrQuota) {
			t.Fatalf("create past the limit = %v, want ErrQuota", err)
		}
		checkNamed(t, h.Provider, err)
		if len(srv.Nodes()) != 1 {
			t.Errorf("%d servers after a refused create, want 1", len(srv.Nodes()))
		}
	})

	t.Run("UnknownImageAndSize", func(t *testing.T) {
		srv := start(t, Options{})
		d := driver(t, srv)
		m, _ := provider.ParseMatcher("name no-such-os-*")
		images, err := d.ListImages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = provider.MatchImage(images, m)
		var nm *provider.NoMatchError
		if !errors.As(err, &nm) || len(nm.Candidates) != len(images) || !strings.Contains(err.Error(), images[0].Name) {
			t.Errorf("matching nothing = %v, want a NoMatchError listing the images", err)
		}
		im, sz := pick(t, d)
		for _, req := range []provider.CreateRequest{
			{Name: "bad-image", Image: provider.Image{ID: "987654", Name: "gone"}, Size: sz, AuthorizedKeys: []string{providertest.TestKey}},
			{Name: "bad-size", Image: im, Size: provider.Size{ID: "no-such-size", Name: "no-such-size"}, AuthorizedKeys: []string{providertest.TestKey}},
		} {
			_, err := d.CreateNode(ctx, req)
			if !errors.Is(err, provider.ErrInvalid) && !errors.Is(err, provider.ErrNotFound) {
				t.Errorf("create %s = %v, want ErrInvalid or ErrNotFound", req.Name, err)
			}
			checkNamed(t, h.Provider, err)
		}
		if len(srv.Nodes()) != 0 {
			t.Errorf("refused creates left %d servers", len(srv.Nodes()))
		}
	})

	t.Run("BadInputBeforeAnyRequest", func(t *testing.T) {
		srv := start(t, Options{})
		d := driver(t, srv)
		im, sz := pick(t, d)
		before := len(srv.Requests())
		bad := []provider.CreateRequest{
			{Name: "Not_A_Hostname", Image: im, Size: sz, AuthorizedKeys: []string{providertest.TestKey}},
			{Name: "nokey", Image: im, Size: sz, AuthorizedKeys: []string{"ssh-ed25519 not-base64!"}},
		}
		for _, req := range bad {
			if _, err := d.CreateNode(ctx, req); err == nil {
				t.Errorf("create %q succeeded, want an error", req.Name)
			}
		}
		if h.RegionRequired {
			noRegion := driverWith(t, srv, srv.Options().Token, nil, "region")
			before = len(srv.Requests())
			_, err := noRegion.CreateNode(ctx, provider.CreateRequest{Name: "noregion", Image: im, Size: sz, AuthorizedKeys: []string{providertest.TestKey}})
			if err == nil || !strings.Contains(err.Error(), "region") {
				t.Errorf("create without region = %v, want an error about the region", err)
			}
		}
		if after := len(srv.Requests()); after != before {
			t.Errorf("bad input sent %d requests, want none", after-before)
		}
	})

	t.Run("Garbage", func(t *testing.T) {
		srv := start(t, Options{})
		srv.GarbageNext(1)
		_, err := driver(t, srv).ListNodes(ctx)
		if err == nil {
			t.Fatal("ListNodes on a garbage body succeeded")
		}
		checkNamed(t, h.Provider, err)
	})

	t.Run("HangingAPI", func(t *testing.T) {
		srv := start(t, Options{})
		srv.StallNext(1)
		d := driverWith(t, srv, srv.Options().Token, &http.Client{Timeout: 200 * time.Millisecond})
		if _, err := d.ListNodes(ctx); err == nil {
			t.Fatal("ListNodes on a stalled API succeeded")
		} else {
			checkNamed(t, h.Provider, err)
		}
		srv.StallNext(1)
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := driver(t, srv).ListNodes(cctx); err == nil {
			t.Fatal("ListNodes on a stalled API with a deadline succeeded")
		}
	})

	t.Run("SecretsNotInErrors", func(t *testing.T) {
		const token = "sekrit-token-7f3a9c"
		srv := start(t, Options{Token: token})
		good := driverWith(t, srv, token, nil)
		bad := driverWith(t, srv, "sekrit-wrong-token-1b2c", nil)
		var errs []error
		_, err := bad.ListNodes(ctx)
		errs = append(errs, err)
		_, err = bad.ListImages(ctx)
		errs = append(errs, err)
		_, err = good.GetNode(ctx, "424242")
		errs = append(errs, err)
		errs = append(errs, good.DestroyNode(ctx, "424242"))
		srv.GarbageNext(1)
		_, err = good.ListSizes(ctx)
		errs = append(errs, err)
		srv.RateLimitNext(50, "0")
		_, err = good.ListNodes(ctx)
		errs = append(errs, err)
		for _, err := range errs {
			if err == nil {
				t.Error("expected an error")
				continue
			}
			if s := err.Error(); strings.Contains(s, token) || strings.Contains(s, "sekrit-wrong-token-1b2c") {
				t.Errorf("error contains the token: %s", s)
			}
		}
		if !errors.Is(errs[0], provider.ErrAuth) {
			t.Errorf("bad token: %v, want ErrAuth", errs[0])
		}
	})

	t.Run("KeyReuse", func(t *testing.T) {
		if !h.KeyAPI {
			t.Skip("keys are passed at create, not registered")
		}
		srv := start(t, Options{})
		d := driver(t, srv)
		for _, name := range []string{"key-1", "key-2"} {
			if _, err := create(t, d, name); err != nil {
				t.Fatal(err)
			}
		}
		if keys := srv.Keys(); len(keys) != 1 || !strings.HasPrefix(keys[0].Name, "toppcloud-") {
			t.Errorf("registered keys %+v, want one named toppcloud-...", keys)
		}

		srv2 := start(t, Options{})
		if _, err := srv2.AddKey("my laptop", providertest.TestKey); err != nil {
			t.Fatal(err)
		}
		if _, err := create(t, driver(t, srv2), "key-3"); err != nil {
			t.Fatal(err)
		}
		if keys := srv2.Keys(); len(keys) != 1 || keys[0].Name != "my laptop" {
			t.Errorf("registered keys %+v, want the existing key reused", keys)
		}
	})
}

// checkNamed fails unless err names the provider.
func checkNamed(t *testing.T, name string, err error) {
	t.Helper()
	if err != nil && !strings.Contains(err.Error(), name) {
		t.Errorf("error does not name %s: %v", name, err)
	}
}
