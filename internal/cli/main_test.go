package cli

import (
	"os"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

// TestMain removes the toppcloud binary the integration tests built (see
// localtest.Binary), which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	localtest.RemoveBinary()
	os.Exit(code)
}
