package ini

import (
	"fmt"
	"strings"
)

// Sections returns the sections in file order, without [DEFAULT].
func (f *File) Sections() []*Section { return f.sections }

// Section returns the named section (case-sensitive), or nil. The name
// DefaultSection gives the [DEFAULT] section, which always exists (empty
// when the file has none).
func (f *File) Section(name string) *Section {
	if name == DefaultSection {
		return f.defaults
	}
	return f.byName[name]
}

// Default returns the [DEFAULT] section (never nil).
func (f *File) Default() *Section { return f.defaults }

// Key returns the key (case-insensitive), looking in [DEFAULT] when the
// section has no such key; nil when neither has it.
func (s *Section) Key(name string) *Key {
	name = strings.ToLower(name)
	if k := s.byName[name]; k != nil {
		return k
	}
	if s.file != nil && s != s.file.defaults {
		return s.file.defaults.byName[name]
	}
	return nil
}

// Has reports whether the section or [DEFAULT] sets the key.
func (s *Section) Has(name string) bool { return s.Key(name) != nil }

// Get returns the key's value and whether it is set.
func (s *Section) Get(name string) (string, bool) {
	if k := s.Key(name); k != nil {
		return k.Value, true
	}
	return "", false
}

// Value returns the key's value, or "" when it is not set.
func (s *Section) Value(name string) string {
	v, _ := s.Get(name)
	return v
}

// Keys returns the section's keys followed by the [DEFAULT] keys it does not
// override: configparser's order for a section's options.
func (s *Section) Keys() []*Key {
	keys := append([]*Key(nil), s.keys...)
	if s.file == nil || s == s.file.defaults {
		return keys
	}
	for _, k := range s.file.defaults.keys {
		if s.byName[k.Name] == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// GetBool returns the key as a boolean (see ParseBool), or def when the key
// is not set. A value that is not a boolean is an *Error naming the line.
func (s *Section) GetBool(name string, def bool) (bool, error) {
	k := s.Key(name)
	if k == nil {
		return def, nil
	}
	return k.Bool()
}

// GetLines returns the key's value split into lines, trimmed, without empty
// ones; nil when the key is not set.
func (s *Section) GetLines(name string) []string {
	k := s.Key(name)
	if k == nil {
		return nil
	}
	var out []string
	for _, l := range k.Lines() {
		out = append(out, l.Text)
	}
	return out
}

// Errorf returns an *Error about key in this section, at the key's line, or
// at the section header when the key is not set.
func (s *Section) Errorf(key, format string, args ...any) *Error {
	if k := s.Key(key); k != nil {
		return k.Errorf(format, args...)
	}
	name := ""
	if s.file != nil {
		name = s.file.Name
	}
	return &Error{File: name, Line: s.Line, Key: strings.ToLower(key), Msg: fmt.Sprintf(format, args...)}
}

// Bool parses the value as a boolean (see ParseBool); an error is an *Error
// naming the key's line.
func (k *Key) Bool() (bool, error) {
	b, err := ParseBool(k.Value)
	if err != nil {
		return false, k.Errorf("%v", err)
	}
	return b, nil
}

// Lines splits the value into its non-empty lines, trimmed, each with the
// file line it was written on.
func (k *Key) Lines() []Line {
	var out []Line
	for i, text := range strings.Split(k.Value, "\n") {
		text = strings.TrimFunc(text, isSpace)
		if text == "" {
			continue
		}
		num := k.Line
		if i < len(k.lines) {
			num = k.lines[i]
		}
		out = append(out, Line{Text: text, Num: num})
	}
	return out
}

// Errorf returns an *Error about this key at its line.
func (k *Key) Errorf(format string, args ...any) *Error {
	return &Error{File: k.file, Line: k.Line, Key: k.Name, Msg: fmt.Sprintf(format, args...)}
}

// ErrorfAt returns an *Error about this key at line num (from Lines), for
// a problem with one line of a multi-line value.
func (k *Key) ErrorfAt(num int, format string, args ...any) *Error {
	return &Error{File: k.file, Line: num, Key: k.Name, Msg: fmt.Sprintf(format, args...)}
}

// ParseBool reads a boolean as configparser's getboolean does: 1, yes,
// true, on and 0, no, false, off, in any case. Anything else, the empty
// string included, is an error.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimFunc(s, isSpace)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use yes or no)", s)
}
