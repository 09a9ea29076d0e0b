package vultr

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
	"github.com/toppcloud/toppcloud/internal/provider/vultr/fake"
)

func TestDriver_Suite(t *testing.T) {
	fakeapi.RunSuite(t, fakeapi.Suite{
		Provider:  Name,
		NewServer: func(o fakeapi.Options) *fakeapi.Server { return fake.New(o).Server },
		NewDriver: func(s provider.Settings, hc *http.Client) (provider.Driver, error) {
			return New(provider.Env{Section: "test", Settings: s, HTTPClient: hc})
		},
		Settings:       map[string]string{"region": "ewr"},
		RegionRequired: true,
		Image:          "name Debian 12 x64*",
		Size:           "name vc2-1c-1gb",
		ListPath:       "/v2/instances",
		States: map[string]provider.State{
			"pending/stopped": provider.StatePending, "resizing/running": provider.StatePending,
			"active/running": provider.StateRunning, "active/stopped": provider.StateStopped,
			"suspended/stopped": provider.StateStopped, "closed/stopped": provider.StateTerminated,
			"active/weird": provider.StateUnknown, "weird/running": provider.StateUnknown,
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
		t.Fatal("vultr is not registered")
	}
	s := provider.Resolve(info.Options, nil, func(k string) string {
		if k == "VULTR_API_KEY" {
			return "from-env"
		}
		return ""
	})
	if s.Get("secret") != "from-env" {
		t.Errorf("secret from $VULTR_API_KEY = %q", s.Get("secret"))
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
	d, err := New(provider.Env{Settings: provider.Settings{"secret": fakeapi.DefaultToken, "endpoint": srv.URL(), "region": "ewr"}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	return d, srv
}

func TestGetNode_UnknownUUIDIsNotFound(t *testing.T) {
	d, srv := newTestDriver(t)
	_, err := d.GetNode(t.Context(), fake.FormatID(999))
	if !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("GetNode(unknown uuid) = %v, want ErrNotFound", err)
	}
	if srv.CountRequests("GET", "/v2/instances/") != 1 {
		t.Error("a well-formed ID must be asked of the API")
	}
}

func TestListImages_OnlyInstallableX64(t *testing.T) {
	d, _ := newTestDriver(t)
	images, err := d.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range images {
		names = append(names, im.Name)
	}
	want := []string{"Debian 12 x64 (bookworm)", "Debian 11 x64 (bullseye)", "Ubuntu 24.04 LTS x64"}
	if !slices.Equal(names, want) {
		t.Errorf("images %q, want %q", names, want)
	}
}
