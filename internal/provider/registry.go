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

// registry is written only from init functions (Register) and read
// afterwards; it is the one piece of package-level state we allow.
var registry = map[string]Info{}

// Register adds a backend. It panics on an empty name, a nil constructor or
// a duplicate, because each of those is a programming error found at start.
func Register(info Info) {
	if info.Name == "" {
		panic("provider: Register with empty name")
	}
	if info.Name != strings.ToLower(info.Name) {
		panic("provider: Register name must be lower case: " + info.Name)
	}
	if info.New == nil {
		panic("provider: Register " + info.Name + " with nil New")
	}
	if _, dup := registry[info.Name]; dup {
		panic("provider: Register called twice for " + info.Name)
	}
	seen := map[string]bool{}
	for _, o := range info.Options {
		if o.Name == "" || seen[o.Name] {
			panic(fmt.Sprintf("provider: %s declares option %q twice or empty", info.Name, o.Name))
		}
		seen[o.Name] = true
	}
	registry[info.Name] = info
}

// Lookup finds a backend by type name, case-insensitively.
func Lookup(name string) (Info, bool) {
	info, ok := registry[strings.ToLower(name)]
	return info, ok
}

// Names returns the registered type names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnknownTypeError is returned when a config names a provider type that is
// not registered.
type UnknownTypeError struct {
	Type string
}

func (e *UnknownTypeError) Error() string {
	return fmt.Sprintf("unknown provider type %q (known: %s)", e.Type, strings.Join(Names(), ", "))
}

// Open looks the backend up and constructs its driver.
func Open(typ string, env Env) (Driver, error) {
	info, ok := Lookup(typ)
	if !ok {
		return nil, &UnknownTypeError{Type: typ}
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
