//go:build !linux

package local

import "errors"

// The driver's file-system calls exist on Linux only (overlayfs, lazy
// unmounts, syncfs). checkPrereqs refuses other systems, saying what to
// use instead, before any of them is reached; these keep the client
// building for macOS.

var errNotLinux = errors.New("local provider: needs Linux (overlayfs)")

func mountOverlay(_, _, _, _ string) error { return errNotLinux }

func detachMount(string) error { return errNotLinux }

func syncFS(string) error { return errNotLinux }
