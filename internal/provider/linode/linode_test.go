package linode

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/linode/fake"
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
		Settings:       map[string]string{"region": "us-east"},
		RegionRequired: true,
		Image:          "id linode/debian12",
		Size:           "name g6-nanode-1",
		ListPath:       "/v4/linode/instances",
		States: map[string]provider.State{
			"provisioning": provider.StatePending, "booting": provider.StatePending, "rebooting": provider.StatePending,
			"migrating": provider.StatePending, "rebuilding": provider.StatePending, "cloning": provider.StatePending,
			"restoring": provider.StatePending, "resizing": provider.StatePending, "running": provider.StateRunning,
			"offline": provider.StateStopped, "shutting_down": provider.StateStopped, "stopped": provider.StateStopped,
			"deleting": provider.StateTerminated, "weird": provider.StateUnknown,
		},
		KeyAPI: false,
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
		t.Fatal("linode is not registered")
	}
	s := provider.Resolve(info.Options, nil, func(k string) string {
		if k == "LINODE_TOKEN" {
			return "from-env"
		}
		return ""
	})
	if s.Get("secret") != "from-env" {
		t.Errorf("secret from $LINODE_TOKEN = %q", s.Get("secret"))
	}
	if _, err := New(provider.Env{Settings: provider.Settings{}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New without a token succeeded")
	}
	if _, err := New(provider.Env{Settings: provider.Settings{"secret": "x", "endpoint": "ftp://x"}, HTTPClient: http.DefaultClient}); err == nil {
		t.Error("New with an ftp endpoint succeeded")
	}
}

func TestCreateNode_RootPasswordRandomAndKept(t *testing.T) {
	srv := fake.New(fake.Options{Errorf: t.Errorf})
	defer srv.Close()
	d, err := New(provider.Env{Settings: provider.Settings{"secret": fakeapi.DefaultToken, "endpoint": srv.URL(), "region": "us-east"}, HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	img := provider.Image{ID: "linode/debian12"}
	key := []string{providertest.TestKey}
	var seen []string
	n1, err := d.CreateNode(ctx, provider.CreateRequest{Name: "pw-1", Image: img, Size: provider.Size{ID: "g6-nanode-1"}, AuthorizedKeys: key})
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, fmt.Sprintf("%+v", n1))
	_, err = d.CreateNode(ctx, provider.CreateRequest{Name: "pw-2", Image: img, Size: provider.Size{ID: "g6-nope"}, AuthorizedKeys: key})
	if err == nil {
		t.Fatal("create with an unknown type succeeded")
	}
	seen = append(seen, err.Error())
	pws := srv.RootPasswords()
	if len(pws) != 2 || pws[0] == pws[1] {
		t.Fatalf("root passwords sent: %d, distinct: %v; want two different ones", len(pws), len(pws) == 2 && pws[0] != pws[1])
	}
	for _, pw := range pws {
		if len(pw) < 32 {
			t.Errorf("root password of %d characters, want at least 32", len(pw))
		}
		for _, s := range seen {
			if strings.Contains(s, pw) {
				t.Errorf("root password leaked into %q", s)
			}
		}
	}
	if got := srv.NodeKeys(n1.ID); len(got) != 1 || got[0] != providertest.TestKey {
		t.Errorf("authorized_keys sent %q, want the test key", got)
	}
}
