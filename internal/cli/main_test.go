package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the toppcloud binary the integration tests built (see
// builtAgent), which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	if agentBuildPath != "" {
		os.RemoveAll(filepath.Dir(agentBuildPath))
	}
	os.Exit(code)
}
