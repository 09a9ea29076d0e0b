// Package all registers every service: the implemented ones (by
// importing their packages) and those of the original that this
// toppcloud refuses, with the reason an app asking for them is given.
package all

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/toppcloud/toppcloud/internal/service"
	_ "github.com/toppcloud/toppcloud/internal/service/files"
	"github.com/toppcloud/toppcloud/internal/service/mysql"
	"github.com/toppcloud/toppcloud/internal/service/postgresql"
	"github.com/toppcloud/toppcloud/internal/service/redis"
	_ "github.com/toppcloud/toppcloud/internal/service/writableroot"
)

func init() {
	service.Register(service.Info{Name: "couchdb", Unavailable: "CouchDB is not packaged in Debian 12, and toppcloud installs services only from the distribution; " +
		"store documents in service.postgresql (jsonb) or service.redis instead"})
	service.Register(service.Info{Name: "mongodb", Unavailable: "MongoDB is not packaged in Debian 12 (its licence keeps it out), and toppcloud installs services only from the distribution; " +
		"store documents in service.postgresql (jsonb) instead"})
}

// SiteServers are the services a site's services node runs for its app
// nodes: the database servers. The others (files, writable_root) keep
// data on the app node itself and cannot be shared by a site.
var SiteServers = []string{postgresql.Name, postgresql.PostGISName, mysql.Name, redis.Name}

// SiteSettings are the settings of a services node's servers: listening
// on listen (its private address) besides loopback, apps told to connect
// there, and clients (the app nodes: addresses or CIDR prefixes) let in.
// With no listen address the node is a node of its own and gets nil (the
// servers' defaults). Anything but addresses is refused: these go into
// the servers' configuration files.
func SiteSettings(listen string, clients []string) (map[string]service.Settings, error) {
	if listen == "" {
		return nil, nil
	}
	if a, err := netip.ParseAddr(listen); err != nil || a.Zone() != "" {
		return nil, fmt.Errorf("the services node's listen address %q is not an IP address", listen)
	}
	for _, c := range clients {
		if _, err := netip.ParsePrefix(c); err == nil {
			continue
		}
		if a, err := netip.ParseAddr(c); err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("service client %q is neither an IP address nor a CIDR prefix", c)
		}
	}
	out := map[string]service.Settings{}
	for _, name := range SiteServers {
		out[name] = service.Settings{Host: listen, ExtraListen: []string{listen}, Clients: slices.Clone(clients)}
	}
	return out, nil
}
