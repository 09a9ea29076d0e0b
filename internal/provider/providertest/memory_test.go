package providertest

import (
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
)

func TestMemory_Conformance(t *testing.T) {
	Run(t, Opt{
		New: func(t *testing.T) provider.Driver {
			m := NewMemory()
			m.PendingPolls = 2
			return m
		},
		SkipBadAuth: "the memory driver has no credentials",
		Image:       "name debian-*",
		Size:        "ram 1024",
	})
}
