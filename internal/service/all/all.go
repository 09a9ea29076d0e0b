// Package all registers every service: the implemented ones (by
// importing their packages) and those of the original that this
// toppcloud refuses, with the reason an app asking for them is given.
package all

import (
	"github.com/toppcloud/toppcloud/internal/service"
	_ "github.com/toppcloud/toppcloud/internal/service/files"
	_ "github.com/toppcloud/toppcloud/internal/service/mysql"
	_ "github.com/toppcloud/toppcloud/internal/service/postgresql"
	_ "github.com/toppcloud/toppcloud/internal/service/redis"
	_ "github.com/toppcloud/toppcloud/internal/service/writableroot"
)

func init() {
	service.Register(service.Info{Name: "couchdb", Unavailable: "CouchDB is not packaged in Debian 12, and toppcloud installs services only from the distribution; " +
		"store documents in service.postgresql (jsonb) or service.redis instead"})
	service.Register(service.Info{Name: "mongodb", Unavailable: "MongoDB is not packaged in Debian 12 (its licence keeps it out), and toppcloud installs services only from the distribution; " +
		"store documents in service.postgresql (jsonb) instead"})
}
