package digitalocean

import (
	"net/http"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/digitalocean/fake"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

func TestDriver_Suite(t *testing.T) {
	fakeapi.RunSuite(t, fakeapi.Suite{
		Provider:  Name,
		NewServer: func(o fakeapi.Options) *fakeapi.Server { return fake.New(o).Server },
		NewDriver: func(s provider.Settings, hc *http.Client) (provider.Driver, error) {
			return New(provider.Env{Section: "test", Settings: s, HTTPClient: hc})
		},
		Settings:       map[string]string{"region": "nyc3"},
		RegionRequired: true,
		Image:          "name debian-12-x64",
		Size:           "name s-1vcpu-1gb",
		ListPath:       "/v2/droplets",
		States: map[string]provider.State{
			"new": provider.StatePending, "active": provider.StateRunning, "off": provider.StateStopped,
			"archive": provider.StateTerminated, "weird": provider.StateUnknown,
		},
		KeyAPI: true,
	})
}

func TestOptions_Fields(t *testing.T) {
	if err := provider.CheckOptionFields(options, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestRegister_Info(t *testing.T) {
	info, ok := provider.Lookup(Name)
	if !ok {
		t.Fatal("digitalocean is not registered")
	}
	s := provider.Resolve(info.Options, nil, func(k string) string {
		if k == "DIGITALOCEAN_TOKEN" {
			return "from-env"
		}
		return ""
	})
	if s.Get("secret") != "from-env" {
		t.Errorf("secret from $DIGITALOCEAN_TOKEN = %q", s.Get("secret"))
	}
	if _, err := New(provider.Env{Settings: provider.Settings{}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New without a token succeeded")
	}
	if _, err := New(provider.Env{Settings: provider.Settings{"secret": "x", "endpoint": "ftp://x"}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New with an ftp endpoint succeeded")
	}
}

func newTestDriver(t *testing.T) (*Driver, *fake.Server) {
	t.Helper()
	srv := fake.New(fake.Options{Errorf: t.Errorf})
	t.Cleanup(srv.Close)
	d, err := New(provider.Env{Settings: provider.Settings{"secret": fakeapi.DefaultToken, "endpoint": srv.URL(), "region": "nyc3"}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return d, srv
}

func TestCreateNode_NumericImageID(t *testing.T) {
	d, _ := newTestDriver(t)
	n, err := d.CreateNode(t.Context(), provider.CreateRequest{Name: "by-id", Image: provider.Image{ID: "151000001"},
		Size: provider.Size{ID: "s-1vcpu-1gb"}, AuthorizedKeys: []string{providertest.TestKey}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Image != "debian-12-x64" {
		t.Errorf("droplet image %q, want debian-12-x64", n.Image)
	}
}

func TestListSizes_AvailableWithPrices(t *testing.T) {
	d, _ := newTestDriver(t)
	sizes, err := d.ListSizes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]provider.Size{}
	for _, s := range sizes {
		got[s.ID] = s
	}
	if _, ok := got["s-8vcpu-16gb-retired"]; ok {
		t.Error("an unavailable size is listed")
	}
	if s := got["s-1vcpu-1gb"]; s.RAMMB != 1024 || s.DiskGB != 25 || s.VCPUs != 1 || s.PriceMonthly != 6 {
		t.Errorf("s-1vcpu-1gb = %+v", s)
	}
}
