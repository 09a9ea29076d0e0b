// Package integration decides whether a test that needs more than Go may
// run: root, real local nodes, or a real server binary such as Caddy. Such
// tests run only when TOPPCLOUD_INTEGRATION=1 (`make integration` sets
// it); otherwise they skip with the reason, so `go test ./...` stays fast
// and needs neither root nor a network. Every gate in the tree goes
// through here, so the rule is written once.
package integration

import (
	"os"
	"testing"
)

// Env must be "1" for integration tests to run.
const Env = "TOPPCLOUD_INTEGRATION"

// Unavailable says why integration tests cannot run here, or "" when they
// can. With root set they also need to run as root. It is for TestMain
// functions, which have no testing.T to skip.
func Unavailable(root bool) string {
	if os.Getenv(Env) != "1" {
		return "integration test: set " + Env + "=1 to run it"
	}
	if root && os.Geteuid() != 0 {
		return "integration test: needs root (systemd-nspawn, network namespaces)"
	}
	return ""
}

// Skip skips t unless integration tests are enabled.
func Skip(t testing.TB) {
	t.Helper()
	if why := Unavailable(false); why != "" {
		t.Skip(why)
	}
}

// SkipUnlessRoot skips t unless integration tests are enabled and the
// test runs as root.
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if why := Unavailable(true); why != "" {
		t.Skip(why)
	}
}

// NeedFile skips t unless integration tests are enabled and path exists;
// pkg names the Debian package that provides it.
func NeedFile(t testing.TB, path, pkg string) {
	t.Helper()
	Skip(t)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("integration test needs %s (Debian package %s): %v", path, pkg, err)
	}
}
