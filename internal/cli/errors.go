package cli

import (
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/usage"
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
// It is usage.Error, which deploy and nodes return too.
type UsageError = usage.Error

// usagef makes a *UsageError.
func usagef(format string, args ...any) error { return usage.Errorf(format, args...) }

// asUsage marks err as a usage error, unless it is nil.
func asUsage(err error) error { return usage.Wrap(err) }

// exitCode maps an error from a command to the process exit status.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if usage.Is(err) {
		return ExitUsage
	}
	return ExitFailed
}
