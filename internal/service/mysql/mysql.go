// Package mysql is service.mysql: MariaDB (Debian's MySQL), one server
// per node, and for each app a database and a user with a generated
// password granted only on it.
//
// Variables (the original's names): CONFIG_MYSQL_DBNAME,
// CONFIG_MYSQL_USER, CONFIG_MYSQL_PASSWORD, CONFIG_MYSQL_HOST,
// CONFIG_MYSQL_PORT, CONFIG_MYSQL_SQLALCHEMY
// (mysql://USER:PASSWORD@HOST:PORT/DBNAME).
//
// Backups are mysqldump --single-transaction (mysql/mysql.dump), restored
// into the emptied database.
package mysql

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
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

// Name is the service's name in app.ini.
const Name = "mysql"

// DumpName is the backup file, as the original named it.
const DumpName = "mysql.dump"

// Defaults are the settings of a node's own server.
var Defaults = service.Settings{Listen: "127.0.0.1", Host: "127.0.0.1", Port: 3306}

// ConfPath is toppcloud's server configuration.
const ConfPath = "/etc/mysql/mariadb.conf.d/90-toppcloud.cnf"

// Unit is the server's systemd unit.
const Unit = "mariadb.service"

func init() {
	service.Register(service.Info{Name: Name, New: func(n service.Node) service.Service { return New(n) }})
}

// MySQL is the service on one node.
type MySQL struct {
	h        *host.Host
	settings service.Settings
	wait     time.Duration
}

// New returns service.mysql for node n.
func New(n service.Node) *MySQL {
	return &MySQL{h: n.Host, settings: n.Settings[Name].Or(Defaults), wait: time.Minute}
}

// Name returns "mysql".
func (*MySQL) Name() string { return Name }

// Packages are the server and the client library of the app's platform.
func (m *MySQL) Packages(app service.App) []string {
	return append([]string{"mariadb-server"}, m.ClientPackages(app)...)
}

// ClientPackages are what an app node of a site needs to use a services
// node's server: the command line client and the platform's library.
func (*MySQL) ClientPackages(app service.App) []string {
	pkgs := []string{"mariadb-client"}
	switch app.Platform {
	case "python", "":
		pkgs = append(pkgs, "python3-mysqldb")
	case "php":
		pkgs = append(pkgs, "php-mysql")
	}
	return pkgs
}

func (m *MySQL) conf() string {
	return fmt.Sprintf(`# written by toppcloud: do not edit (it is rewritten).
[mysqld]
bind-address = %s
port = %d
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
`, strings.Join(m.settings.Addresses(), ","), m.settings.Port)
}

// Install writes the server's configuration and starts it (restarting
// it when the configuration changed).
func (m *MySQL) Install(ctx context.Context) error {
	changed, err := m.h.WriteFile(ConfPath, []byte(m.conf()), host.Attr{Mode: 0o644})
	if err != nil {
		return err
	}
	sd := system.Systemd{Runner: m.h.Runner}
	if _, err := sd.Enable(ctx, Unit); err != nil {
		return err
	}
	active := sd.Active(ctx, Unit)
	switch {
	case changed && active:
		err = sd.Restart(ctx, Unit)
	case !active:
		err = sd.Start(ctx, Unit)
	}
	if err != nil {
		return fmt.Errorf("start MariaDB: %w", err)
	}
	return service.WaitReady(ctx, "MariaDB", m.wait, func(ctx context.Context) error {
		_, err := m.sql(ctx, "", "SELECT 1")
		return err
	})
}

// client is the command line client as the server's root, which logs in
// through the unix socket as the system's root (unix_socket, Debian's
// default).
func client(db string, extra ...string) []string {
	argv := []string{"mariadb", "--batch", "--skip-column-names", "--default-character-set=utf8mb4"}
	argv = append(argv, extra...)
	if db != "" {
		argv = append(argv, "--database="+db)
	}
	return argv
}

// sql runs statements as root and returns the rows (tab-separated). The
// SQL goes on stdin: nothing of it shows in the process list.
func (m *MySQL) sql(ctx context.Context, db, sql string) ([]string, error) {
	out, err := m.h.Runner.Run(ctx, host.Command{Argv: client(db), Stdin: strings.NewReader(sql)})
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

// Names the server keeps for itself.
var reserved = []string{"mysql", "information_schema", "performance_schema", "sys", "root", "mariadb.sys", "test"}

func checkName(app string) error {
	if slices.Contains(reserved, app) {
		return fmt.Errorf("the app name %q is reserved by MariaDB (a database or user of its own): deploy the app under another name (--name)", app)
	}
	if len(app) > 64 {
		return fmt.Errorf("the app name %q is longer than MariaDB's 64-character names", app)
	}
	return nil
}

// ident quotes an identifier; literal a string.
func ident(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
func literal(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// nativeHash is mysql_native_password's stored form: the password never
// reaches the server in clear.
func nativeHash(password string) string {
	a := sha1.Sum([]byte(password))
	b := sha1.Sum(a[:])
	return "*" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// localHosts are the hosts an app's user may connect from on any node:
// the socket (localhost) and loopback TCP.
var localHosts = []string{"localhost", "127.0.0.1", "::1"}

// userHosts are localHosts and, on a services node, the site's app
// nodes (Settings.Clients): the app's user exists once for each.
// (A list of addresses in bind-address needs MariaDB 10.11+, Debian 12's.)
func (m *MySQL) userHosts() []string {
	out := slices.Clone(localHosts)
	for _, c := range m.settings.Clients {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func (m *MySQL) vars(app service.App, c service.Credentials) map[string]string {
	s := m.settings
	h := s.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(c.User, c.Password), Host: h + ":" + strconv.Itoa(s.Port), Path: "/" + app.Name}
	return map[string]string{
		service.MySQLPrefix + service.VarDBName:     app.Name,
		service.MySQLPrefix + service.VarUser:       c.User,
		service.MySQLPrefix + service.VarPassword:   c.Password,
		service.MySQLPrefix + service.VarHost:       s.Host,
		service.MySQLPrefix + service.VarPort:       strconv.Itoa(s.Port),
		service.MySQLPrefix + service.VarSQLAlchemy: u.String(),
	}
}

// Setup makes (or corrects) the app's database, user and grants.
func (m *MySQL) Setup(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	creds, err := service.AppCredentials(m.h, app, Name, app.Name)
	if err != nil {
		return nil, err
	}
	hash := literal(nativeHash(creds.Password))
	hosts := m.userHosts()
	// A node that is no longer one of the site's app nodes loses its
	// login too, not only its way through the firewall: it may come back
	// as another site's node with the same address.
	had, err := m.sql(ctx, "", "SELECT host FROM mysql.user WHERE user = "+literal(creds.User))
	if err != nil {
		return nil, fmt.Errorf("users of %s: %w", app.Name, err)
	}
	var b strings.Builder
	for _, h := range had {
		if !slices.Contains(hosts, h) {
			fmt.Fprintf(&b, "DROP USER IF EXISTS %s@%s;\n", literal(creds.User), literal(h))
		}
	}
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n", ident(app.Name))
	for _, h := range hosts {
		user := literal(creds.User) + "@" + literal(h)
		fmt.Fprintf(&b, "CREATE USER IF NOT EXISTS %s IDENTIFIED BY PASSWORD %s;\n", user, hash)
		fmt.Fprintf(&b, "ALTER USER %s IDENTIFIED BY PASSWORD %s;\n", user, hash)
		fmt.Fprintf(&b, "GRANT ALL PRIVILEGES ON %s.* TO %s;\n", ident(app.Name), user)
	}
	if _, err := m.sql(ctx, "", b.String()); err != nil {
		return nil, fmt.Errorf("database and user %s: %w", app.Name, err)
	}
	return m.vars(app, creds), nil
}

// killSessions ends the app user's connections, so that dropping its
// database does not wait on their locks.
func (m *MySQL) killSessions(ctx context.Context, user string) error {
	rows, err := m.sql(ctx, "", "SELECT id FROM information_schema.processlist WHERE user = "+literal(user))
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, id := range rows {
		if _, err := strconv.Atoi(id); err == nil {
			// IF EXISTS is not MariaDB's; a session gone meanwhile makes
			// KILL fail, so each is its own statement with errors ignored.
			fmt.Fprintf(&b, "KILL CONNECTION %s;\n", id)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	_, _ = m.h.Runner.Run(ctx, host.Command{Argv: client("", "--force"), Stdin: strings.NewReader(b.String())})
	return nil
}

// emptied is recreate for Clear, which returns the variables.
func (m *MySQL) emptied(ctx context.Context, app service.App) (map[string]string, error) {
	if err := m.killSessions(ctx, app.Name); err != nil {
		return nil, err
	}
	if _, err := m.sql(ctx, "", "DROP DATABASE IF EXISTS "+ident(app.Name)); err != nil {
		return nil, fmt.Errorf("drop database %s: %w", app.Name, err)
	}
	return m.Setup(ctx, app)
}

// Clear drops the app's database and makes it again, empty.
func (m *MySQL) Clear(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	return m.emptied(ctx, app)
}

const dumpReadme = `mysql.dump: the app's database, made by mysqldump --single-transaction.
Restore it by hand with: mysql DBNAME < mysql.dump
`

// Backup dumps the database into dir/mysql.dump.
func (m *MySQL) Backup(ctx context.Context, app service.App, dir string) error {
	err := service.DumpTo(ctx, m.h, path.Join(dir, DumpName), host.Command{Argv: []string{
		"mariadb-dump", "--single-transaction", "--routines", "--triggers", "--events",
		"--hex-blob", "--default-character-set=utf8mb4", "--skip-dump-date", app.Name,
	}})
	if err != nil {
		return fmt.Errorf("mysqldump %s: %w", app.Name, err)
	}
	_, err = m.h.WriteFile(path.Join(dir, "README.txt"), []byte(dumpReadme), host.Attr{Mode: 0o600})
	return err
}

// dumpEnd is the comment mysqldump writes last; a dump without it was
// cut short.
const dumpEnd = "-- Dump completed"

// CheckBackup checks that the dump is one mysqldump finished.
func (m *MySQL) CheckBackup(_ context.Context, _ service.App, dir string) error {
	f, err := os.Open(m.h.Path(path.Join(dir, DumpName)))
	if err != nil {
		return err
	}
	defer f.Close()
	// MariaDB 10.11.8 and later begin with a sandbox-mode comment line,
	// then the header.
	br := bufio.NewReader(f)
	header := false
	for range 3 {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "-- MariaDB dump") || strings.HasPrefix(line, "-- MySQL dump") {
			header = true
			break
		}
		if err != nil {
			break
		}
	}
	if !header {
		return fmt.Errorf("%s does not start as a mysqldump file", DumpName)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	tail := make([]byte, min(fi.Size(), 512))
	if _, err := f.ReadAt(tail, fi.Size()-int64(len(tail))); err != nil && err != io.EOF {
		return err
	}
	if !strings.Contains(string(tail), dumpEnd) {
		return fmt.Errorf("%s does not end as a finished mysqldump file (no %q)", DumpName, dumpEnd)
	}
	return nil
}

// Restore empties the app's database and loads the dump into it.
func (m *MySQL) Restore(ctx context.Context, app service.App, dir string) error {
	if err := checkName(app.Name); err != nil {
		return err
	}
	if err := m.CheckBackup(ctx, app, dir); err != nil {
		return err
	}
	if _, err := m.emptied(ctx, app); err != nil {
		return err
	}
	f, err := os.Open(m.h.Path(path.Join(dir, DumpName)))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := m.h.Runner.Run(ctx, host.Command{Argv: client(app.Name), Stdin: f}); err != nil {
		return fmt.Errorf("load %s: %w", DumpName, err)
	}
	return nil
}

// Usage is the size of the app's tables and their number.
func (m *MySQL) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	rows, err := m.sql(ctx, "", "SELECT COALESCE(SUM(data_length + index_length), 0), COUNT(*) FROM information_schema.tables WHERE table_schema = "+literal(app.Name))
	if err != nil {
		return service.Usage{}, err
	}
	if len(rows) != 1 {
		return service.Usage{}, fmt.Errorf("usage: unexpected answer %q", rows)
	}
	size, n, _ := strings.Cut(rows[0], "\t")
	u := service.Usage{Unit: "tables"}
	u.Bytes, _ = strconv.ParseInt(size, 10, 64)
	u.Items, _ = strconv.ParseInt(n, 10, 64)
	return u, nil
}

var (
	_ service.Service       = (*MySQL)(nil)
	_ service.BackupChecker = (*MySQL)(nil)
)
