package cli

import (
	"strings"
	"testing"
)

// TestPrintableWriter: an escape sequence is caught even when it arrives
// split across writes; lines, tabs and text are kept; an unfinished last
// line and an overlong one come out too.
func TestPrintableWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"plain", []string{"one\ttwo\n", "three\n"}, "one\ttwo\nthree\n"},
		{"split escape", []string{"title \x1b", "]0;owned\x07 done\n"}, "title ^[]0;owned^G done\n"},
		{"crlf", []string{"dos line\r\n"}, "dos line\n"},
		{"carriage return mid-line", []string{"ok\rfake prompt$ \n"}, "ok^Mfake prompt$ \n"},
		{"split rune", []string{"caf\xc3", "\xa9\n"}, "café\n"},
		{"unfinished last line", []string{"no newline \x1b[2J"}, "no newline ^[[2J"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			p := &printableWriter{w: &b}
			for _, w := range tc.writes {
				if n, err := p.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
	var b strings.Builder
	p := &printableWriter{w: &b}
	long := strings.Repeat("é", maxLine) // two bytes each
	p.Write([]byte(long + "\n"))
	p.Flush()
	if b.String() != long+"\n" {
		t.Errorf("a long line of two-byte characters came out changed (%d bytes)", b.Len())
	}
}
