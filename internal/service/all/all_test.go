package all_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/service"
	_ "github.com/toppcloud/toppcloud/internal/service/all"
)

func TestRegistry(t *testing.T) {
	want := []string{"files", "mysql", "postgis", "postgresql", "redis", "writable_root"}
	if got := service.Names(); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, name := range []string{"couchdb", "mongodb"} {
		_, err := service.Resolve(service.Node{}, service.App{Name: "a"}, []service.Request{{Name: "files"}, {Name: name}})
		if !errors.Is(err, service.ErrUnavailable) || !strings.Contains(err.Error(), "service."+name) || !strings.Contains(err.Error(), "Debian 12") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
