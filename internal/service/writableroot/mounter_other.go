//go:build !linux

package writableroot

import "errors"

// errNotLinux is what the mounter answers off Linux: the service runs in
// the agent on Debian nodes, and the client binary only has to build
// for other systems.
var errNotLinux = errors.New("the writable_root mount needs Linux's mount API (it is made by the agent on a node)")

// kernelMounter stands in for the Linux mounter; it mounts nothing.
type kernelMounter struct{}

func (kernelMounter) BindNoSymlinks(string, string) error { return errNotLinux }

func (kernelMounter) Unmount(string) error { return errNotLinux }
