package cli

import (
	"strings"
	"unicode/utf8"
)

// Printable makes text from a node (an application's output, log and
// journal lines, error messages and step details) safe to print on the
// operator's terminal: C0 control characters other than tab, DEL and the
// C1 controls (U+0080-U+009F) are shown in cat -v's notation (ESC as ^[,
// CSI as M-^[), and bytes that are not UTF-8 as U+FFFD, so no escape
// sequence (window title, OSC 52 clipboard, cursor moves, a fake prompt
// after a carriage return) reaches the terminal. A newline is shown as ^J:
// callers print line by line (PrintableLines keeps them).
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r != '\t' && (r < 0x20 || r >= 0x7f && r <= 0x9f) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20:
			b.WriteByte('^')
			b.WriteByte(byte(r) + 0x40)
		case r == 0x7f:
			b.WriteString("^?")
		case r >= 0x80 && r <= 0x9f:
			b.WriteString("M-^")
			b.WriteByte(byte(r) - 0x40)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// PrintableLines is Printable for text of several lines (an error
// message with the output it carries): each line is made printable and
// the newlines between them are kept.
func PrintableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Printable(strings.TrimSuffix(l, "\r"))
	}
	return strings.Join(lines, "\n")
}
