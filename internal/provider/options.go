package provider

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Option is one setting a backend reads from its [provider:NAME] section.
type Option struct {
	// Name is the config key, lower case ("username").
	Name string
	// Help is one line for the first-run prompt and --help.
	Help string
	// Default is used when neither the section nor an environment variable
	// gives a value.
	Default string
	// Required options must have a value before the driver is constructed.
	Required bool
	// Secret options are never echoed when prompted, never printed, and
	// never written to debug logs.
	Secret bool
	// Prompt: ask for this option when writing a first config.
	Prompt bool
	// EnvVars are environment variables consulted, in order, when the
	// section has no value ("DIGITALOCEAN_TOKEN").
	EnvVars []string
}

// The shared options. Backends use these values (changing only Help,
// Default, Required, Prompt or EnvVars with With...) so that the same idea
// has the same key everywhere.
var (
	OptUsername = Option{Name: "username", Help: "account user name"}
	// OptSecret is the API key, token or password. The config layer reads
	// secret_file into it when only that is given.
	OptSecret   = Option{Name: "secret", Help: "API key or token", Secret: true}
	OptRegion   = Option{Name: "region", Help: "region or data centre"}
	OptEndpoint = Option{Name: "endpoint", Help: "API root URL, replacing the provider's public one"}
	OptImage    = Option{Name: "image", Help: "default image matcher (id X, name GLOB)"}
	OptSize     = Option{Name: "size", Help: "default size matcher (id X, name GLOB, ram N)"}
	OptSSHUser  = Option{Name: "ssh_user", Help: "user to log in as on new nodes", Default: "root"}
)

// With returns a copy of o changed by the given functions; it keeps the
// name, which is the point of sharing.
func (o Option) With(changes ...func(*Option)) Option {
	for _, c := range changes {
		c(&o)
	}
	return o
}

// Settings holds a section's values for a driver, keyed by option name
// (lower case). The config layer fills it: section value, then the option's
// environment variables, then its default.
type Settings map[string]string

// Get returns the value for key, or "".
func (s Settings) Get(key string) string { return s[strings.ToLower(key)] }

// Resolve builds Settings for the given options from raw section values,
// consulting getenv (os.Getenv when nil) for options whose section value is
// empty, then the default. Keys in raw that no option declares are kept as
// well, so legacy keys reach drivers that look for them.
func Resolve(opts []Option, raw map[string]string, getenv func(string) string) Settings {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := Settings{}
	for k, v := range raw {
		s[strings.ToLower(k)] = v
	}
	for _, o := range opts {
		if s[o.Name] != "" {
			continue
		}
		for _, e := range o.EnvVars {
			if v := getenv(e); v != "" {
				s[o.Name] = v
				break
			}
		}
		if s[o.Name] == "" && o.Default != "" {
			s[o.Name] = o.Default
		}
	}
	return s
}

// MissingOptionError names a required setting that has no value.
type MissingOptionError struct {
	Option Option
}

func (e *MissingOptionError) Error() string {
	msg := fmt.Sprintf("missing setting %q (%s)", e.Option.Name, e.Option.Help)
	if len(e.Option.EnvVars) > 0 {
		msg += "; set it in the config section or in $" + strings.Join(e.Option.EnvVars, " or $")
	}
	return msg
}

// CheckRequired returns a *MissingOptionError for the first required option
// without a value.
func (s Settings) CheckRequired(opts []Option) error {
	for _, o := range opts {
		if o.Required && strings.TrimSpace(s.Get(o.Name)) == "" {
			return &MissingOptionError{Option: o}
		}
	}
	return nil
}

// Decode fills the struct pointed to by dst from s. Fields are matched by
// their `config:"name"` tag; string, bool, int and time.Duration fields are
// supported. A value that does not parse is an error naming the key.
func (s Settings) Decode(dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("provider: Decode needs a pointer to a struct, got %T", dst)
	}
	v = v.Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := f.Tag.Get("config")
		if key == "" || key == "-" {
			continue
		}
		raw, ok := s[key]
		if !ok || raw == "" {
			continue
		}
		fv := v.Field(i)
		switch {
		case f.Type == reflect.TypeOf(time.Duration(0)):
			d, err := time.ParseDuration(raw)
			if err != nil {
				return fmt.Errorf("setting %s: %w", key, err)
			}
			fv.SetInt(int64(d))
		case f.Type.Kind() == reflect.String:
			fv.SetString(raw)
		case f.Type.Kind() == reflect.Bool:
			b, err := ParseBool(raw)
			if err != nil {
				return fmt.Errorf("setting %s: %w", key, err)
			}
			fv.SetBool(b)
		case f.Type.Kind() == reflect.Int:
			n, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("setting %s: %q is not a whole number", key, raw)
			}
			fv.SetInt(int64(n))
		default:
			return fmt.Errorf("provider: Decode: field %s has unsupported type %s", f.Name, f.Type)
		}
	}
	return nil
}

// CheckOptionFields reports declared options that have no `config` field in
// the struct type of dst, so a backend's option list and its Options struct
// can't drift apart. Backends call it from a test.
func CheckOptionFields(opts []Option, dst any) error {
	t := reflect.TypeOf(dst)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if k := t.Field(i).Tag.Get("config"); k != "" {
			fields[k] = true
		}
	}
	var missing []string
	for _, o := range opts {
		if !fields[o.Name] {
			missing = append(missing, o.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("options without a struct field in %s: %s", t.Name(), strings.Join(missing, ", "))
	}
	return nil
}

// ParseBool reads a boolean the way Python's configparser does:
// 1/yes/true/on and 0/no/false/off, case-insensitively.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use yes or no)", s)
}
