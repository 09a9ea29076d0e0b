package digitalocean

import (
	"net/http"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/digitalocean/fake"
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
