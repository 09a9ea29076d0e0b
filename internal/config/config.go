// Package config reads and writes ~/.toppcloud.conf, the client's settings:
// [provider:NAME] sections saying where nodes come from and with which
// credentials, [site:NAME] sections grouping nodes that serve one app, [devel] and [devel:APP] overrides for running apps locally,
// and the original's [environment] and [keys] sections, which are accepted
// and left alone. It also holds the first-run flow that creates the file.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
)

// EnvVar names the environment variable that overrides the config path.
const EnvVar = "TOPPCLOUD_CONFIG"

// FileName is the config file's name in the home directory.
const FileName = ".toppcloud.conf"

// DefaultProvider is the [provider:NAME] section used without --provider.
const DefaultProvider = "default"

// File is a loaded config file.
type File struct {
	// Path is where the file was read from.
	Path string
	// Warnings are problems that do not stop anything: unknown sections, a
	// file holding secrets that others can read.
	Warnings []string

	ini  *ini.File
	mode fs.FileMode
}

var providerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Load reads the config file at path and checks its structure; provider
// sections are checked in full when one is asked for (Provider), so that a
// broken section does not get in the way of commands that do not use it.
// A missing file gives an error satisfying errors.Is(err, fs.ErrNotExist).
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no config file at %s (toppcloud init-config creates one): %w", path, err)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	f, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	f.mode = fi.Mode().Perm()
	if f.mode&0o077 != 0 && f.holdsSecret() {
		f.Warnings = append(f.Warnings, fmt.Sprintf(
			"%s holds a secret and can be read by other users (mode %04o); run: chmod 600 %s", path, f.mode, path))
	}
	return f, nil
}

func parse(path string, data []byte) (*File, error) {
	inif, err := ini.Parse(path, data)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, ini: inif}
	for _, s := range inif.Sections() {
		kind, name, _ := strings.Cut(s.Name, ":")
		switch {
		case kind == "provider" && strings.Contains(s.Name, ":"):
			if !providerNameRE.MatchString(name) {
				return nil, &ini.Error{File: path, Line: s.Line,
					Msg: fmt.Sprintf("[%s]: a provider section is named [provider:NAME], NAME made of letters, digits, ., - and _", s.Name)}
			}
		case kind == "site" && strings.Contains(s.Name, ":"):
			// Checked in full by Sites, when a command uses sites.
		case s.Name == "devel", kind == "devel" && name != "",
			s.Name == "environment", s.Name == "keys", kind == "keys" && name != "":
		default:
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unknown section [%s] ignored", path, s.Line, s.Name))
		}
	}
	return f, nil
}

func (f *File) holdsSecret() bool {
	for _, s := range f.ini.Sections() {
		if strings.HasPrefix(s.Name, "provider:") && s.Value("secret") != "" {
			return true
		}
	}
	return false
}

// ProviderNames returns the NAMEs of the [provider:NAME] sections in file
// order.
func (f *File) ProviderNames() []string {
	var names []string
	for _, s := range f.ini.Sections() {
		if name, ok := strings.CutPrefix(s.Name, "provider:"); ok {
			names = append(names, name)
		}
	}
	return names
}

// Section returns any section of the file by its full name ("environment",
// "keys:NAME"), or nil, for the sections this package does not interpret.
func (f *File) Section(name string) *ini.Section { return f.ini.Section(name) }

// Devel returns the development overrides for app: the [devel] section
// merged with [devel:APP] (which wins), with the text APP_NAME in every
// value replaced by app, as the original did. [DEFAULT] keys are included,
// as configparser includes them.
func (f *File) Devel(app string) map[string]string {
	out := map[string]string{}
	for _, name := range []string{"devel", "devel:" + app} {
		s := f.ini.Section(name)
		if s == nil {
			continue
		}
		for _, k := range s.Keys() {
			out[k.Name] = strings.ReplaceAll(k.Value, "APP_NAME", app)
		}
	}
	return out
}

// MissingProviderError says the file has no [provider:NAME] section.
type MissingProviderError struct {
	Path      string
	Name      string
	Available []string
}

func (e *MissingProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no [provider:%s] section in %s", e.Name, e.Path)
	if len(e.Available) == 0 {
		b.WriteString("; it has no provider sections at all")
	} else {
		avail := append([]string(nil), e.Available...)
		sort.Strings(avail)
		b.WriteString("; use one of: ")
		for i, n := range avail {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "--provider %s", n)
		}
	}
	fmt.Fprintf(&b, "; or add a [provider:%s] section with provider = TYPE to it", e.Name)
	return b.String()
}
