package setup

import (
	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
)

// SysctlPath is the kernel setting setup-node makes, for the tests.
const SysctlPath = sysctlPath

// LayoutDirs are the node's directories with their attributes.
func LayoutDirs(l layout.Layout) map[string]host.Attr {
	m := map[string]host.Attr{}
	for _, d := range layoutDirs(l) {
		m[d.path] = d.attr
	}
	return m
}
