package ini

import "strconv"

// Error is a problem in a file, located by file name, line and key. Its
// message reads "FILE:LINE: KEY: MSG", leaving out what is not known.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
	// Err is an underlying cause, if any, for errors.Is and errors.As.
	Err error
}

func (e *Error) Error() string {
	var b []byte
	if e.File != "" {
		b = append(b, e.File...)
		if e.Line > 0 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Line), 10)
		}
		b = append(b, ": "...)
	} else if e.Line > 0 {
		b = append(b, "line "...)
		b = strconv.AppendInt(b, int64(e.Line), 10)
		b = append(b, ": "...)
	}
	if e.Key != "" {
		b = append(b, e.Key...)
		b = append(b, ": "...)
	}
	msg := e.Msg
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	return string(append(b, msg...))
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }
