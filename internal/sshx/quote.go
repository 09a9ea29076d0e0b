package sshx

import (
	"errors"
	"strings"
)

// SSH has no argv: the exec request carries one string, which sshd hands
// to the user's login shell as `$SHELL -c STRING`. Running an argv safely
// therefore means quoting every argument so that the shell turns the
// string back into exactly that argv, whatever bytes the arguments hold.
// These functions assume a POSIX shell (sh, dash, bash, zsh) as the login
// shell, which is what every supported node has for root.

// ErrNULInArg is returned for an argument containing a NUL byte, which no
// process can receive in its argv.
var ErrNULInArg = errors.New("argument contains a NUL byte")

// Quote returns s quoted for a POSIX shell: unchanged if it consists only
// of characters no shell treats specially, else in single quotes, where
// every byte is literal. A single quote inside ends the quoting, is
// escaped with a backslash, and quoting resumes:
//
//	it's  ->  'it'\''s'
//
// Quote does not check for NUL; Command does.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isSafe reports whether every byte of s is one the shell leaves alone in
// any position. '=' is not in the set: as the first word, a=b would be an
// assignment instead of a command. '~', '#', '*', '?', '[', '{' and the
// rest of the punctuation expand or end words somewhere.
func isSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == ',' || c == '+' || c == '@' || c == '%':
		default:
			return false
		}
	}
	return true
}

// Command joins argv into one string for an SSH exec request, quoting each
// argument with Quote.
func Command(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty command")
	}
	var b strings.Builder
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", ErrNULInArg
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Quote(a))
	}
	return b.String(), nil
}
