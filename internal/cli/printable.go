package cli

import (
	"bytes"
	"io"
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

// printableWriter passes a stream (a script's output on the operator's
// terminal) through PrintableLines a line at a time, so that an escape
// sequence split across writes is still caught. A line longer than
// maxLine is passed on in pieces, each cut at a character boundary.
type printableWriter struct {
	w   io.Writer
	buf []byte
}

const maxLine = 64 << 10

func (p *printableWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if err := p.emit(p.buf[:i], true); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	for len(p.buf) > maxLine {
		cut := maxLine
		for cut > maxLine-utf8.UTFMax && !utf8.RuneStart(p.buf[cut]) {
			cut--
		}
		if err := p.emit(p.buf[:cut], false); err != nil {
			return len(b), err
		}
		p.buf = p.buf[cut:]
	}
	return len(b), nil
}

// Flush passes on what is left of an unfinished last line.
func (p *printableWriter) Flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	err := p.emit(p.buf, false)
	p.buf = nil
	return err
}

func (p *printableWriter) emit(line []byte, newline bool) error {
	s := Printable(strings.TrimSuffix(string(line), "\r"))
	if newline {
		s += "\n"
	}
	_, err := io.WriteString(p.w, s)
	return err
}
