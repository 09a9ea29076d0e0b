package nodes

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// Provider is a config section with its driver constructed.
type Provider struct {
	// Section is NAME of [provider:NAME].
	Section string
	Info    provider.Info
	Driver  provider.Driver
	// DefaultImage and DefaultSize are the matchers create-node uses
	// without --image and --size.
	DefaultImage, DefaultSize string
	// AuthorizedKeys are the section's root_authorized_keys: what new
	// nodes are given.
	AuthorizedKeys []string
	// SetEtcHosts is the section's set_etc_hosts.
	SetEtcHosts bool
}

// OpenProvider opens [provider:section]: the config file (created on
// first use), the section, and its driver, each once per session.
func (s *Session) OpenProvider(ctx context.Context, section string) (*Provider, error) {
	if p, ok := s.providers[section]; ok {
		return p, nil
	}
	sec, err := s.section(ctx, section, true)
	if err != nil {
		return nil, err
	}
	info, ok := s.o.Providers.Lookup(sec.Type)
	if !ok {
		return nil, usage.Wrap(&provider.UnknownTypeError{Type: sec.Type, Known: s.o.Providers.Names()})
	}
	settings := sec.Settings(info, s.o.Getenv)
	setEtc, err := sec.SetEtcHosts()
	if err != nil {
		return nil, usage.Wrap(err)
	}
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	env := provider.Env{
		Section:    section,
		Settings:   settings,
		HTTPClient: s.o.HTTPClient,
		Log:        s.o.Log,
		// The driver's own files (existing: the servers it registered).
		StateDir: filepath.Join(st.Dir(), "providers", section),
	}
	d, err := s.o.Providers.Open(info.Name, env)
	if err != nil {
		var miss *provider.MissingOptionError
		if errors.As(err, &miss) {
			return nil, usage.Wrap(fmt.Errorf("%w (in [provider:%s] of %s)", err, section, s.o.ConfigPath))
		}
		return nil, usage.Wrap(err)
	}
	img, size := provider.DefaultMatchers(settings, info)
	p := &Provider{
		Section: section, Info: info, Driver: d,
		DefaultImage: img, DefaultSize: size,
		AuthorizedKeys: sec.AuthorizedKeys(), SetEtcHosts: setEtc,
	}
	s.providers[section] = p
	return p, nil
}

// Images lists the images nodes can be created from, and the ID of the
// one the default matcher picks ("" when it picks none).
func (p *Provider) Images(ctx context.Context) ([]provider.Image, string, error) {
	return withDefault(ctx, "images", p.Driver.ListImages, p.DefaultImage, provider.MatchImage, func(im provider.Image) string { return im.ID })
}

// Sizes lists the sizes nodes can have, and the ID of the one the default
// matcher picks ("" when it picks none).
func (p *Provider) Sizes(ctx context.Context) ([]provider.Size, string, error) {
	return withDefault(ctx, "sizes", p.Driver.ListSizes, p.DefaultSize, provider.MatchSize, func(sz provider.Size) string { return sz.ID })
}

// withDefault lists what (images, sizes) and finds the ID of the item
// matcher picks, or "".
func withDefault[T any](ctx context.Context, what string, list func(context.Context) ([]T, error), matcher string,
	match func([]T, provider.Matcher) (T, error), id func(T) string) ([]T, string, error) {
	items, err := list(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", what, err)
	}
	m, err := provider.ParseMatcher(matcher)
	if err != nil {
		return items, "", nil
	}
	it, err := match(items, m)
	if err != nil {
		return items, "", nil
	}
	return items, id(it), nil
}

// Nodes lists every server of the provider account, with the provider
// type filled in and empty address lists rather than none.
func (p *Provider) Nodes(ctx context.Context) ([]provider.Node, error) {
	nodes, err := p.Driver.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes {
		if nodes[i].Provider == "" {
			nodes[i].Provider = p.Info.Name
		}
		if nodes[i].PublicIPs == nil {
			nodes[i].PublicIPs = []string{}
		}
		if nodes[i].PrivateIPs == nil {
			nodes[i].PrivateIPs = []string{}
		}
	}
	if nodes == nil {
		nodes = []provider.Node{}
	}
	return nodes, nil
}

// KnownIDs returns the provider IDs of the nodes of section this client
// has records of.
func (s *Session) KnownIDs(section string) (map[string]bool, error) {
	st, err := s.State()
	if err != nil {
		return nil, err
	}
	recs, err := st.Nodes()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, r := range recs {
		if r.Section == section {
			known[r.ID] = true
		}
	}
	return known, nil
}

// chooseImageSize resolves the image and size matchers against the
// provider's lists; a matcher that matches nothing, or several without
// "first", is a usage error.
func chooseImageSize(ctx context.Context, d provider.Driver, imgM, sizeM string) (provider.Image, provider.Size, error) {
	im, err := provider.ParseMatcher(imgM)
	if err != nil {
		return provider.Image{}, provider.Size{}, usage.Wrap(fmt.Errorf("image: %w", err))
	}
	sm, err := provider.ParseMatcher(sizeM)
	if err != nil {
		return provider.Image{}, provider.Size{}, usage.Wrap(fmt.Errorf("size: %w", err))
	}
	images, err := d.ListImages(ctx)
	if err != nil {
		return provider.Image{}, provider.Size{}, fmt.Errorf("list images: %w", err)
	}
	image, err := provider.MatchImage(images, im)
	if err != nil {
		return provider.Image{}, provider.Size{}, usage.Wrap(err)
	}
	sizes, err := d.ListSizes(ctx)
	if err != nil {
		return provider.Image{}, provider.Size{}, fmt.Errorf("list sizes: %w", err)
	}
	size, err := provider.MatchSize(sizes, sm)
	if err != nil {
		return provider.Image{}, provider.Size{}, usage.Wrap(err)
	}
	return image, size, nil
}
