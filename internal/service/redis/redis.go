// Package redis is service.redis: one Redis server per node (Debian's),
// and for each app an ACL user with a generated password that may touch
// only keys and channels named APP:* (CONFIG_REDIS_PREFIX). Commands that
// would show or change other apps' data or the server (KEYS, SCAN,
// RANDOMKEY, PUBSUB, FLUSHALL, CONFIG, functions, ...) are denied.
//
// Variables: CONFIG_REDIS_URL (redis://USER:PASSWORD@HOST:PORT/0),
// CONFIG_REDIS_HOST, CONFIG_REDIS_PORT, CONFIG_REDIS_USER,
// CONFIG_REDIS_PASSWORD, CONFIG_REDIS_PREFIX.
//
// The agent manages users through an ACL file it writes
// (/etc/redis/toppcloud-users.acl, passwords as sha256 only) and ACL
// LOAD, as an admin user whose password is kept root-only on the node.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/service"
)

// Name is the service's name in app.ini.
const Name = "redis"

// DumpName is the backup file.
const DumpName = "redis.dump"

// Files and unit of the server.
const (
	MainConf = "/etc/redis/redis.conf"
	OurConf  = "/etc/redis/toppcloud.conf"
	ACLFile  = "/etc/redis/toppcloud-users.acl"
	Unit     = "redis-server.service"
	// AdminUser is the agent's own Redis user.
	AdminUser = "toppcloud"
)

// Defaults are the settings of a node's own server.
var Defaults = service.Settings{Listen: "127.0.0.1", Host: "127.0.0.1", Port: 6379}

func init() {
	service.Register(service.Info{Name: Name, New: func(n service.Node) service.Service { return New(n) }})
}

// Redis is the service on one node.
type Redis struct {
	h        *host.Host
	settings service.Settings
	wait     time.Duration
	// lockDir and stateDir are the node's (service.Node).
	lockDir, stateDir string
}

// New returns service.redis for node n.
func New(n service.Node) *Redis {
	return &Redis{h: n.Host, settings: n.Settings[Name].Or(Defaults), lockDir: n.LockDir, stateDir: n.StateDir, wait: time.Minute}
}

// Name returns "redis".
func (*Redis) Name() string { return Name }

// Packages are the server and the client library of the app's platform.
func (r *Redis) Packages(app service.App) []string {
	return append([]string{"redis-server"}, r.ClientPackages(app)...)
}

// ClientPackages are what an app node of a site needs to use a services
// node's server: the platform's library (redis-tools is not needed).
func (*Redis) ClientPackages(app service.App) []string {
	var pkgs []string
	switch app.Platform {
	case "python", "":
		pkgs = append(pkgs, "python3-redis")
	case "php":
		pkgs = append(pkgs, "php-redis")
	}
	return pkgs
}

// Prefix is the prefix of app's keys and channels.
func Prefix(app string) string { return app + ":" }

func passHash(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return "#" + hex.EncodeToString(sum[:])
}

// appRule is the ACL of an app's user. "-@all" first, so that the rule
// means the same whatever the server's defaults.
func appRule(app, password string) string {
	p := Prefix(app)
	return strings.Join([]string{
		"user", app, "on", passHash(password),
		"resetkeys", "~" + p + "*", "resetchannels", "&" + p + "*",
		"-@all", "+@all", "-@admin", "-@dangerous",
		// Listing the keyspace or the channels would show other apps'
		// names; functions and the script cache are shared by all.
		"-scan", "-randomkey", "-dbsize", "-pubsub", "-function", "-script|flush",
	}, " ")
}

func adminRule(password string) string {
	return "user " + AdminUser + " on " + passHash(password) + " ~* &* +@all"
}

// defaultRule turns off the user that needs no password.
const defaultRule = "user default off resetkeys resetchannels -@all"

func (r *Redis) ourConf() string {
	return fmt.Sprintf(`# written by toppcloud: do not edit (it is rewritten).
bind %s
port %d
protected-mode yes
aclfile %s
`, strings.Join(r.settings.Addresses(), " "), r.settings.Port, ACLFile)
}

// withInclude returns Debian's redis.conf with an include of ours at the
// end (later settings win).
func withInclude(conf []byte) []byte {
	line := "include " + OurConf
	for _, l := range strings.Split(string(conf), "\n") {
		if strings.TrimSpace(l) == line {
			return conf
		}
	}
	out := slices.Clone(conf)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "# toppcloud's settings (bind, port, ACL file):\n"+line+"\n"...)
}

// aclLines reads the ACL file's user lines by user name.
func (r *Redis) aclLines() (map[string]string, error) {
	data, err := r.h.ReadFile(ACLFile)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "user" {
			out[f[1]] = strings.TrimSpace(l)
		}
	}
	return out, nil
}

// writeACL writes the ACL file with lines (sorted, so an unchanged set
// gives the same bytes) and reports whether it changed.
func (r *Redis) writeACL(lines map[string]string) (bool, error) {
	var b strings.Builder
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range lines {
			if !yield(k) {
				return
			}
		}
	}) {
		b.WriteString(lines[name] + "\n")
	}
	return r.h.WriteFile(ACLFile, []byte(b.String()), host.Attr{Mode: 0o640, Group: "redis"})
}

func (r *Redis) admin() (service.Credentials, error) {
	if r.stateDir == "" {
		return service.Credentials{}, errors.New("redis: the node has no service state directory (Node.StateDir)")
	}
	if _, err := r.h.EnsureDir(r.stateDir, host.Attr{Mode: 0o700}); err != nil {
		return service.Credentials{}, err
	}
	return service.LoadCredentials(r.h, path.Join(r.stateDir, "redis-admin.json"), AdminUser)
}

// addr is where the agent reaches the server: its listening address, or
// loopback when it listens on every address.
func (r *Redis) addr() string {
	h := strings.Fields(r.settings.Listen)
	a := "127.0.0.1"
	if len(h) > 0 && h[0] != "0.0.0.0" && h[0] != "*" && h[0] != "::" {
		a = strings.TrimPrefix(h[0], "-")
	}
	return net.JoinHostPort(a, strconv.Itoa(r.settings.Port))
}

// client connects as the admin user to database db.
func (r *Redis) client(db int) (*goredis.Client, error) {
	c, err := r.admin()
	if err != nil {
		return nil, err
	}
	opt := &goredis.Options{
		Addr: r.addr(), Username: c.User, Password: c.Password, DB: db,
		// One connection per client: the agent runs one thing at a time,
		// and it keeps SELECT and SCAN cursors on one session.
		PoolSize: 1, MaxRetries: 1, DisableIdentity: true,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute,
	}
	return goredis.NewClient(opt), nil
}

// Install configures the server (our conf included from Debian's, the ACL
// file with the admin user and the default user off) and starts it,
// restarting when its configuration changed.
func (r *Redis) Install(ctx context.Context) error {
	unlock, err := service.NodeLock(ctx, r.h, r.lockDir, Name)
	if err != nil {
		return err
	}
	defer unlock()
	main, err := r.h.ReadFile(MainConf)
	if err != nil {
		return fmt.Errorf("Debian's Redis configuration: %w", err)
	}
	attr, _, err := r.h.Stat(MainConf)
	if err != nil {
		return err
	}
	c1, err := r.h.WriteFile(MainConf, withInclude(main), attr)
	if err != nil {
		return err
	}
	c2, err := r.h.WriteFile(OurConf, []byte(r.ourConf()), host.Attr{Mode: 0o640, Group: "redis"})
	if err != nil {
		return err
	}
	admin, err := r.admin()
	if err != nil {
		return err
	}
	lines, err := r.aclLines()
	if err != nil {
		return err
	}
	lines[AdminUser] = adminRule(admin.Password)
	lines["default"] = defaultRule
	c3, err := r.writeACL(lines)
	if err != nil {
		return err
	}
	sd := system.Systemd{Runner: r.h.Runner}
	if _, err := sd.Enable(ctx, Unit); err != nil {
		return err
	}
	// Debian's package starts the server with its own settings (no ACL
	// file, no password): restart it on ours.
	if c1 || c2 || c3 || !sd.Active(ctx, Unit) {
		if err := sd.Restart(ctx, Unit); err != nil {
			return fmt.Errorf("start Redis: %w", err)
		}
	}
	return service.WaitReady(ctx, "Redis", r.wait, r.ping)
}

func (r *Redis) ping(ctx context.Context) error {
	c, err := r.client(0)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx).Err()
}

func (r *Redis) vars(app service.App, c service.Credentials) map[string]string {
	s := r.settings
	h := s.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword(c.User, c.Password), Host: h + ":" + strconv.Itoa(s.Port), Path: "/0"}
	return map[string]string{
		service.RedisPrefix + service.VarURL:      u.String(),
		service.RedisPrefix + service.VarHost:     s.Host,
		service.RedisPrefix + service.VarPort:     strconv.Itoa(s.Port),
		service.RedisPrefix + service.VarUser:     c.User,
		service.RedisPrefix + service.VarPassword: c.Password,
		service.RedisPrefix + service.VarPrefix:   Prefix(app.Name),
	}
}

func checkName(app string) error {
	if app == "default" || app == AdminUser {
		return fmt.Errorf("the app name %q is a Redis user of its own: deploy the app under another name (--name)", app)
	}
	return nil
}

// Setup gives the app its ACL user (loaded into the running server when
// the file changed).
func (r *Redis) Setup(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	creds, err := service.AppCredentials(r.h, app, Name, app.Name)
	if err != nil {
		return nil, err
	}
	unlock, err := service.NodeLock(ctx, r.h, r.lockDir, Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	lines, err := r.aclLines()
	if err != nil {
		return nil, err
	}
	lines[app.Name] = appRule(app.Name, creds.Password)
	changed, err := r.writeACL(lines)
	if err != nil {
		return nil, err
	}
	c, err := r.client(0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if !changed {
		// The file may have been changed and loaded by hand: load it
		// when the server does not have the app's user as written.
		rules, err := c.Do(ctx, "ACL", "LIST").StringSlice()
		if err != nil {
			return nil, fmt.Errorf("ACL LIST: %w", err)
		}
		changed = !slices.ContainsFunc(rules, func(s string) bool { return strings.HasPrefix(s, "user "+app.Name+" ") })
	}
	if changed {
		if err := c.Do(ctx, "ACL", "LOAD").Err(); err != nil {
			return nil, fmt.Errorf("ACL LOAD: %w", err)
		}
	}
	return r.vars(app, creds), nil
}

// databases is how many databases the server has (apps may SELECT any).
func (r *Redis) databases(ctx context.Context, c *goredis.Client) (int, error) {
	m, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return 0, fmt.Errorf("CONFIG GET databases: %w", err)
	}
	n, err := strconv.Atoi(m["databases"])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("CONFIG GET databases: %q", m["databases"])
	}
	return n, nil
}

// eachDB calls fn with a client on every database of the server.
func (r *Redis) eachDB(ctx context.Context, fn func(db int, c *goredis.Client) error) error {
	c0, err := r.client(0)
	if err != nil {
		return err
	}
	n, err := r.databases(ctx, c0)
	c0.Close()
	if err != nil {
		return err
	}
	for db := range n {
		c, err := r.client(db)
		if err != nil {
			return err
		}
		err = fn(db, c)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// scanKeys calls fn with batches of app's keys in one database.
func scanKeys(ctx context.Context, c *goredis.Client, app string, fn func(keys []string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, matchPattern(app), 1000).Result()
		if err != nil {
			return fmt.Errorf("SCAN: %w", err)
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// matchPattern is the SCAN pattern of app's keys. App names have no
// glob characters; escaping keeps that true whatever they become.
func matchPattern(app string) string {
	var b strings.Builder
	for _, r := range Prefix(app) {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + "*"
}

// deleteKeys removes all of app's keys.
func (r *Redis) deleteKeys(ctx context.Context, app string) error {
	return r.eachDB(ctx, func(_ int, c *goredis.Client) error {
		return scanKeys(ctx, c, app, func(keys []string) error {
			return c.Unlink(ctx, keys...).Err()
		})
	})
}

// Clear deletes all of the app's keys.
func (r *Redis) Clear(ctx context.Context, app service.App) (map[string]string, error) {
	if err := checkName(app.Name); err != nil {
		return nil, err
	}
	if err := r.deleteKeys(ctx, app.Name); err != nil {
		return nil, err
	}
	return r.Setup(ctx, app)
}

const dumpReadme = `redis.dump: the app's keys (every database), each as Redis's DUMP gives
it, with its time to live; toppcloud restore loads them with RESTORE. It is
not an RDB file: Redis cannot save part of its keyspace.
`

// Backup writes every key of the app, from every database, into
// dir/redis.dump. Keys are read one after the other, not at one instant:
// an app writing meanwhile may see some keys from before and some from
// after its write.
func (r *Redis) Backup(ctx context.Context, app service.App, dir string) error {
	f, err := os.OpenFile(r.h.Path(path.Join(dir, DumpName)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w, err := newDumpWriter(f)
	if err == nil {
		err = r.eachDB(ctx, func(db int, c *goredis.Client) error {
			return scanKeys(ctx, c, app.Name, func(keys []string) error {
				pipe := c.Pipeline()
				dumps := make([]*goredis.StringCmd, len(keys))
				ttls := make([]*goredis.DurationCmd, len(keys))
				for i, k := range keys {
					dumps[i] = pipe.Dump(ctx, k)
					ttls[i] = pipe.PTTL(ctx, k)
				}
				if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
					return err
				}
				for i, k := range keys {
					payload, err := dumps[i].Result()
					if errors.Is(err, goredis.Nil) {
						continue // deleted since SCAN
					}
					if err != nil {
						return err
					}
					pttl := int64(-1)
					if d := ttls[i].Val(); d > 0 {
						pttl = d.Milliseconds()
					}
					if err := w.Write(entry{DB: db, Key: k, PTTL: pttl, Payload: []byte(payload)}); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dump %s's keys: %w", app.Name, err)
	}
	_, err = r.h.WriteFile(path.Join(dir, "redis.README.txt"), []byte(dumpReadme), host.Attr{Mode: 0o600})
	return err
}

// CheckBackup reads the whole dump: well formed, complete, and holding
// only the app's keys.
func (r *Redis) CheckBackup(_ context.Context, app service.App, dir string) error {
	f, err := os.Open(r.h.Path(path.Join(dir, DumpName)))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = readDump(f, func(e entry) error {
		if !strings.HasPrefix(e.Key, Prefix(app.Name)) {
			return fmt.Errorf("key %q is not the app's (%s*)", e.Key, Prefix(app.Name))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", DumpName, err)
	}
	return nil
}

// Restore checks the dump, deletes the app's keys, and loads the dump's.
func (r *Redis) Restore(ctx context.Context, app service.App, dir string) error {
	if err := r.CheckBackup(ctx, app, dir); err != nil {
		return err
	}
	if err := r.deleteKeys(ctx, app.Name); err != nil {
		return err
	}
	f, err := os.Open(r.h.Path(path.Join(dir, DumpName)))
	if err != nil {
		return err
	}
	defer f.Close()
	clients := map[int]*goredis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	_, err = readDump(f, func(e entry) error {
		c := clients[e.DB]
		if c == nil {
			var err error
			if c, err = r.client(e.DB); err != nil {
				return err
			}
			clients[e.DB] = c
		}
		ttl := time.Duration(0)
		if e.PTTL > 0 {
			ttl = time.Duration(e.PTTL) * time.Millisecond
		}
		if err := c.RestoreReplace(ctx, e.Key, ttl, string(e.Payload)).Err(); err != nil {
			return fmt.Errorf("RESTORE %q: %w", e.Key, err)
		}
		return nil
	})
	return err
}

// Usage counts the app's keys and the memory they use.
func (r *Redis) Usage(ctx context.Context, app service.App) (service.Usage, error) {
	u := service.Usage{Unit: "keys"}
	err := r.eachDB(ctx, func(_ int, c *goredis.Client) error {
		return scanKeys(ctx, c, app.Name, func(keys []string) error {
			pipe := c.Pipeline()
			cmds := make([]*goredis.IntCmd, len(keys))
			for i, k := range keys {
				cmds[i] = pipe.MemoryUsage(ctx, k)
			}
			_, _ = pipe.Exec(ctx)
			for _, cmd := range cmds {
				if n, err := cmd.Result(); err == nil {
					u.Items++
					u.Bytes += n
				}
			}
			return nil
		})
	})
	return u, err
}

var (
	_ service.Service       = (*Redis)(nil)
	_ service.BackupChecker = (*Redis)(nil)
)
