package nodes

import (
	"context"
	"fmt"

	"github.com/toppcloud/toppcloud/internal/config"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// Sites returns the config file's [site:NAME] sections, checked against
// the recorded nodes; none when there is no config file.
func (s *Session) Sites(ctx context.Context) ([]config.SiteSection, error) {
	f, err := s.config(ctx, false)
	if err != nil || f == nil {
		return nil, err
	}
	sites, err := f.Sites(s.Known)
	if err != nil {
		return nil, usage.Wrap(err)
	}
	return sites, nil
}

// PrivateAddress is a node's address within a site: its first private
// address where the provider gave it one, else its address (a local
// node has one).
func (s *Session) PrivateAddress(name string) (string, error) {
	rec, err := s.Record(name)
	if err != nil {
		return "", err
	}
	if len(rec.PrivateIPs) > 0 {
		return rec.PrivateIPs[0], nil
	}
	if a := rec.Address(); a != "" {
		return a, nil
	}
	return "", fmt.Errorf("node %s has no address recorded", name)
}
