package cli

import (
	"errors"
	"fmt"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Exit codes, kept stable for scripts; the agent (`toppcloud node`)
// exits with the same ones.
const (
	ExitOK     = protocol.ExitOK
	ExitFailed = protocol.ExitFailed
	ExitUsage  = protocol.ExitUsage
)

// UsageError is a mistake in how the command was called or configured:
// bad flags, bad arguments, a malformed or missing config. It exits 2.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef makes a *UsageError.
func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// asUsage marks err as a usage error, unless it is nil.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return err
	}
	return &UsageError{Err: err}
}

// exitCode maps an error from a command to the process exit status.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailed
}
