package manifest

// The matcher is written here rather than taken from a library: the Go
// candidates either pull a whole git implementation for ~200 lines
// (go-git's plumbing/format/gitignore, which also has open divergences
// from git on non-trailing "**" and re-included directories) or are
// unmaintained (sabhiram/go-gitignore). The subset below is checked
// against `git check-ignore` in the tests when git is installed.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// IgnoreFile is the name of the ignore file read at the top of an
// application directory.
const IgnoreFile = ".toppcloudignore"

// DefaultIgnores are always applied before the patterns of IgnoreFile
// (which can re-include with "!"). They are version control metadata,
// Python byte code, the original's local log directory, and editor and
// merge leftovers. Of the original's rsync exclude list we keep the
// editor and merge leftovers (a "#" pattern is escaped: unescaped it
// is a comment) and drop its CVS-era entries ("cvslog.*",
// ",*", "_$*", "*$", ".del-*", ".make.state", ".nse_depinfo", "*.elc",
// "pip-log.txt", "*.old"), which mostly hide files an application may
// need; "#*" is narrowed to Emacs's "#*#".
var DefaultIgnores = []string{
	".git", ".hg", ".svn", ".bzr",
	"*.pyc", "*.pyo", "__pycache__/",
	"/silver-logs/",
	"*~", ".#*", `\#*#`, ".*.swp",
	"*.orig", "*.rej", "*.bak", "*.BAK",
	".DS_Store",
}

// Ignore decides which paths of an application directory are left out.
// Patterns follow gitignore(5) for one ignore file at the top of the
// directory: blank lines and "#" comments are skipped, trailing spaces
// dropped unless escaped, "!" re-includes, a trailing "/" matches only
// directories, a "/" at the start or in the middle anchors the pattern at
// the top (otherwise it matches the name at any depth), "*" and "?" do
// not match "/", "[...]" is a class ("!" or "^" negates, ranges allowed),
// "\" escapes, and "**" as a whole element matches any number of
// directories ("a/**" matches what is inside a, not a itself). The last
// matching pattern wins. As in git, nothing under an ignored directory
// can be re-included, because the directory is not read. Unlike git, "?"
// matches one UTF-8 character rather than one byte, and POSIX classes
// like [:alpha:] are not supported.
type Ignore struct {
	patterns []pattern
}

type pattern struct {
	source   string // file:line, for messages
	negate   bool
	dirOnly  bool
	anchored bool
	elems    []string
}

// NewIgnore compiles patterns, one per element as they would appear on
// lines of an ignore file; source names them in errors.
func NewIgnore(source string, lines []string) (*Ignore, error) {
	ig := &Ignore{}
	if err := ig.add(source, lines); err != nil {
		return nil, err
	}
	return ig, nil
}

// ParseIgnore reads an ignore file's patterns after DefaultIgnores.
func ParseIgnore(name string, r io.Reader) (*Ignore, error) {
	ig, err := NewIgnore("default", DefaultIgnores)
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := ig.add(name, lines); err != nil {
		return nil, err
	}
	return ig, nil
}

func (ig *Ignore) add(source string, lines []string) error {
	for i, line := range lines {
		p, ok, err := compile(line)
		if err != nil {
			return fmt.Errorf("%s:%d: pattern %q: %w", source, i+1, line, err)
		}
		if ok {
			p.source = fmt.Sprintf("%s:%d", source, i+1)
			ig.patterns = append(ig.patterns, p)
		}
	}
	return nil
}

// compile parses one line; ok is false for blank lines and comments.
func compile(line string) (p pattern, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	if line == "" || line[0] == '#' {
		return p, false, nil
	}
	line = trimTrailingSpaces(line)
	if line == "" {
		return p, false, nil
	}
	if line[0] == '!' {
		p.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") && !strings.HasSuffix(line, `\/`) {
		p.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return p, false, nil
	}
	if strings.Contains(line, "/") {
		p.anchored = true
		line = strings.TrimPrefix(line, "/")
	}
	p.elems = strings.Split(line, "/")
	for _, e := range p.elems {
		if e == "" {
			return p, false, errors.New("empty path element")
		}
		if err := checkClass(e); err != nil {
			return p, false, err
		}
	}
	return p, true, nil
}

// trimTrailingSpaces drops trailing spaces that are not escaped with a
// backslash.
func trimTrailingSpaces(s string) string {
	end := len(s)
	for end > 0 && s[end-1] == ' ' {
		// Count the backslashes before this space: an odd number escapes it.
		n := 0
		for i := end - 2; i >= 0 && s[i] == '\\'; i-- {
			n++
		}
		if n%2 == 1 {
			break
		}
		end--
	}
	return s[:end]
}

// checkClass rejects an unterminated "[" class, which git silently treats
// as never matching; saying so is kinder.
func checkClass(e string) error {
	for i := 0; i < len(e); i++ {
		switch e[i] {
		case '\\':
			i++
		case '[':
			_, n, ok := parseClass(e[i:], 'x')
			if !ok {
				return errors.New("unterminated [ class")
			}
			i += n - 1
		}
	}
	return nil
}

// Match reports whether the path (relative, "/"-separated) is left out,
// because it or a directory above it is ignored; isDir says whether it is
// a directory (a symlink is not, as in git).
func (ig *Ignore) Match(path string, isDir bool) bool {
	for i := 0; i < len(path); i++ {
		if path[i] == '/' {
			if ignored, _ := ig.matchOne(path[:i], true); ignored {
				return true
			}
		}
	}
	ignored, _ := ig.matchOne(path, isDir)
	return ignored
}

// matchOne decides for one path whose parent directories are known not to
// be ignored (as when walking), and returns the deciding pattern's source.
func (ig *Ignore) matchOne(path string, isDir bool) (bool, string) {
	elems := strings.Split(path, "/")
	for i := len(ig.patterns) - 1; i >= 0; i-- {
		p := &ig.patterns[i]
		if p.dirOnly && !isDir {
			continue
		}
		var hit bool
		if p.anchored {
			hit = matchElems(p.elems, elems)
		} else {
			hit = matchElem(p.elems[0], elems[len(elems)-1])
		}
		if hit {
			return !p.negate, p.source
		}
	}
	return false, ""
}

// matchElems matches pattern elements against path elements; "**" takes
// any number of path elements, at least one when it ends the pattern.
func matchElems(pat, path []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return len(path) >= 1
			}
			for skip := 0; skip <= len(path); skip++ {
				if matchElems(pat[1:], path[skip:]) {
					return true
				}
			}
			return false
		}
		if len(path) == 0 || !matchElem(pat[0], path[0]) {
			return false
		}
		pat, path = pat[1:], path[1:]
	}
	return len(path) == 0
}

// matchElem matches one path element against a glob without "/": "*"
// (any run, "**" inside an element is the same), "?", classes, escapes.
func matchElem(pat, name string) bool {
	// Backtracking on the last "*" is enough: a later star can always
	// absorb what an earlier one would have.
	var starPat, starName = -1, 0
	pi, ni := 0, 0
	for ni < len(name) || pi < len(pat) {
		if pi < len(pat) {
			switch c := pat[pi]; c {
			case '*':
				for pi < len(pat) && pat[pi] == '*' {
					pi++
				}
				starPat, starName = pi, ni
				continue
			case '?':
				if ni < len(name) {
					_, w := utf8.DecodeRuneInString(name[ni:])
					pi++
					ni += w
					continue
				}
			case '[':
				if ni < len(name) {
					r, w := utf8.DecodeRuneInString(name[ni:])
					if ok, n, _ := parseClass(pat[pi:], r); ok {
						pi += n
						ni += w
						continue
					}
				}
			default:
				lit := c
				adv := 1
				if c == '\\' && pi+1 < len(pat) {
					lit = pat[pi+1]
					adv = 2
				}
				if ni < len(name) && name[ni] == lit {
					pi += adv
					ni++
					continue
				}
			}
		}
		if starPat >= 0 && starName < len(name) {
			_, w := utf8.DecodeRuneInString(name[starName:])
			starName += w
			pi, ni = starPat, starName
			continue
		}
		return false
	}
	return true
}

// parseClass matches r against the class at the start of pat ("[...]")
// and returns whether it matched, the class's length in bytes, and
// whether the class is well formed.
func parseClass(pat string, r rune) (matched bool, n int, ok bool) {
	i := 1
	negate := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pat) {
		if pat[i] == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		lo, w := classChar(pat[i:])
		if w == 0 {
			return false, 0, false
		}
		i += w
		hi := lo
		if i+1 < len(pat) && pat[i] == '-' && pat[i+1] != ']' {
			hi, w = classChar(pat[i+1:])
			if w == 0 {
				return false, 0, false
			}
			i += 1 + w
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
	return false, 0, false
}

// classChar reads one possibly escaped character of a class.
func classChar(s string) (rune, int) {
	if s[0] == '\\' {
		if len(s) < 2 {
			return 0, 0
		}
		r, w := utf8.DecodeRuneInString(s[1:])
		return r, 1 + w
	}
	r, w := utf8.DecodeRuneInString(s)
	return r, w
}
