// Package version says which toppcloud this is. The client and the node
// agent are the same binary, so the client compares its own Fingerprint
// with the agent's to decide whether to upload itself.
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/toppcloud/toppcloud/internal/version.Version=v1.2.3".
var Version = "v0.1.0-dev"

// Protocol is the version of the client/agent JSON protocol. It changes
// when a request or result type changes incompatibly.
const Protocol = 1

// SilverVersion is what applications see in SILVER_VERSION. It starts with
// "silverlining/" because applications written for the original test for
// that prefix to know they run in production.
func SilverVersion() string { return "silverlining/" + Version + " toppcloud" }

var fingerprint = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
})

// Fingerprint is the sha256 of the running executable. Two binaries with
// the same Version but different code (a development build) still differ
// here, which is what decides whether the agent on a node is replaced.
func Fingerprint() (string, error) { return fingerprint() }

// Commit returns the VCS revision recorded by the Go toolchain, or "".
func Commit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
