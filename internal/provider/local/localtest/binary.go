package localtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The toppcloud binary, built at most once per test process: the test
// binary is not toppcloud, and tests run it as a user would and install
// it on nodes.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/toppcloud the first time it is called in this
// process and returns the binary's path; a failed build fails t. The
// binary outlives any one test, so TestMain removes it with
// RemoveBinary.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "toppcloud-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "toppcloud")
		goBin, err := exec.LookPath("go")
		if err != nil {
			// Not on PATH: the toolchain this test was built with.
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		out, err := exec.Command(goBin, "build", "-o", buildPath, "github.com/toppcloud/toppcloud/cmd/toppcloud").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/toppcloud: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// RemoveBinary removes what Binary built, if anything; TestMain calls it
// after m.Run.
func RemoveBinary() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}
