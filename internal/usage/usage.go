// Package usage marks errors that are the user's mistake in what they
// asked for: a bad flag or argument, a malformed config file, an app
// directory that cannot be deployed. Such an error is found before
// anything remote happens, says what to fix, and makes the command exit 2
// instead of 1.
//
// The command line, the deploy checks and the node lifecycle all return
// it, so the exit status does not depend on which package noticed the
// mistake. The agent's refusal of a request (protocol.CodeBadRequest) is
// not one: it crosses the wire as a code, after the client has connected.
package usage

import (
	"errors"
	"fmt"
)

// Error is a mistake in how a command was called or configured.
type Error struct {
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap gives the mistake itself.
func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an *Error from a message.
func Errorf(format string, args ...any) error {
	return &Error{Err: fmt.Errorf(format, args...)}
}

// Wrap marks err as a usage error; nil stays nil and an error that is
// one already is returned as it is.
func Wrap(err error) error {
	if err == nil || Is(err) {
		return err
	}
	return &Error{Err: err}
}

// Is reports whether err is, or wraps, an *Error.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
