package provider

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Matcher selects an image or size the way the original's config did:
// "[TYPE] [first] VALUE" with TYPE one of id, name, ram. Without a known
// TYPE word the whole string is a name. A name containing * ? or [ is a
// case-insensitive glob, otherwise a case-insensitive equality. ram compares
// the digits of VALUE with the size's RAM in MB ("ram 1024", "ram 1GB" is
// not accepted: "ram 1024MB" is). "first" picks one when several match
// instead of failing.
type Matcher struct {
	Kind  string // "id", "name" or "ram"
	First bool
	Value string
}

// ParseMatcher parses a matcher string. The empty string is an error.
func ParseMatcher(s string) (Matcher, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Matcher{}, fmt.Errorf("empty matcher (use id X, name GLOB or ram N)")
	}
	m := Matcher{Kind: "name"}
	switch strings.ToLower(fields[0]) {
	case "id", "name", "ram":
		m.Kind = strings.ToLower(fields[0])
		fields = fields[1:]
	}
	if len(fields) > 1 && strings.EqualFold(fields[0], "first") {
		m.First = true
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return Matcher{}, fmt.Errorf("matcher %q has no value", s)
	}
	m.Value = strings.Join(fields, " ")
	if m.Kind == "ram" {
		if _, err := ramValue(m.Value); err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: %w", s, err)
		}
	}
	return m, nil
}

func (m Matcher) String() string {
	s := m.Kind
	if m.First {
		s += " first"
	}
	return s + " " + m.Value
}

var ramRE = regexp.MustCompile(`^(\d+)\s*(?i:mb|m)?$`)

func ramValue(v string) (int, error) {
	sub := ramRE.FindStringSubmatch(strings.TrimSpace(v))
	if sub == nil {
		return 0, fmt.Errorf("ram value %q is not a number of megabytes", v)
	}
	return strconv.Atoi(sub[1])
}

func (m Matcher) matchName(name string) bool {
	if strings.ContainsAny(m.Value, "*?[") {
		re, err := globRegexp(m.Value)
		return err == nil && re.MatchString(name)
	}
	return strings.EqualFold(m.Value, name)
}

// globRegexp turns a glob into a case-insensitive regexp with Python
// fnmatch's rules, which the original used: * and ? match any character,
// "/" included (path.Match stops at "/", which breaks image names like
// "ubuntu/images/hvm-ssd/ubuntu-noble-*"), and [...] is a class with ! for
// negation.
func globRegexp(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?is)^")
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			j := strings.IndexByte(glob[i+1:], ']')
			if j < 0 {
				b.WriteString(regexp.QuoteMeta("["))
				continue
			}
			class := glob[i+1 : i+1+j]
			i += j + 1
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// NoMatchError says nothing matched; Candidates lists what there was.
type NoMatchError struct {
	What       string // "image" or "size"
	Matcher    Matcher
	Candidates []string
}

func (e *NoMatchError) Error() string {
	return fmt.Sprintf("no %s matches %q; available: %s", e.What, e.Matcher.String(), listOrNone(e.Candidates))
}

// AmbiguousMatchError says several matched and "first" was not given.
type AmbiguousMatchError struct {
	What    string
	Matcher Matcher
	Matches []string
}

func (e *AmbiguousMatchError) Error() string {
	return fmt.Sprintf("%d %ss match %q: %s; narrow the pattern or add \"first\" (e.g. %q)",
		len(e.Matches), e.What, e.Matcher.String(), strings.Join(e.Matches, ", "),
		e.Matcher.Kind+" first "+e.Matcher.Value)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	const max = 20
	if len(s) > max {
		return strings.Join(s[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(s)-max)
	}
	return strings.Join(s, ", ")
}

// MatchImage picks one image. With "first", the newest (by Created) wins,
// then the lowest name.
func MatchImage(images []Image, m Matcher) (Image, error) {
	if m.Kind == "ram" {
		return Image{}, fmt.Errorf("images cannot be matched by ram (use id or name)")
	}
	var hits []Image
	for _, im := range images {
		if (m.Kind == "id" && im.ID == m.Value) || (m.Kind == "name" && m.matchName(im.Name)) {
			hits = append(hits, im)
		}
	}
	describe := func(im Image) string { return fmt.Sprintf("%s (id %s)", im.Name, im.ID) }
	switch {
	case len(hits) == 1:
		return hits[0], nil
	case len(hits) == 0:
		var all []string
		for _, im := range images {
			all = append(all, describe(im))
		}
		return Image{}, &NoMatchError{What: "image", Matcher: m, Candidates: all}
	case !m.First:
		var names []string
		for _, im := range hits {
			names = append(names, describe(im))
		}
		return Image{}, &AmbiguousMatchError{What: "image", Matcher: m, Matches: names}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if !hits[i].Created.Equal(hits[j].Created) {
			return hits[i].Created.After(hits[j].Created)
		}
		return strings.ToLower(hits[i].Name) < strings.ToLower(hits[j].Name)
	})
	return hits[0], nil
}

// MatchSize picks one size. With "first", the smallest RAM wins, then the
// lowest name.
func MatchSize(sizes []Size, m Matcher) (Size, error) {
	var hits []Size
	want, _ := ramValue(m.Value)
	for _, sz := range sizes {
		switch m.Kind {
		case "id":
			if sz.ID == m.Value {
				hits = append(hits, sz)
			}
		case "name":
			if m.matchName(sz.Name) {
				hits = append(hits, sz)
			}
		case "ram":
			if sz.RAMMB == want {
				hits = append(hits, sz)
			}
		}
	}
	describe := func(sz Size) string { return fmt.Sprintf("%s (id %s, %d MB)", sz.Name, sz.ID, sz.RAMMB) }
	switch {
	case len(hits) == 1:
		return hits[0], nil
	case len(hits) == 0:
		var all []string
		for _, sz := range sizes {
			all = append(all, describe(sz))
		}
		return Size{}, &NoMatchError{What: "size", Matcher: m, Candidates: all}
	case !m.First:
		var names []string
		for _, sz := range hits {
			names = append(names, describe(sz))
		}
		return Size{}, &AmbiguousMatchError{What: "size", Matcher: m, Matches: names}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].RAMMB != hits[j].RAMMB {
			return hits[i].RAMMB < hits[j].RAMMB
		}
		return strings.ToLower(hits[i].Name) < strings.ToLower(hits[j].Name)
	})
	return hits[0], nil
}

// DefaultMatchers returns the image and size matcher strings for a section:
// the legacy image_id / image_name / size_id keys, then image / size, then
// the backend's defaults. The command line overrides all of these.
func DefaultMatchers(s Settings, info Info) (image, size string) {
	switch {
	case s.Get("image_id") != "":
		image = "id " + s.Get("image_id")
	case s.Get("image_name") != "":
		image = "name " + s.Get("image_name")
	case s.Get("image") != "":
		image = s.Get("image")
	default:
		image = info.DefaultImage
	}
	switch {
	case s.Get("size_id") != "":
		size = "id " + s.Get("size_id")
	case s.Get("size") != "":
		size = s.Get("size")
	default:
		size = info.DefaultSize
	}
	return image, size
}
