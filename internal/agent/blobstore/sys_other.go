//go:build !linux

package blobstore

import "golang.org/x/sys/unix"

// The store runs on Linux nodes; these fallbacks only keep the client
// binary, which contains the agent, building elsewhere.

func renameNoReplace(oldpath, newpath string) error { return errNoReplaceUnsupported }

func syncFS(path string) error {
	unix.Sync()
	return nil
}

func bootID() string { return "unknown" }
