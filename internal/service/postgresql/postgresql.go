// Package postgresql is service.postgresql and service.postgis: one
// PostgreSQL cluster per node (Debian's), and for each app a role with a
// generated password and a database it owns (with the PostGIS extension
// for postgis). pg_hba.conf lets a role log in only to the database of
// its own name (sameuser), with scram-sha-256, on the local socket and
// loopback; only the postgres system user logs in as itself (peer).
//
// Variables (the original's names): CONFIG_PG_DBNAME, CONFIG_PG_USER,
// CONFIG_PG_PASSWORD, CONFIG_PG_HOST, CONFIG_PG_PORT and
// CONFIG_PG_SQLALCHEMY (postgresql://USER:PASSWORD@HOST:PORT/DBNAME; the
// original's postgres:// scheme is gone from SQLAlchemy 1.4+, and its URL
// named the superuser).
//
// Backups are pg_dump -Fc (postgresql/postgresql.pgdump, or
// postgis/postgis.pgdump), restored with pg_restore into a new database
// that replaces the app's only once the whole restore succeeded.
package postgresql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/service"
)

// Names of the two services.
const (
	Name        = "postgresql"
	PostGISName = "postgis"
)

// credentialsName is the credentials file both services share, so an app
// that moves from one to the other keeps its password.
const credentialsName = "postgresql"

// Defaults are the settings of a node's own cluster.
var Defaults = service.Settings{Listen: "localhost", Host: "127.0.0.1", Port: 5432}

func init() {
	service.Register(service.Info{Name: Name, New: func(n service.Node) service.Service { return New(n, false) }})
	service.Register(service.Info{Name: PostGISName, New: func(n service.Node) service.Service { return New(n, true) }})
}

// PostgreSQL is the service on one node.
type PostgreSQL struct {
	h        *host.Host
	postgis  bool
	settings service.Settings
	// wait bounds how long Install waits for the server to accept
	// connections after a (re)start.
	wait time.Duration
}

// New returns service.postgresql (or service.postgis) for node n.
func New(n service.Node, postgis bool) *PostgreSQL {
	name := Name
	if postgis {
		name = PostGISName
	}
	return &PostgreSQL{h: n.Host, postgis: postgis, settings: n.Settings[name].Or(Defaults), wait: time.Minute}
}

// Name returns "postgresql" or "postgis".
func (p *PostgreSQL) Name() string {
	if p.postgis {
		return PostGISName
	}
	return Name
}

// Conflicts: an app uses one of the two.
func (p *PostgreSQL) Conflicts() []string {
	if p.postgis {
		return []string{Name}
	}
	return []string{PostGISName}
}

// Packages are the server, PostGIS for postgis, and the client library of
// the app's platform.
func (p *PostgreSQL) Packages(app service.App) []string {
	pkgs := []string{"postgresql", "postgresql-client"}
	if p.postgis {
		pkgs = append(pkgs, "postgresql-postgis")
	}
	return append(pkgs, platformLibrary(app)...)
}

// ClientPackages are what an app node of a site needs to use a services
// node's server: the command line client and the platform's library.
func (p *PostgreSQL) ClientPackages(app service.App) []string {
	return append([]string{"postgresql-client"}, platformLibrary(app)...)
}

func platformLibrary(app service.App) []string {
	switch app.Platform {
	case "python", "":
		return []string{"python3-psycopg2"}
	case "php":
		return []string{"php-pgsql"}
	}
	return nil
}

// cluster is the node's PostgreSQL cluster, as pg_lsclusters shows it.
type cluster struct {
	version, name string
	port          int
	online        bool
}

func (c cluster) unit() string { return "postgresql@" + c.version + "-" + c.name }
func (c cluster) etc() string  { return path.Join("/etc/postgresql", c.version, c.name) }

func (p *PostgreSQL) run(ctx context.Context, c host.Command) ([]byte, error) {
	return p.h.Runner.Run(ctx, c)
}

// findCluster returns the cluster toppcloud uses: "main" of the newest
// version.
func (p *PostgreSQL) findCluster(ctx context.Context) (cluster, bool, error) {
	out, err := p.run(ctx, host.Command{Argv: []string{"pg_lsclusters", "--no-header"}})
	if err != nil {
		return cluster{}, false, fmt.Errorf("list PostgreSQL clusters: %w", err)
	}
	var found []cluster
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[1] != "main" {
			continue
		}
		port, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		found = append(found, cluster{version: f[0], name: f[1], port: port, online: strings.HasPrefix(f[3], "online")})
	}
	if len(found) == 0 {
		return cluster{}, false, nil
	}
	slices.SortFunc(found, func(a, b cluster) int { return versionCmp(a.version, b.version) })
	return found[len(found)-1], true, nil
}

func versionCmp(a, b string) int {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// hbaHead is the pg_hba.conf toppcloud keeps on a node of its own: the
// postgres system user as itself, every other role only into its own
// database, with a password.
const hbaHead = `# pg_hba.conf written by toppcloud: do not edit (it is rewritten).
# Each app's role logs in only to the database of the same name (sameuser),
# with its scram-sha-256 password; only the postgres system user logs in
# without one (peer), as itself.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 peer
local   sameuser  all                      scram-sha-256
host    sameuser  all       127.0.0.1/32   scram-sha-256
host    sameuser  all       ::1/128        scram-sha-256
`

// hbaConf is the whole pg_hba.conf: hbaHead and, on a services node, a
// host line for each client address (a site's app nodes), with the same
// rule: a role into its own database, with its password.
func (p *PostgreSQL) hbaConf() string {
	var b strings.Builder
	b.WriteString(hbaHead)
	if len(p.settings.Clients) > 0 {
		b.WriteString("# The site's app nodes:\n")
	}
	for _, c := range p.settings.Clients {
		fmt.Fprintf(&b, "host    sameuser  all       %-14s scram-sha-256\n", hostMask(c))
	}
	return b.String()
}

// hostMask is a client address as pg_hba wants it: an address alone gets
// the mask of one host; a CIDR range stays as it is.
func hostMask(addr string) string {
	if strings.Contains(addr, "/") {
		return addr
	}
	if strings.Contains(addr, ":") {
		return addr + "/128"
	}
	return addr + "/32"
}

func (p *PostgreSQL) serverConf(port int) string {
	return fmt.Sprintf(`# written by toppcloud: do not edit (it is rewritten).
listen_addresses = '%s'
port = %d
password_encryption = 'scram-sha-256'
`, strings.Join(p.settings.Addresses(), ","), port)
}

// Install configures the cluster (making one if the package did not) and
// starts it: our pg_hba.conf and conf.d/toppcloud.conf; restart when the
// listening address or port changed, reload for pg_hba alone.
func (p *PostgreSQL) Install(ctx context.Context) error {
	c, ok, err := p.findCluster(ctx)
	if err != nil {
		return err
	}
	if !ok {
		version, err := p.newestServer()
		if err != nil {
			return err
		}
		if _, err := p.run(ctx, host.Command{Argv: []string{"pg_createcluster", version, "main"}}); err != nil {
			return fmt.Errorf("create the PostgreSQL cluster: %w", err)
		}
		if c, ok, err = p.findCluster(ctx); err != nil {
			return err
		} else if !ok {
			return errors.New("pg_createcluster made no cluster \"main\"")
		}
	}
	owner := host.Attr{Mode: 0o644, User: "postgres", Group: "postgres"}
	confChanged, err := p.h.WriteFile(path.Join(c.etc(), "conf.d", "toppcloud.conf"), []byte(p.serverConf(p.settings.Port)), owner)
	if err != nil {
		return err
	}
	hbaChanged, err := p.h.WriteFile(path.Join(c.etc(), "pg_hba.conf"), []byte(p.hbaConf()), host.Attr{Mode: 0o640, User: "postgres", Group: "postgres"})
	if err != nil {
		return err
	}
	sd := system.Systemd{Runner: p.h.Runner}
	if _, err := sd.Enable(ctx, c.unit()); err != nil {
		return err
	}
	switch {
	case !c.online || confChanged:
		err = sd.Restart(ctx, c.unit())
	case hbaChanged:
		err = sd.Reload(ctx, c.unit())
	}
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	return p.waitReady(ctx)
}

// newestServer finds the newest installed server version.
func (p *PostgreSQL) newestServer() (string, error) {
	entries, err := os.ReadDir(p.h.Path("/usr/lib/postgresql"))
	if err != nil {
		return "", fmt.Errorf("no PostgreSQL server installed: %w", err)
	}
	var versions []string
	for _, e := range entries {
		if _, err := os.Stat(p.h.Path(path.Join("/usr/lib/postgresql", e.Name(), "bin/postgres"))); err == nil {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) == 0 {
		return "", errors.New("no PostgreSQL server installed under /usr/lib/postgresql")
	}
	slices.SortFunc(versions, versionCmp)
	return versions[len(versions)-1], nil
}

// waitReady waits until the server answers a query.
func (p *PostgreSQL) waitReady(ctx context.Context) error {
	return service.WaitReady(ctx, "PostgreSQL", p.wait, func(ctx context.Context) error {
		_, err := p.psql(ctx, "postgres", "SELECT 1")
		return err
	})
}

// asPostgres runs argv as the postgres system user, which logs in to the
// cluster as its superuser (peer).
func asPostgres(argv ...string) []string {
	return append([]string{"runuser", "-u", "postgres", "--"}, argv...)
}

// psql runs sql (several statements may be given; each runs on its own,
// so CREATE DATABASE works) in database db as the superuser and returns
// the rows, one per line, fields separated by '|'. The SQL goes on stdin:
// nothing of it shows in the process list.
func (p *PostgreSQL) psql(ctx context.Context, db, sql string) ([]string, error) {
	out, err := p.run(ctx, host.Command{
		Argv:  asPostgres("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db),
		Stdin: strings.NewReader(sql),
	})
	if err != nil {
		return nil, err
	}
	var rows []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			rows = append(rows, l)
		}
	}
	return rows, nil
}

// Names PostgreSQL keeps for itself: an app cannot have them as role or
// database.
var reserved = []string{"postgres", "template0", "template1", "public", "all", "sameuser", "samerole", "replication"}

func checkName(app string) error {
	if slices.Contains(reserved, app) || strings.HasPrefix(app, "pg_") {
		return fmt.Errorf("the app name %q is reserved by PostgreSQL (a role or database of its own): deploy the app under another name (--name)", app)
	}
	if len(app) > 63 {
		return fmt.Errorf("the app name %q is longer than PostgreSQL's 63-byte names", app)
	}
	return nil
}

// ident quotes a PostgreSQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes a PostgreSQL string literal.
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func (p *PostgreSQL) vars(app service.App, c service.Credentials) map[string]string {
	s := p.settings
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(c.User, c.Password), Host: hostPort(s.Host, s.Port), Path: "/" + app.Name}
	return map[string]string{
		service.PGPrefix + service.VarDBName:     app.Name,
		service.PGPrefix + service.VarUser:       c.User,
		service.PGPrefix + service.VarPassword:   c.Password,
		service.PGPrefix + service.VarHost:       s.Host,
		service.PGPrefix + service.VarPort:       strconv.Itoa(s.Port),
		service.PGPrefix + service.VarSQLAlchemy: u.String(),
	}
}

func hostPort(h string, port int) string {
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(port)
}

// Setup makes (or corrects) the app's role, password and database.
func (p *PostgreSQL) Setup(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	creds, err := service.AppCredentials(p.h, app, credentialsName, app.Name)
	if err != nil {
		return nil, err
	}
	if err := p.ensureRole(ctx, creds); err != nil {
		return nil, err
	}
	if err := p.ensureDatabase(ctx, app.Name, app.Name); err != nil {
		return nil, err
	}
	if err := p.grant(ctx, app.Name); err != nil {
		return nil, err
	}
	return p.vars(app, creds), nil
}

// roleAttrs are the role's attributes: it logs in, and may nothing else
// beyond its own database.
const roleAttrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

func (p *PostgreSQL) ensureRole(ctx context.Context, c service.Credentials) error {
	rows, err := p.psql(ctx, "postgres", "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = "+literal(c.User))
	if err != nil {
		return fmt.Errorf("look up role %s: %w", c.User, err)
	}
	var sql string
	switch {
	case len(rows) == 0:
		v, err := scramVerifier(c.Password)
		if err != nil {
			return err
		}
		sql = fmt.Sprintf("CREATE ROLE %s %s PASSWORD %s", ident(c.User), roleAttrs, literal(v))
	case !scramMatches(rows[0], c.Password):
		v, err := scramVerifier(c.Password)
		if err != nil {
			return err
		}
		sql = fmt.Sprintf("ALTER ROLE %s %s PASSWORD %s", ident(c.User), roleAttrs, literal(v))
	default:
		sql = fmt.Sprintf("ALTER ROLE %s %s", ident(c.User), roleAttrs)
	}
	if _, err := p.psql(ctx, "postgres", sql); err != nil {
		return fmt.Errorf("role %s: %w", c.User, err)
	}
	return nil
}

// ensureDatabase makes database db owned by owner if it does not exist.
func (p *PostgreSQL) ensureDatabase(ctx context.Context, db, owner string) error {
	rows, err := p.psql(ctx, "postgres", "SELECT 1 FROM pg_database WHERE datname = "+literal(db))
	if err != nil {
		return fmt.Errorf("look up database %s: %w", db, err)
	}
	if len(rows) == 0 {
		// template0 and C.UTF-8: the same encoding and collation on every
		// node, whatever locale the node was installed with.
		sql := fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'", ident(db), ident(owner))
		if _, err := p.psql(ctx, "postgres", sql); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	if p.postgis {
		if _, err := p.psql(ctx, db, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
			return fmt.Errorf("PostGIS in %s: %w", db, err)
		}
	}
	return nil
}

// grant gives the database to its app alone: nobody else (PUBLIC) may
// connect or create in it, whatever pg_hba.conf says.
func (p *PostgreSQL) grant(ctx context.Context, app string) error {
	db := ident(app)
	sql := fmt.Sprintf("ALTER DATABASE %s OWNER TO %s;\nREVOKE ALL ON DATABASE %s FROM PUBLIC;\nGRANT ALL ON DATABASE %s TO %s;\n", db, db, db, db, db)
	if _, err := p.psql(ctx, "postgres", sql); err != nil {
		return fmt.Errorf("grants on database %s: %w", app, err)
	}
	return nil
}

// dropDatabase drops db, ending its sessions first.
func (p *PostgreSQL) dropDatabase(ctx context.Context, db string) error {
	if _, err := p.psql(ctx, "postgres", "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

// Clear drops the app's database and makes it again, empty.
func (p *PostgreSQL) Clear(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	if err := p.dropDatabase(ctx, app.Name); err != nil {
		return nil, err
	}
	return p.Setup(ctx, app)
}

// dumpCompression is pg_dump's zlib level. pg_dump compresses on one
// core, and that bounds the whole backup: a 1 GB database took 49-55 s to
// dump at the default level here, about 30 s at level 1, for a dump a few
// percent larger (bench/services).
const dumpCompression = "1"

func (p *PostgreSQL) dumpName() string { return p.Name() + ".pgdump" }

const dumpReadme = `%s: the app's database, made by pg_dump -Fc (custom format).
Restore it by hand with: pg_restore --dbname=DBNAME --single-transaction %s
`

// Backup dumps the database with pg_dump -Fc into dir.
func (p *PostgreSQL) Backup(ctx context.Context, app service.App, dir string) error {
	err := service.DumpTo(ctx, p.h, path.Join(dir, p.dumpName()), host.Command{
		Argv: asPostgres("pg_dump", "--format=custom", "--compress="+dumpCompression, "--dbname="+app.Name),
	})
	if err != nil {
		return fmt.Errorf("pg_dump %s: %w", app.Name, err)
	}
	_, err = p.h.WriteFile(path.Join(dir, p.Name()+".README.txt"), fmt.Appendf(nil, dumpReadme, p.dumpName(), p.dumpName()), host.Attr{Mode: 0o600})
	return err
}

// CheckBackup reads the dump's table of contents.
func (p *PostgreSQL) CheckBackup(ctx context.Context, app service.App, dir string) error {
	f, err := os.Open(p.h.Path(path.Join(dir, p.dumpName())))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := p.run(ctx, host.Command{Argv: asPostgres("pg_restore", "--list"), Stdin: f, Stdout: io.Discard}); err != nil {
		return fmt.Errorf("%s is not a pg_dump archive pg_restore can read: %w", p.dumpName(), err)
	}
	return nil
}

// restoringName is the database a restore fills before it replaces the
// app's: not a valid app name, so never another app's.
func restoringName(app string) string { return app + ".restoring" }

// Restore loads the dump into a new database (in one transaction) and,
// only when that worked, drops the app's database and renames the new one
// in its place. A failed restore leaves the app's data as it was.
func (p *PostgreSQL) Restore(ctx context.Context, app service.App, dir string) error {
	if err := checkName(app.Name); err != nil {
		return err
	}
	if _, err := p.Setup(ctx, app); err != nil {
		return err
	}
	tmp := restoringName(app.Name)
	if err := p.dropDatabase(ctx, tmp); err != nil {
		return err
	}
	if err := p.ensureDatabaseOnly(ctx, tmp, app.Name); err != nil {
		return err
	}
	f, err := os.Open(p.h.Path(path.Join(dir, p.dumpName())))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = p.run(ctx, host.Command{
		Argv:  asPostgres("pg_restore", "--dbname="+tmp, "--single-transaction", "--exit-on-error"),
		Stdin: f,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("pg_restore: %w", err), p.dropDatabase(ctx, tmp))
	}
	if err := p.dropDatabase(ctx, app.Name); err != nil {
		return err
	}
	if _, err := p.psql(ctx, "postgres", fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(tmp), ident(app.Name))); err != nil {
		return fmt.Errorf("put the restored database in place: %w", err)
	}
	return p.grant(ctx, app.Name)
}

// ensureDatabaseOnly makes an empty database without extensions: the
// dump brings its own (CREATE EXTENSION IF NOT EXISTS).
func (p *PostgreSQL) ensureDatabaseOnly(ctx context.Context, db, owner string) error {
	postgis := p.postgis
	p.postgis = false
	defer func() { p.postgis = postgis }()
	return p.ensureDatabase(ctx, db, owner)
}

// Usage is the database's size and its number of tables (those of
// extensions not counted).
func (p *PostgreSQL) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	rows, err := p.psql(ctx, app.Name, `SELECT pg_database_size(current_database()),
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\_toast%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))`)
	if err != nil {
		return service.Usage{}, err
	}
	if len(rows) != 1 {
		return service.Usage{}, fmt.Errorf("usage: unexpected answer %q", rows)
	}
	size, tables, _ := strings.Cut(rows[0], "|")
	u := service.Usage{Unit: "tables"}
	u.Bytes, _ = strconv.ParseInt(size, 10, 64)
	u.Items, _ = strconv.ParseInt(tables, 10, 64)
	return u, nil
}

var (
	_ service.Service       = (*PostgreSQL)(nil)
	_ service.BackupChecker = (*PostgreSQL)(nil)
	_ service.Conflicter    = (*PostgreSQL)(nil)
)
