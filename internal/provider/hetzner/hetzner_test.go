package hetzner

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/hetzner/fake"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

func TestDriver_Suite(t *testing.T) {
	fakeapi.RunSuite(t, fakeapi.Suite{
		Provider:  Name,
		NewServer: func(o fakeapi.Options) *fakeapi.Server { return fake.New(o).Server },
		NewDriver: func(s provider.Settings, hc *http.Client) (provider.Driver, error) {
			return New(provider.Env{Section: "test", Settings: s, HTTPClient: hc})
		},
		Settings:       map[string]string{"region": "fsn1"},
		RegionRequired: false,
		Image:          "name debian-12",
		Size:           "name cx22",
		ListPath:       "/v1/servers",
		States: map[string]provider.State{
			"initializing": provider.StatePending, "starting": provider.StatePending, "migrating": provider.StatePending,
			"rebuilding": provider.StatePending, "running": provider.StateRunning, "off": provider.StateStopped,
			"stopping": provider.StateStopped, "deleting": provider.StateTerminated, "unknown": provider.StateUnknown,
			"weird": provider.StateUnknown,
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
		t.Fatal("hetzner is not registered")
	}
	s := provider.Resolve(info.Options, nil, func(k string) string {
		if k == "HCLOUD_TOKEN" {
			return "from-env"
		}
		return ""
	})
	if s.Get("secret") != "from-env" {
		t.Errorf("secret from $HCLOUD_TOKEN = %q", s.Get("secret"))
	}
	if _, err := New(provider.Env{Settings: provider.Settings{}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New without a token succeeded")
	}
	if _, err := New(provider.Env{Settings: provider.Settings{"secret": "x", "endpoint": "ftp://x"}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New with an ftp endpoint succeeded")
	}
}

func TestListSizesAndImages_X86WithEURPrices(t *testing.T) {
	srv := fake.New(fake.Options{Errorf: t.Errorf})
	defer srv.Close()
	d, err := New(provider.Env{Settings: provider.Settings{"secret": fakeapi.DefaultToken, "endpoint": srv.URL(), "region": "nbg1"}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := d.ListSizes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sizes {
		names = append(names, s.Name)
		if s.Name == "cx22" && (s.RAMMB != 4096 || s.DiskGB != 40 || s.VCPUs != 2 || s.PriceMonthly != 4.59 || !strings.Contains(s.Note, "EUR")) {
			t.Errorf("cx22 = %+v", s)
		}
	}
	if want := []string{"cx22", "cx32", "cx42"}; !slices.Equal(names, want) {
		t.Errorf("sizes %q, want the x86 types %q", names, want)
	}
	images, err := d.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, im := range images {
		names = append(names, im.Name)
	}
	if want := []string{"debian-12", "debian-11", "ubuntu-24.04"}; !slices.Equal(names, want) {
		t.Errorf("images %q, want the x86 system images %q", names, want)
	}
}
