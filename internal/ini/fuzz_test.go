package ini

import (
	"bytes"
	"testing"
)

// FuzzParse checks that no input makes the parser panic and that what it
// returns is consistent: every key can be found again, and line numbers
// point into the input. Run with: go test -fuzz=FuzzParse ./internal/ini
func FuzzParse(f *testing.F) {
	for _, tc := range configparserCases {
		f.Add([]byte(tc.input))
	}
	f.Add([]byte("\ufeff[a]\r\nx = 1\r\n\t2\r\n"))
	f.Add([]byte("[a]\nx = \xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.ini", data)
		if err != nil {
			ie, ok := err.(*Error)
			if !ok || ie.File != "fuzz.ini" || ie.Line < 1 {
				t.Fatalf("error %#v is not a located *Error", err)
			}
			return
		}
		nlines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
		for _, s := range append(file.Sections(), file.Default()) {
			if file.Section(s.Name) != s {
				t.Fatalf("section %q not found by name", s.Name)
			}
			for _, k := range s.Keys() {
				if k.Name == "" || s.Key(k.Name) != k {
					t.Fatalf("key %q in [%s] not found by name", k.Name, s.Name)
				}
				if k.Line < 1 || k.Line > nlines {
					t.Fatalf("key %q line %d outside 1..%d", k.Name, k.Line, nlines)
				}
				for _, l := range k.Lines() {
					if l.Num < k.Line || l.Num > nlines || l.Text == "" {
						t.Fatalf("value line %+v of key %q (line %d) out of range", l, k.Name, k.Line)
					}
				}
			}
		}
	})
}
