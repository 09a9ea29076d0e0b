// Package ini reads INI files the way Python 3's configparser does with its
// default settings (RawConfigParser, no interpolation), so that app.ini and
// ~/.toppcloud.conf files written for the original Python tool mean the same
// thing here.
//
// The rules, all taken from configparser:
//
//   - "[name]" starts a section; the name is everything between the first
//     "[" and the last "]" and is case-sensitive. Text after that "]" is
//     ignored. A section header may be indented.
//   - "key = value" and "key: value" set a key; the first "=" or ":" splits
//     the line. Keys are lower-cased; values are trimmed.
//   - A line indented deeper than the line its key started on continues the
//     value, joined with "\n". Empty lines inside a value are kept, empty
//     lines at its end are dropped.
//   - A line whose first non-space character is "#" or ";" is a comment,
//     even inside a multi-line value. Comments after a value ("x = 1 # no")
//     are NOT stripped: they are part of the value.
//   - [DEFAULT] keys are visible in every section.
//   - A section appearing twice, a key appearing twice in one section, a key
//     line before any section, and a line that is neither a header, a key,
//     a comment nor a continuation are errors naming the file and line.
//
// Deliberate differences from configparser: a UTF-8 byte-order mark at the
// start is skipped (configparser would treat it as part of the first line
// and reject the file), and invalid UTF-8 is reported with its line number.
// Parsing stops at the first error, where configparser collects malformed
// lines and reports them together.
package ini

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultSection is the name of the section whose keys every other section
// inherits.
const DefaultSection = "DEFAULT"

// File is a parsed INI file.
type File struct {
	// Name is the file name used in error messages.
	Name string

	defaults *Section
	sections []*Section
	byName   map[string]*Section
}

// Section is one [section] of a file. Lookups fall back to [DEFAULT].
type Section struct {
	// Name is the section name as written, without brackets.
	Name string
	// Line is where the section's header is (the first header, for
	// [DEFAULT], which may appear more than once); 0 for an absent
	// [DEFAULT].
	Line int

	file   *File
	keys   []*Key
	byName map[string]*Key
}

// Key is one key of a section with its value and where it was written.
type Key struct {
	// Section is the section the key was written in; DefaultSection for a
	// key inherited from [DEFAULT].
	Section string
	// Name is the key, lower-cased.
	Name string
	// Value is the value, trimmed, its lines joined with "\n".
	Value string
	// Line is the line the key is on.
	Line int

	file string
	// lines[i] is the source line of the i-th "\n"-separated line of Value.
	lines []int
}

// Line is one line of a multi-line value and the file line it came from.
type Line struct {
	Text string
	Num  int
}

// ReadFile reads and parses the file at path; path is also the name used in
// errors. A missing file gives an error satisfying
// errors.Is(err, fs.ErrNotExist).
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses data; name is used in error messages (and is usually the file
// path). Errors are *Error values.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Name: name, byName: map[string]*Section{}}
	f.defaults = &Section{Name: DefaultSection, file: f, byName: map[string]*Key{}}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))

	p := parser{f: f}
	lineno := 0
	for len(data) > 0 {
		lineno++
		line, rest := cutLine(data)
		data = rest
		if !utf8.Valid(line) {
			return nil, &Error{File: name, Line: lineno, Msg: "not valid UTF-8 text"}
		}
		if err := p.line(lineno, string(line)); err != nil {
			return nil, err
		}
	}
	p.join()
	return f, nil
}

// cutLine splits off the first line; "\n", "\r\n" and "\r" end a line, as
// in Python's universal-newlines mode, which configparser reads files in.
func cutLine(data []byte) (line, rest []byte) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		return data, nil
	}
	if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
		return data[:i], data[i+2:]
	}
	return data[:i], data[i+1:]
}

type parser struct {
	f           *File
	cur         *Section
	key         *Key // the key a continuation line would extend
	indentLevel int
	// pieces holds each key's value lines until join.
	pieces map[*Key][]string
}

func (p *parser) line(lineno int, line string) error {
	value := strings.TrimFunc(line, isSpace)
	if value == "" {
		// configparser keeps empty lines in a value (empty_lines_in_values
		// is on by default); trailing ones are trimmed when joining.
		if p.cur != nil && p.key != nil {
			p.addPiece(p.key, "", lineno)
		}
		return nil
	}
	if value[0] == '#' || value[0] == ';' {
		return nil
	}
	indent := 0
	for _, r := range line {
		if !isSpace(r) {
			break
		}
		indent++ // configparser counts characters, not bytes
	}
	if p.cur != nil && p.key != nil && indent > p.indentLevel {
		p.addPiece(p.key, value, lineno)
		return nil
	}
	p.indentLevel = indent

	if name, ok := sectionHeader(value); ok {
		p.key = nil
		if name == DefaultSection {
			// configparser allows [DEFAULT] more than once; a key
			// repeated across them is still a duplicate.
			p.cur = p.f.defaults
			if p.cur.Line == 0 {
				p.cur.Line = lineno
			}
			return nil
		}
		if prev, dup := p.f.byName[name]; dup {
			return &Error{File: p.f.Name, Line: lineno,
				Msg: fmt.Sprintf("section [%s] appears twice (first at line %d)", name, prev.Line)}
		}
		s := &Section{Name: name, Line: lineno, file: p.f, byName: map[string]*Key{}}
		p.f.sections = append(p.f.sections, s)
		p.f.byName[name] = s
		p.cur = s
		return nil
	}
	if p.cur == nil {
		return &Error{File: p.f.Name, Line: lineno,
			Msg: "text before the first [section] header (a file starts with a header such as [production])"}
	}
	i := strings.IndexAny(value, "=:")
	if i < 0 {
		// The line itself is not quoted: it may be a secret that was
		// meant as a continuation line.
		return &Error{File: p.f.Name, Line: lineno,
			Msg: `expected "key = value", a [section] header or a comment (a value continued on the next line must be indented)`}
	}
	name := strings.ToLower(strings.TrimRightFunc(value[:i], isSpace))
	if name == "" {
		return &Error{File: p.f.Name, Line: lineno, Msg: fmt.Sprintf("%q with no key name before it", value[i:i+1])}
	}
	if prev, dup := p.cur.byName[name]; dup {
		return &Error{File: p.f.Name, Line: lineno, Key: name,
			Msg: fmt.Sprintf("set twice in [%s] (first at line %d)", p.cur.Name, prev.Line)}
	}
	k := &Key{Section: p.cur.Name, Name: name, Line: lineno, file: p.f.Name}
	p.cur.keys = append(p.cur.keys, k)
	p.cur.byName[name] = k
	p.key = k
	p.addPiece(k, strings.TrimFunc(value[i+1:], isSpace), lineno)
	return nil
}

func (p *parser) addPiece(k *Key, text string, lineno int) {
	if p.pieces == nil {
		p.pieces = map[*Key][]string{}
	}
	p.pieces[k] = append(p.pieces[k], text)
	k.lines = append(k.lines, lineno)
}

// join sets each key's value from its lines, dropping trailing empty ones,
// as configparser's _join_multiline_values does.
func (p *parser) join() {
	for k, pieces := range p.pieces {
		n := len(pieces)
		for n > 1 && pieces[n-1] == "" {
			n--
		}
		k.Value = strings.Join(pieces[:n], "\n")
		k.lines = k.lines[:n]
	}
}

// sectionHeader matches configparser's SECTCRE, `\[(?P<header>.+)\]`, which
// is anchored at the start only: the name runs to the last "]" and anything
// after it is ignored.
func sectionHeader(value string) (string, bool) {
	if value[0] != '[' {
		return "", false
	}
	end := strings.LastIndexByte(value, ']')
	if end < 2 {
		return "", false
	}
	return value[1:end], true
}

// isSpace is Python's str.isspace, which configparser's strip() and \s use.
// It is Go's unicode.IsSpace plus the ASCII separators U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
