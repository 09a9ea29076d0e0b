// Package version says which toppcloud this is. The client and the node
// agent are the same binary, so the client compares its own Fingerprint
// with the agent's to decide whether to upload itself.
package version

import (
	"os"
	"runtime/debug"
	"sync"

	"github.com/toppcloud/toppcloud/internal/filestat"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/toppcloud/toppcloud/internal/version.Version=v1.2.3".
var Version = "v0.1.0-dev"

// Protocol is the version of the client/agent JSON protocol. It changes
// when a request or result type changes incompatibly, or when a client
// needs to know that an agent has something new.
//
//	1: the first.
//	2: OpUpdate (an update in one request, the agent's reply message),
//	   Request.Fingerprint, install-agent's zstd encoding.
const Protocol = 2

// SilverVersion is what applications see in SILVER_VERSION. It starts with
// "silverlining/" because applications written for the original test for
// that prefix to know they run in production.
func SilverVersion() string { return "silverlining/" + Version + " toppcloud" }

// DevelVersion is SILVER_VERSION under `toppcloud serve`: it starts with
// "devel/", as the original's development server's did, so that
// silversupport.env.is_production() is false.
func DevelVersion() string { return "devel/" + Version + " toppcloud" }

type selfSum struct {
	sum    string
	hashed bool
}

var fingerprint = sync.OnceValues(func() (selfSum, error) {
	f, exe, err := openSelf()
	if err != nil {
		return selfSum{}, err
	}
	defer f.Close()
	sum, hashed, err := filestat.SumOpenFile(f, exe, filestat.SidecarPath(exe), false)
	return selfSum{sum, hashed}, err
})

// openSelf opens the running executable and returns its path. On Linux
// the file is /proc/self/exe, which stays the running program even after
// a new agent was renamed over its path; the path then has another file,
// whose record does not match.
func openSelf() (*os.File, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		f, err = os.Open(exe)
	}
	return f, exe, err
}

// Fingerprint is the sha256 of the running executable. Two binaries with
// the same Version but different code (a development build) still differ
// here, which is what decides whether the agent on a node is replaced.
// It is read from the executable's sidecar record when that matches the
// running file, and computed otherwise.
func Fingerprint() (string, error) {
	s, err := fingerprint()
	return s.sum, err
}

// SaveFingerprint writes the running executable's sidecar record when
// Fingerprint had to hash it, so later runs need not. It needs write
// access to the executable's directory (root, for the agent); it does
// nothing when the record was valid or the file is too fresh to record
// (see SumFile).
func SaveFingerprint() error {
	s, err := fingerprint()
	if err != nil || !s.hashed {
		return err
	}
	f, exe, err := openSelf()
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, err = filestat.SumOpenFile(f, exe, filestat.SidecarPath(exe), true)
	return err
}

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
