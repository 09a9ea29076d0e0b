// Package service is the contract between the agent and the services an
// app.ini asks for with service.NAME keys (databases, file storage): the
// Service interface, a registry the service packages fill in their init
// (internal/service/all imports them all), the per-app credentials store,
// the backup format, and the operations the agent runs over an app's
// services: Prepare (deploy), Backup, Restore, Clear and Usage.
//
// A service is made for a node (Node: its host, its settings) by its
// registered New, which must not touch the node; everything that does
// takes a context and goes through the node's host.Host, so services are
// unit-tested against a temporary root and a fake command runner, and the
// contract suite (servicetest) runs the same checks on every service on a
// real node.
package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// App is what a service is told about the app it serves.
type App struct {
	// Name is the app name; data is keyed by it, never by instance.
	Name string
	// DataDir is the app's data directory on the node
	// (/var/lib/toppcloud/apps/APP): root's, passable (0711); services
	// keep their per-app state under it.
	DataDir string
	// User is the Unix user the app runs as; it owns the app's files.
	User string
	// Platform is the app's kind as app.ini says (python, php, ...), for
	// services whose client library differs by platform.
	Platform string
	// Value is the service.NAME key's value in app.ini (almost always "").
	Value string
}

// CredentialsDir is where the app's service credentials are kept.
func (a App) CredentialsDir() string { return a.DataDir + "/services" }

// Usage is how much an app keeps in a service, for query.
type Usage struct {
	// Bytes is the size of the app's data (on disk, or in memory for
	// Redis), as the service measures it.
	Bytes int64 `json:"bytes"`
	// Items counts what the service holds for the app: tables, keys,
	// files.
	Items int64 `json:"items"`
	// Unit names Items ("tables", "keys", "files").
	Unit string `json:"unit"`
}

// Service is one kind of service (postgresql, files, ...) on one node.
type Service interface {
	// Name is the NAME of service.NAME.
	Name() string
	// Packages are the Debian packages it needs on the node for app
	// (server, tools, the client library of the app's platform).
	Packages(app App) []string
	// Install makes the service ready on the node (configured, running);
	// it is called on every deploy of an app using it, after Packages are
	// installed, and must change nothing when all is in place.
	Install(ctx context.Context) error
	// Setup prepares the service for app (database, user, password,
	// directory), idempotently, and returns the app's CONFIG_* variables:
	// the same ones on every call.
	Setup(ctx context.Context, app App) (map[string]string, error)
	// Clear deletes app's data in the service and sets it up anew, with
	// the same credentials; it returns the variables as Setup does.
	Clear(ctx context.Context, app App) (map[string]string, error)
	// Backup writes app's data as files into dir (a node directory that
	// exists and is empty), in a form Restore reads.
	Backup(ctx context.Context, app App, dir string) error
	// Restore replaces app's data with what Backup wrote into dir: after
	// it the service holds exactly the backup. It checks what it can
	// before it empties anything, so a bad file leaves the data as it was.
	Restore(ctx context.Context, app App, dir string) error
	// Usage measures app's data.
	Usage(ctx context.Context, app App) (Usage, error)
}

// Conflicter is a Service that cannot be used together with some others
// by one app (postgis and postgresql give the same variables).
type Conflicter interface {
	Conflicts() []string
}

// ClientPackager is a Service that a site's app node can use on the
// site's services node: ClientPackages are the Debian packages the app
// node needs for it (no server).
type ClientPackager interface {
	ClientPackages(app App) []string
}

// Settings are a service's node-wide settings. Zero values mean the
// service's defaults (the server on this node, on loopback); a services
// node (several app nodes sharing one database server) sets them.
type Settings struct {
	// Listen is the address the server listens on.
	Listen string `json:"listen,omitempty"`
	// Host and Port are what apps are given to connect to.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// ExtraListen are addresses the server listens on besides Listen:
	// a services node's private address, for the site's app nodes.
	ExtraListen []string `json:"extra_listen,omitempty"`
	// Clients are the addresses (other than loopback) whose connections
	// the server accepts and whose logins it lets in: a site's app
	// nodes. Empty on a node of its own.
	Clients []string `json:"clients,omitempty"`
}

// Addresses are Listen and then ExtraListen, each once.
func (s Settings) Addresses() []string {
	out := []string{s.Listen}
	for _, a := range s.ExtraListen {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Or returns s with its zero fields taken from def.
func (s Settings) Or(def Settings) Settings {
	if s.Listen == "" {
		s.Listen = def.Listen
	}
	if s.Host == "" {
		s.Host = def.Host
	}
	if s.Port == 0 {
		s.Port = def.Port
	}
	return s
}

// Node is what a service is made for: the node's host and settings.
type Node struct {
	Host *host.Host
	// Settings holds each service's settings by name.
	Settings map[string]Settings
	// Warn hears what a service wants the user to know but is no
	// failure (a socket skipped in a backup); nil drops it.
	Warn func(msg string)
	// LockDir holds the node-wide service locks (NodeLock): a tmpfs, so
	// a crashed agent never leaves one held. StateDir keeps node-wide
	// service state (admin credentials), root only. They are the agent's
	// layout.Layout Locks and Services, passed in so that tests can put
	// them in a temporary directory.
	LockDir  string
	StateDir string
}

// Warnf sends a warning to n.Warn.
func (n Node) Warnf(format string, args ...any) {
	if n.Warn != nil {
		n.Warn(fmt.Sprintf(format, args...))
	}
}

// Info registers one service.
type Info struct {
	// Name is the NAME of service.NAME.
	Name string
	// New makes the service for a node, without touching it.
	New func(n Node) Service
	// Unavailable, when set, says why this toppcloud refuses the service:
	// an app asking for it is refused before anything changes.
	Unavailable string
}

var (
	mu       sync.RWMutex
	registry = map[string]Info{}
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Register adds a service to the registry. Service packages call it from
// init; a bad or duplicate name, or an Info that neither makes a service
// nor says why not, is a programming error and panics.
func Register(info Info) {
	mu.Lock()
	defer mu.Unlock()
	if !nameRE.MatchString(info.Name) {
		panic(fmt.Sprintf("service: bad name %q", info.Name))
	}
	if _, dup := registry[info.Name]; dup {
		panic(fmt.Sprintf("service: %q registered twice", info.Name))
	}
	if (info.New == nil) == (info.Unavailable == "") {
		panic(fmt.Sprintf("service: %q needs exactly one of New and Unavailable", info.Name))
	}
	registry[info.Name] = info
}

// Lookup returns the registration of the service called name.
func Lookup(name string) (Info, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// Names lists the services that can be used, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(registry)) {
		if registry[name].Unavailable == "" {
			out = append(out, name)
		}
	}
	return out
}

// Request is one service.NAME key of an app.ini.
type Request struct {
	Name  string
	Value string
}

// ErrVariable is wrapped when a service returns a variable that is not
// CONFIG_*.
var ErrVariable = errors.New("service variable not named CONFIG_*")

// ErrUnavailable is wrapped when an app asks for a service this
// toppcloud refuses (couchdb, mongodb).
var ErrUnavailable = errors.New("service not available")

// Bound is one of an app's services, made for a node, with its app.ini
// value.
type Bound struct {
	Service Service
	App     App
}

// Resolve finds the services of reqs (sorted by name, as the original ran
// them) for app on node. It fails, before anything touches the node, for
// a service that is refused or that conflicts with another of the app's;
// a service it does not know is a warning (through node.Warn) and is
// left out: its variables are missing, which the app will notice, and
// the rest goes on.
func Resolve(node Node, app App, reqs []Request) ([]Bound, error) {
	return resolve(node, app, reqs, Lookup)
}

func resolve(node Node, app App, reqs []Request, lookup func(string) (Info, bool)) ([]Bound, error) {
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, func(a, b Request) int { return strings.Compare(a.Name, b.Name) })
	var out []Bound
	var errs []error
	names := map[string]bool{}
	for _, r := range reqs {
		if names[r.Name] {
			continue
		}
		names[r.Name] = true
		info, ok := lookup(r.Name)
		switch {
		case !ok:
			known := "none is available"
			if n := Names(); len(n) > 0 {
				known = "available: " + strings.Join(n, ", ")
			}
			node.Warnf("service.%s: this toppcloud has no service %q (%s); the app gets no CONFIG_* variables from it", r.Name, r.Name, known)
			continue
		case info.Unavailable != "":
			errs = append(errs, fmt.Errorf("service.%s: %w: %s", r.Name, ErrUnavailable, info.Unavailable))
			continue
		}
		a := app
		a.Value = r.Value
		out = append(out, Bound{Service: info.New(node), App: a})
	}
	for _, b := range out {
		if c, ok := b.Service.(Conflicter); ok {
			for _, other := range c.Conflicts() {
				if names[other] && other < b.Service.Name() {
					errs = append(errs, fmt.Errorf("service.%s and service.%s cannot be used together (they give the same database and variables): keep one", other, b.Service.Name()))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Packages are the Debian packages the services need, sorted, once each.
func Packages(bound []Bound) []string {
	var pkgs []string
	for _, b := range bound {
		pkgs = append(pkgs, b.Service.Packages(b.App)...)
	}
	slices.Sort(pkgs)
	return slices.Compact(pkgs)
}

// Hooks are the calls Prepare makes besides the services themselves.
type Hooks struct {
	// InstallPackages installs Debian packages the services need (only
	// the missing ones; the agent's apt installer).
	InstallPackages func(ctx context.Context, pkgs []string) error
	// Step, if set, is told which service Prepare works on.
	Step func(msg string)
}

// Prepare makes the app's services ready, in name order: their packages,
// Install, then Setup (or Clear with clear). It returns the CONFIG_*
// variables they give.
func Prepare(ctx context.Context, bound []Bound, clear bool, h Hooks) (map[string]string, error) {
	if pkgs := Packages(bound); len(pkgs) > 0 && h.InstallPackages != nil {
		if err := h.InstallPackages(ctx, pkgs); err != nil {
			return nil, fmt.Errorf("services' packages: %w", err)
		}
	}
	env := map[string]string{}
	for _, b := range bound {
		s := b.Service
		if h.Step != nil {
			h.Step(s.Name())
		}
		if err := s.Install(ctx); err != nil {
			return nil, fmt.Errorf("service %s: install: %w", s.Name(), err)
		}
		var vars map[string]string
		var err error
		if clear {
			vars, err = s.Clear(ctx, b.App)
		} else {
			vars, err = s.Setup(ctx, b.App)
		}
		if err != nil {
			verb := "set up"
			if clear {
				verb = "clear"
			}
			return nil, fmt.Errorf("service %s: %s for %s: %w", s.Name(), verb, b.App.Name, err)
		}
		for k, v := range vars {
			if !strings.HasPrefix(k, "CONFIG_") {
				return nil, fmt.Errorf("service %s: %q: %w", s.Name(), k, ErrVariable)
			}
			env[k] = v
		}
	}
	return env, nil
}

// Usages measures each service's data of the app, by service name. A
// service that cannot tell (its server is down) is left out and its
// error joined to the one returned.
func Usages(ctx context.Context, bound []Bound) (map[string]Usage, error) {
	out := map[string]Usage{}
	var errs []error
	for _, b := range bound {
		u, err := b.Service.Usage(ctx, b.App)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", b.Service.Name(), err))
			continue
		}
		out[b.Service.Name()] = u
	}
	return out, errors.Join(errs...)
}
