//go:build !unix

package devserver

import "os/exec"

// Without Unix process groups only the child itself is stopped.
func setProcessGroup(cmd *exec.Cmd) {}

func terminateGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
