package nodes

import (
	"context"
	"fmt"

	"github.com/toppcloud/toppcloud/internal/agent/router"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// PointHost adds a deployed location's host to the hosts file with the
// node's address, when asked (flag: --etc-hosts) or when the node's
// config section says set_etc_hosts. Wildcards, catch-alls and IP
// locations name no host to add.
func (s *Session) PointHost(ctx context.Context, rec state.NodeRecord, loc location.Location, flag bool) error {
	want := flag
	if !want {
		sec, err := s.section(ctx, rec.Section, false)
		if err != nil {
			return err
		}
		if sec != nil {
			if want, err = sec.SetEtcHosts(); err != nil {
				return usage.Wrap(err)
			}
		}
	}
	if !want || loc.Wildcard() || loc.CatchAll() || loc.IP() || rec.Address() == "" {
		return nil
	}
	// prev.HOST too, where the previous instance answers (as the
	// original did).
	for _, host := range []string{loc.Host, router.PrevPrefix + loc.Host} {
		changed, err := state.SetHost(s.o.EtcHosts, rec.Address(), host)
		if err != nil {
			return fmt.Errorf("add %s to %s: %w (run as root, or drop --etc-hosts / set_etc_hosts)", host, s.o.EtcHosts, err)
		}
		if changed {
			s.o.Report.Printf("added %s %s to %s", rec.Address(), host, s.o.EtcHosts)
		}
	}
	return nil
}
