package local

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// CommandError is a host command (ip, nft, debootstrap) that failed. Stderr
// is trimmed to its last lines.
type CommandError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.Join(e.Args, " ") + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// run executes argv (never through a shell) with stdin, returning stdout.
func run(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = hostCommandEnv
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return stdout.Bytes(), &CommandError{Args: argv, Stderr: lastLines(stderr.String(), 5), Err: err}
	}
	return stdout.Bytes(), nil
}

// hostCommandEnv is the environment of every command we run: a fixed PATH
// with the sbin directories (ip and nft live there) and the C locale so
// the messages we match are not translated.
var hostCommandEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// stderrSays reports whether err is a CommandError whose stderr contains
// one of the given phrases.
func stderrSays(err error, phrases ...string) bool {
	ce, ok := err.(*CommandError)
	if !ok {
		return false
	}
	for _, p := range phrases {
		if strings.Contains(ce.Stderr, p) {
			return true
		}
	}
	return false
}

// lookPathSbin finds a command in PATH or in the sbin directories, which a
// non-root user's PATH often lacks.
func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := dir + "/" + name
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}
