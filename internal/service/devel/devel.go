// Package devel gives an application's services their CONFIG_* variables
// on a developer's machine, for `toppcloud serve`: the original's
// development stand-ins, read from the [devel] and [devel:APP] settings of
// ~/.toppcloud.conf (config.File.Devel), with the same variable names as
// the services on a node (internal/service).
//
// Directories (service.files, service.writable_root) are always provided:
// the settings' path, else a per-app directory under the development data
// directory (~/.toppcloud/devel/APP/). A database (service.postgresql,
// service.postgis, service.mysql, service.redis) is provided only when the
// settings point at one: toppcloud runs no database server on a
// developer's machine. Every service it cannot provide is reported, so
// serve can say why a variable is missing.
package devel

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/service"
)

// Input is what Env needs to know.
type Input struct {
	// App is the app name; APP_NAME in settings is already replaced.
	App string
	// Services are app.ini's service.NAME keys.
	Services []appconfig.Service
	// Settings are the merged [devel] and [devel:APP] keys
	// (config.File.Devel): files = PATH, writable_root = PATH,
	// postgresql.dbname = ..., mysql.host = ..., redis.port = ...
	Settings map[string]string
	// DataDir is the app's development data directory
	// (~/.toppcloud/devel/APP); the default directories live in it.
	DataDir string
	// Home expands ~ in paths; BaseDir anchors relative paths (the config
	// file's directory).
	Home    string
	BaseDir string
	// User is the local login name, the default database user as in the
	// original.
	User string
}

// Result is what the services give.
type Result struct {
	// Env holds the CONFIG_* variables.
	Env map[string]string
	// Provided says, one line per service given, where its data is
	// ("files: /home/me/.toppcloud/devel/blog/files").
	Provided []string
	// Missing says, one line per service not given, why and what to do.
	Missing []string
}

// Settings keys of the directory services. The original read "files" for
// both; writable_root has its own key here so that the two never share a
// directory (files an app keeps private would be served).
const (
	KeyFiles        = "files"
	KeyWritableRoot = "writable_root"
)

// A database service: which settings prefixes configure it, its variable
// prefix, and the defaults the original used.
type database struct {
	prefixes []string // settings prefixes, most specific last
	vars     string   // service.PGPrefix, ...
	scheme   string   // of the URL
	defaults func(in Input) map[string]string
	url      func(v map[string]string, scheme string) (string, string)
}

var databases = map[string]database{
	"postgresql": {prefixes: []string{"postgis", "postgresql"}, vars: service.PGPrefix, scheme: "postgresql", defaults: sqlDefaults(""), url: sqlURL},
	"postgis":    {prefixes: []string{"postgresql", "postgis"}, vars: service.PGPrefix, scheme: "postgresql", defaults: sqlDefaults(""), url: sqlURL},
	"mysql":      {prefixes: []string{"mysql"}, vars: service.MySQLPrefix, scheme: "mysql", defaults: sqlDefaults("root"), url: sqlURL},
	"redis":      {prefixes: []string{"redis"}, vars: service.RedisPrefix, scheme: "redis", defaults: redisDefaults, url: redisURL},
}

// unsupported are the original's services that nodes refuse.
var unsupported = map[string]string{
	"couchdb": "CouchDB is not packaged in Debian 12, so toppcloud nodes refuse service.couchdb",
	"mongodb": "MongoDB is not packaged in Debian 12, so toppcloud nodes refuse service.mongodb",
}

var settingRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Env computes the services' variables, creating the directories of the
// directory services. Services are handled in name order, as on a node.
func Env(in Input) (Result, error) {
	res := Result{Env: map[string]string{}}
	svcs := slices.Clone(in.Services)
	sort.SliceStable(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, s := range svcs {
		switch s.Name {
		case "files":
			if err := in.dir(&res, s.Name, KeyFiles, "files", service.VarFiles); err != nil {
				return res, err
			}
		case "writable_root":
			if err := in.dir(&res, s.Name, KeyWritableRoot, "writable-root", service.VarWritableRoot); err != nil {
				return res, err
			}
		default:
			if db, ok := databases[s.Name]; ok {
				if err := in.database(&res, s.Name, db); err != nil {
					return res, err
				}
				continue
			}
			if why, ok := unsupported[s.Name]; ok {
				res.Missing = append(res.Missing, fmt.Sprintf("service.%s: %s; the app gets no variables from it", s.Name, why))
				continue
			}
			res.Missing = append(res.Missing, fmt.Sprintf("service.%s: toppcloud has no service %q (it has files, writable_root, postgresql, postgis, mysql, redis); the app gets no variables from it", s.Name, s.Name))
		}
	}
	return res, nil
}

func (in Input) dir(res *Result, name, key, def, variable string) error {
	dir := filepath.Join(in.DataDir, def)
	if v := strings.TrimSpace(in.Settings[key]); v != "" {
		p, err := in.path(v)
		if err != nil {
			return fmt.Errorf("[devel] %s: %w", key, err)
		}
		dir = p
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("service.%s: %w", name, err)
	}
	res.Env[variable] = dir
	res.Provided = append(res.Provided, fmt.Sprintf("%s: %s", name, dir))
	return nil
}

func (in Input) path(p string) (string, error) {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if in.Home == "" {
			return "", fmt.Errorf("%s: no home directory to expand ~ in", p)
		}
		return filepath.Join(in.Home, p[1:]), nil
	case filepath.IsAbs(p):
		return filepath.Clean(p), nil
	case in.BaseDir != "":
		return filepath.Join(in.BaseDir, p), nil
	}
	return "", fmt.Errorf("%s: a relative path needs the config file's directory", p)
}

func (in Input) database(res *Result, name string, db database) error {
	given := map[string]string{}
	for _, prefix := range db.prefixes {
		for k, v := range in.Settings {
			sub, ok := strings.CutPrefix(k, prefix+".")
			if !ok {
				continue
			}
			if !settingRE.MatchString(sub) {
				return fmt.Errorf("[devel] %s: %q is not a setting name (letters, digits, _)", k, sub)
			}
			given[strings.ToUpper(sub)] = v
		}
	}
	if len(given) == 0 {
		res.Missing = append(res.Missing, fmt.Sprintf(
			"service.%s: toppcloud runs no database locally and no [devel] setting points at one; "+
				"add %s.dbname = APP_NAME (and %s.host, .port, .user, .password as needed) to [devel:%s] in ~/.toppcloud.conf; "+
				"until then the app gets no %s* variables",
			name, db.prefixes[len(db.prefixes)-1], db.prefixes[len(db.prefixes)-1], in.App, db.vars))
		return nil
	}
	vals := db.defaults(in)
	for k, v := range given {
		vals[k] = v
	}
	u, where := db.url(vals, db.scheme)
	if _, set := given[service.VarSQLAlchemy]; !set && db.scheme != "redis" {
		vals[service.VarSQLAlchemy] = u
	}
	if _, set := given[service.VarURL]; !set && db.scheme == "redis" {
		vals[service.VarURL] = u
	}
	for k, v := range vals {
		res.Env[db.vars+k] = v
	}
	res.Provided = append(res.Provided, fmt.Sprintf("%s: %s (from [devel] settings)", name, where))
	return nil
}

func sqlDefaults(user string) func(in Input) map[string]string {
	return func(in Input) map[string]string {
		u := user
		if u == "" {
			u = in.User
		}
		return map[string]string{
			service.VarDBName: in.App, service.VarUser: u, service.VarPassword: "",
			service.VarHost: "", service.VarPort: "",
		}
	}
}

func redisDefaults(in Input) map[string]string {
	return map[string]string{
		service.VarHost: "127.0.0.1", service.VarPort: "6379", service.VarUser: "",
		service.VarPassword: "", service.VarPrefix: in.App + ":",
	}
}

// sqlURL assembles scheme://[user[:password]@][host][:port]/dbname, as the
// original assembled CONFIG_PG_SQLALCHEMY in development, and says where
// the database is without the password.
func sqlURL(v map[string]string, scheme string) (string, string) {
	u := url.URL{Scheme: scheme, Path: "/" + v[service.VarDBName]}
	host := v[service.VarHost]
	if strings.HasPrefix(host, "/") {
		// A socket directory: libpq and SQLAlchemy take it as ?host=.
		u.RawQuery = url.Values{"host": {host}}.Encode()
		host = ""
	}
	u.Host = joinHostPort(host, v[service.VarPort])
	if v[service.VarUser] != "" {
		if v[service.VarPassword] != "" {
			u.User = url.UserPassword(v[service.VarUser], v[service.VarPassword])
		} else {
			u.User = url.User(v[service.VarUser])
		}
	}
	where := fmt.Sprintf("database %s", v[service.VarDBName])
	if h := v[service.VarHost]; h != "" {
		where += " on " + joinHostPort(h, v[service.VarPort])
	} else {
		where += " on the local socket"
	}
	if v[service.VarUser] != "" {
		where += " as " + v[service.VarUser]
	}
	return u.String(), where
}

func redisURL(v map[string]string, scheme string) (string, string) {
	u := url.URL{Scheme: scheme, Host: joinHostPort(v[service.VarHost], v[service.VarPort]), Path: "/0"}
	if v[service.VarUser] != "" || v[service.VarPassword] != "" {
		u.User = url.UserPassword(v[service.VarUser], v[service.VarPassword])
	}
	return u.String(), fmt.Sprintf("redis on %s, keys %s*", u.Host, v[service.VarPrefix])
}

func joinHostPort(host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, port)
}
