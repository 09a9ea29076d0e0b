package provider

import (
	"fmt"
	"sort"
	"strings"
)

// Info describes a backend. It is given to Register once, from the
// backend package's init.
type Info struct {
	// Name is the provider type as written in ~/.toppcloud.conf
	// ("provider = rackspace"). Lower case.
	Name string
	// Description is one line for help and the first-run prompt.
	Description string
	// Options are the settings the backend reads, declared once: they
	// drive the first-run prompts, the config keys, and the help.
	// Use the shared options in options.go (OptUsername, OptSecret, ...)
	// where they apply so names never drift between backends.
	Options []Option
	// DefaultImage and DefaultSize are matcher strings used when neither
	// the command line nor the config section names one.
	DefaultImage string
	DefaultSize  string
	// Local is true for backends that make nodes on this machine; the
	// first-run prompt offers them only where they can work.
	Local bool
	// New constructs a driver. It must not do network I/O; errors are for
	// missing or malformed settings.
	New func(env Env) (Driver, error)
}

// Registry is a set of backends by type name. The binary uses the one
// Register fills from init functions (Registered); a test builds its own
// with NewRegistry and hands it to the code under test, so no test adds
// to the binary's.
type Registry struct {
	infos map[string]Info
}

// registered is written only from init functions (Register) and read
// afterwards; it is the one piece of package-level state we allow.
var registered = &Registry{infos: map[string]Info{}}

// NewRegistry returns a registry of infos. It panics on an invalid or
// duplicate Info, as Register does.
func NewRegistry(infos ...Info) *Registry {
	r := &Registry{infos: map[string]Info{}}
	for _, info := range infos {
		r.add(info)
	}
	return r
}

// Registered returns the registry Register fills: every backend linked
// into the binary.
func Registered() *Registry { return registered }

// Register adds a backend to Registered. It panics on an empty name, a nil
// constructor or a duplicate, because each of those is a programming error
// found at start.
func Register(info Info) { registered.add(info) }

func (r *Registry) add(info Info) {
	if info.Name == "" {
		panic("provider: Register with empty name")
	}
	if info.Name != strings.ToLower(info.Name) {
		panic("provider: Register name must be lower case: " + info.Name)
	}
	if info.New == nil {
		panic("provider: Register " + info.Name + " with nil New")
	}
	if _, dup := r.infos[info.Name]; dup {
		panic("provider: Register called twice for " + info.Name)
	}
	seen := map[string]bool{}
	for _, o := range info.Options {
		if o.Name == "" || seen[o.Name] {
			panic(fmt.Sprintf("provider: %s declares option %q twice or empty", info.Name, o.Name))
		}
		seen[o.Name] = true
	}
	r.infos[info.Name] = info
}

// Lookup finds a backend by type name, case-insensitively.
func (r *Registry) Lookup(name string) (Info, bool) {
	info, ok := r.infos[strings.ToLower(name)]
	return info, ok
}

// Names returns the type names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.infos))
	for n := range r.infos {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Infos returns every backend, sorted by name.
func (r *Registry) Infos() []Info {
	infos := make([]Info, 0, len(r.infos))
	for _, n := range r.Names() {
		infos = append(infos, r.infos[n])
	}
	return infos
}

// Open looks the backend up and constructs its driver.
func (r *Registry) Open(typ string, env Env) (Driver, error) {
	info, ok := r.Lookup(typ)
	if !ok {
		return nil, &UnknownTypeError{Type: typ, Known: r.Names()}
	}
	if err := env.Settings.CheckRequired(info.Options); err != nil {
		return nil, fmt.Errorf("provider %s [provider:%s]: %w", info.Name, env.Section, err)
	}
	d, err := info.New(env)
	if err != nil {
		return nil, fmt.Errorf("provider %s [provider:%s]: %w", info.Name, env.Section, err)
	}
	return d, nil
}

// Lookup finds a backend of Registered by type name.
func Lookup(name string) (Info, bool) { return registered.Lookup(name) }

// Names returns the type names of Registered, sorted.
func Names() []string { return registered.Names() }

// Open constructs a driver of a backend of Registered.
func Open(typ string, env Env) (Driver, error) { return registered.Open(typ, env) }

// UnknownTypeError is returned when a config names a provider type that is
// not registered.
type UnknownTypeError struct {
	Type string
	// Known are the types that are.
	Known []string
}

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("unknown provider type %q (known: %s)", e.Type, strings.Join(e.Known, ", "))
}
