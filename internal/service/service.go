// Package service is the contract between deploys and the services an
// app.ini asks for with service.NAME keys (databases, file storage): the
// Service interface, a registry the service packages fill in their init,
// and Prepare, which the agent's deploy calls for an app's services
// before its new instance starts.
//
// No service is implemented yet: an app's service.NAME keys are parsed,
// each unknown service gives a warning, and the deploy goes on without
// its CONFIG_* variables. Nop is a service that does nothing, for tests
// and as the smallest example of the contract.
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
)

// App is what a service is told about the app it serves.
type App struct {
	// Name is the app name; data is keyed by it, never by instance.
	Name string
	// DataDir is the app's data directory on the node
	// (/var/lib/toppcloud/apps/APP), owned by User.
	DataDir string
	// User is the Unix user the app runs as.
	User string
	// Value is the service.NAME key's value in app.ini (almost always "").
	Value string
}

// Service is one kind of service (postgresql, files, ...).
type Service interface {
	// Name is the NAME of service.NAME.
	Name() string
	// Packages are the Debian packages it needs on the node.
	Packages() []string
	// Install makes the service ready on the node (server installed and
	// running); it is called on every deploy of an app using it and must
	// do nothing when all is in place.
	Install(ctx context.Context) error
	// Setup prepares the service for app (database, user, password,
	// directory), idempotently, and returns the app's CONFIG_* variables.
	Setup(ctx context.Context, app App) (map[string]string, error)
	// Clear deletes app's data in the service and sets it up anew
	// (update --clear); it returns the variables as Setup does.
	Clear(ctx context.Context, app App) (map[string]string, error)
}

var (
	mu       sync.RWMutex
	registry = map[string]Service{}
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Register adds s to the registry. Service packages call it from init; a
// bad or duplicate name is a programming error and panics.
func Register(s Service) {
	mu.Lock()
	defer mu.Unlock()
	name := s.Name()
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("service: bad name %q", name))
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("service: %q registered twice", name))
	}
	registry[name] = s
}

// Lookup returns the registered service called name.
func Lookup(name string) (Service, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// Names lists the registered services, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Request is one service.NAME key of an app.ini.
type Request struct {
	Name  string
	Value string
}

// Hooks are the calls Prepare makes besides the services themselves.
type Hooks struct {
	// Lookup finds a service; nil means the registry's Lookup.
	Lookup func(name string) (Service, bool)
	// Warn hears about services that do not exist.
	Warn func(msg string)
	// InstallPackages installs Debian packages the services need.
	InstallPackages func(ctx context.Context, pkgs []string) error
}

// ErrVariable is wrapped when a service returns a variable that is not
// CONFIG_*.
var ErrVariable = errors.New("service variable not named CONFIG_*")

// Prepare makes the app's services ready, in name order as the original
// did: their packages, Install, then Setup (or Clear with clear). It
// returns the CONFIG_* variables they give. An unknown service is a
// warning, not an error: its variables are missing, which the app will
// notice, and the rest of the deploy goes on.
func Prepare(ctx context.Context, app App, reqs []Request, clear bool, h Hooks) (map[string]string, error) {
	lookup := h.Lookup
	if lookup == nil {
		lookup = Lookup
	}
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, func(a, b Request) int { return strings.Compare(a.Name, b.Name) })
	var services []Service
	var values []string
	var pkgs []string
	for _, r := range reqs {
		s, ok := lookup(r.Name)
		if !ok {
			if h.Warn != nil {
				known := "none is available yet"
				if names := Names(); len(names) > 0 {
					known = "available: " + strings.Join(names, ", ")
				}
				h.Warn(fmt.Sprintf("service.%s: this toppcloud has no service %q (%s); the app gets no CONFIG_* variables from it", r.Name, r.Name, known))
			}
			continue
		}
		services = append(services, s)
		values = append(values, r.Value)
		pkgs = append(pkgs, s.Packages()...)
	}
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	if len(pkgs) > 0 && h.InstallPackages != nil {
		if err := h.InstallPackages(ctx, pkgs); err != nil {
			return nil, fmt.Errorf("services' packages: %w", err)
		}
	}
	env := map[string]string{}
	for i, s := range services {
		a := app
		a.Value = values[i]
		if err := s.Install(ctx); err != nil {
			return nil, fmt.Errorf("service %s: install: %w", s.Name(), err)
		}
		var vars map[string]string
		var err error
		if clear {
			vars, err = s.Clear(ctx, a)
		} else {
			vars, err = s.Setup(ctx, a)
		}
		if err != nil {
			return nil, fmt.Errorf("service %s: set up for %s: %w", s.Name(), app.Name, err)
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

// Nop is a service that needs nothing and gives no variables.
type Nop struct {
	// ServiceName is what Name returns.
	ServiceName string
}

// Name returns ServiceName.
func (n Nop) Name() string { return n.ServiceName }

// Packages returns none.
func (Nop) Packages() []string { return nil }

// Install does nothing.
func (Nop) Install(context.Context) error { return nil }

// Setup gives no variables.
func (Nop) Setup(context.Context, App) (map[string]string, error) { return map[string]string{}, nil }

// Clear gives no variables.
func (Nop) Clear(context.Context, App) (map[string]string, error) { return map[string]string{}, nil }

var _ Service = Nop{}
