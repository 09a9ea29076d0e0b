// Package hetzner is the Hetzner Cloud driver, on the official SDK
// (github.com/hetznercloud/hcloud-go/v2, pinned at v2.52.0: later
// releases need a newer Go than ours).
//
// Keys: each of CreateRequest.AuthorizedKeys is registered through
// /v1/ssh_keys (named "toppcloud-<md5 prefix>") unless a key with the same
// fingerprint is already there, and passed by ID at create, so Hetzner
// puts it in root's authorized_keys (and sends no root password).
// Registered keys are kept and reused, also when the create fails.
//
// Images and sizes are limited to x86 (system images, server types), so
// any image fits any size. Prices are Hetzner's, in EUR including VAT,
// for the configured location (or the first listed): Size.Note says so.
//
// State mapping (server status): initializing, starting, migrating,
// rebuilding -> pending; running -> running; off, stopping -> stopped;
// deleting -> terminated; unknown and anything else -> unknown.
package hetzner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "hetzner"

// DefaultEndpoint is Hetzner Cloud's public API root; the driver adds /v1.
const DefaultEndpoint = "https://api.hetzner.cloud"

var options = []provider.Option{
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "Hetzner Cloud API token (read & write) of the project"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"HCLOUD_TOKEN"}
	}),
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "location for new servers (fsn1, nbg1, hel1, ...); empty lets Hetzner choose"
		o.Prompt = true
	}),
	provider.OptEndpoint,
	provider.OptImage,
	provider.OptSize,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Hetzner Cloud servers (token auth)",
		Options:      options,
		DefaultImage: "name debian-12",
		DefaultSize:  "name cx22",
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

// Options are the settings of a [provider:NAME] section of this type.
type Options = provider.TokenOptions

// Driver talks to one Hetzner Cloud project.
type Driver struct {
	opts   Options
	client *hcloud.Client
}

// New builds a driver from env without any network I/O.
func New(env provider.Env) (*Driver, error) {
	o, root, err := provider.DecodeTokenOptions(env.Settings, DefaultEndpoint, "API token", "HCLOUD_TOKEN")
	if err != nil {
		return nil, err
	}
	client := hcloud.NewClient(
		hcloud.WithToken(o.Token),
		hcloud.WithEndpoint(root+"/v1"),
		hcloud.WithHTTPClient(provider.WithRetries(env.HTTPClient)),
		// provider.WithRetries retries (honouring Retry-After, never
		// repeating a POST after a 5xx); the SDK's own retries would
		// multiply the attempts.
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 0}),
		hcloud.WithApplication("toppcloud", ""),
	)
	return &Driver{opts: o, client: client}, nil
}

// ListImages lists the x86 system images (Debian, Ubuntu, ...).
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	images, err := d.client.Image.AllWithOpts(ctx, hcloud.ImageListOpts{
		Type:         []hcloud.ImageType{hcloud.ImageTypeSystem},
		Architecture: []hcloud.Architecture{hcloud.ArchitectureX86},
	})
	if err != nil {
		return nil, apiError("list images", err)
	}
	var out []provider.Image
	for _, im := range images {
		out = append(out, provider.Image{ID: strconv.FormatInt(im.ID, 10), Name: im.Name, Note: im.Description, Created: im.Created})
	}
	return out, nil
}

// ListSizes lists the x86 server types offered in the location.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	types, err := d.client.ServerType.All(ctx)
	if err != nil {
		return nil, apiError("list server types", err)
	}
	var out []provider.Size
	for _, st := range types {
		if st.Architecture != "" && st.Architecture != hcloud.ArchitectureX86 {
			continue
		}
		price, ok := d.monthly(st)
		if !ok {
			continue
		}
		note := "price in EUR incl. VAT"
		if st.IsDeprecated() {
			note += "; deprecated"
		}
		out = append(out, provider.Size{ID: st.Name, Name: st.Name, RAMMB: int(st.Memory * 1024), DiskGB: st.Disk, VCPUs: st.Cores, PriceMonthly: price, Note: note})
	}
	return out, nil
}

// monthly returns a server type's gross monthly price in the configured
// location (or the first listed); ok is false when the type is not
// offered in the configured location.
func (d *Driver) monthly(st *hcloud.ServerType) (price float64, ok bool) {
	if d.opts.Region != "" && len(st.Locations) > 0 {
		offered := false
		for _, l := range st.Locations {
			if l.Location != nil && l.Location.Name == d.opts.Region && l.Available {
				offered = true
			}
		}
		if !offered {
			return 0, false
		}
	}
	var chosen *hcloud.ServerTypeLocationPricing
	for i, p := range st.Pricings {
		if chosen == nil || (p.Location != nil && p.Location.Name == d.opts.Region) {
			chosen = &st.Pricings[i]
		}
	}
	if chosen == nil {
		return 0, true
	}
	price, _ = strconv.ParseFloat(chosen.Monthly.Gross, 64)
	return price, true
}

// ListNodes lists every server of the project.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	servers, err := d.client.Server.All(ctx)
	if err != nil {
		return nil, apiError("list servers", err)
	}
	out := make([]provider.Node, 0, len(servers))
	for _, s := range servers {
		out = append(out, toNode(s))
	}
	return out, nil
}

// GetNode returns one server.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	n, err := serverID(id)
	if err != nil {
		return provider.Node{}, err
	}
	s, _, err := d.client.Server.GetByID(ctx, n)
	if err != nil {
		return provider.Node{}, apiError("get server "+id, err)
	}
	if s == nil {
		return provider.Node{}, &provider.APIError{Provider: Name, Op: "get server " + id, Status: http.StatusNotFound, Message: "no such server", Kind: provider.ErrNotFound}
	}
	return toNode(s), nil
}

// CreateNode registers the keys (or finds them) and creates the server.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	if err := checkCreate(req); err != nil {
		return provider.Node{}, err
	}
	keys, err := provider.ParseAuthorizedKeys(Name, req.AuthorizedKeys)
	if err != nil {
		return provider.Node{}, err
	}
	var sshKeys []*hcloud.SSHKey
	for _, k := range keys {
		key, err := d.ensureKey(ctx, k)
		if err != nil {
			return provider.Node{}, err
		}
		sshKeys = append(sshKeys, key)
	}
	image := &hcloud.Image{Name: req.Image.ID}
	if n, err := strconv.ParseInt(req.Image.ID, 10, 64); err == nil {
		image = &hcloud.Image{ID: n}
	}
	opts := hcloud.ServerCreateOpts{
		Name:       req.Name,
		ServerType: &hcloud.ServerType{Name: req.Size.ID},
		Image:      image,
		SSHKeys:    sshKeys,
		Labels:     map[string]string{"created-by": "toppcloud"},
	}
	if d.opts.Region != "" {
		opts.Location = &hcloud.Location{Name: d.opts.Region}
	}
	res, _, err := d.client.Server.Create(ctx, opts)
	if err != nil {
		return provider.Node{}, apiError("create server "+req.Name, err)
	}
	return toNode(res.Server), nil
}

// DestroyNode deletes a server.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	n, err := serverID(id)
	if err != nil {
		return err
	}
	if _, _, err := d.client.Server.DeleteWithResult(ctx, &hcloud.Server{ID: n}); err != nil {
		return apiError("delete server "+id, err)
	}
	return nil
}

// checkCreate validates a request before any remote action.
func checkCreate(req provider.CreateRequest) error {
	invalid := func(msg string) error {
		return &provider.APIError{Provider: Name, Op: "create server " + req.Name, Message: msg, Kind: provider.ErrInvalid}
	}
	if err := provider.ValidateHostname(req.Name); err != nil {
		return invalid(err.Error())
	}
	switch {
	case req.Image.ID == "" || req.Size.ID == "":
		return invalid("no image or size chosen")
	case len(req.Files) > 0:
		return fmt.Errorf("%s: placing files at create: %w", Name, provider.ErrNotSupported)
	case len(req.AuthorizedKeys) == 0:
		return invalid("no authorized keys: the server would be reachable by root password only")
	}
	return nil
}

// ensureKey returns the project's SSH key for k, registering it first
// when the project does not have it.
func (d *Driver) ensureKey(ctx context.Context, k provider.AuthorizedKey) (*hcloud.SSHKey, error) {
	key, _, err := d.client.SSHKey.GetByFingerprint(ctx, k.MD5)
	if err != nil {
		return nil, apiError("look up ssh key "+k.MD5, err)
	}
	if key != nil {
		return key, nil
	}
	key, _, err = d.client.SSHKey.Create(ctx, hcloud.SSHKeyCreateOpts{Name: k.Name(), PublicKey: k.Line})
	if err != nil {
		return nil, apiError("register ssh key "+k.MD5, err)
	}
	return key, nil
}

func serverID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, &provider.APIError{Provider: Name, Op: "server " + id, Message: "server IDs are numbers", Kind: provider.ErrNotFound}
	}
	return n, nil
}

// stateOf maps a server status onto the common scale.
func stateOf(s hcloud.ServerStatus) provider.State {
	switch s {
	case hcloud.ServerStatusInitializing, hcloud.ServerStatusStarting, hcloud.ServerStatusMigrating, hcloud.ServerStatusRebuilding:
		return provider.StatePending
	case hcloud.ServerStatusRunning:
		return provider.StateRunning
	case hcloud.ServerStatusOff, hcloud.ServerStatusStopping:
		return provider.StateStopped
	case hcloud.ServerStatusDeleting:
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

func toNode(s *hcloud.Server) provider.Node {
	n := provider.Node{ID: strconv.FormatInt(s.ID, 10), Name: s.Name, State: stateOf(s.Status), Provider: Name}
	if s.Image != nil {
		n.Image = s.Image.Name
	}
	if s.ServerType != nil {
		n.Size = s.ServerType.Name
	}
	if !s.PublicNet.IPv4.IsUnspecified() {
		n.PublicIPs = append(n.PublicIPs, s.PublicNet.IPv4.IP.String())
	}
	// Hetzner assigns a /64; by convention the server configures ::1 of it.
	if nw := s.PublicNet.IPv6.Network; nw != nil && !s.PublicNet.IPv6.IsUnspecified() {
		ip := make(net.IP, len(nw.IP.To16()))
		copy(ip, nw.IP.To16())
		ip[len(ip)-1] |= 1
		n.PublicIPs = append(n.PublicIPs, ip.String())
	}
	for _, p := range s.PrivateNet {
		if p.IP != nil {
			n.PrivateIPs = append(n.PrivateIPs, p.IP.String())
		}
	}
	return n
}

// kinds maps Hetzner's error codes to sentinels; codes not listed fall
// back to the HTTP status.
var kinds = map[hcloud.ErrorCode]error{
	hcloud.ErrorCodeUnauthorized:          provider.ErrAuth,
	hcloud.ErrorCodeForbidden:             provider.ErrAuth,
	hcloud.ErrorCodeNotFound:              provider.ErrNotFound,
	hcloud.ErrorCodeInvalidInput:          provider.ErrInvalid,
	hcloud.ErrorCodeInvalidServerType:     provider.ErrInvalid,
	hcloud.ErrorCodeResourceLimitExceeded: provider.ErrQuota,
	hcloud.ErrorCodeResourceUnavailable:   provider.ErrQuota,
	hcloud.ErrorCodeUniquenessError:       provider.ErrExists,
	hcloud.ErrorCodeRateLimitExceeded:     provider.ErrRateLimited,
}

// apiError turns an SDK error into a *provider.APIError carrying the API's
// own message, or wraps a transport error with the provider's name.
func apiError(op string, err error) error {
	var he hcloud.Error
	if errors.As(err, &he) {
		status := 0
		if r := he.Response(); r != nil && r.Response != nil {
			status = r.StatusCode
		}
		kind, ok := kinds[he.Code]
		if !ok {
			kind = provider.KindForStatus(status)
		}
		msg := fmt.Sprintf("%s (%s)", he.Message, he.Code)
		if kind == provider.ErrAuth {
			msg += "; check the token: secret in the provider section or $HCLOUD_TOKEN"
		}
		return &provider.APIError{Provider: Name, Op: op, Status: status, Message: msg, Kind: kind}
	}
	if errors.Is(err, hcloud.ErrStatusCode) {
		// An error status without Hetzner's JSON body (a proxy, say).
		var status int
		if i := strings.LastIndex(err.Error(), " "); i >= 0 {
			status, _ = strconv.Atoi(err.Error()[i+1:])
		}
		return &provider.APIError{Provider: Name, Op: op, Status: status, Message: "error status without an API error body", Kind: provider.KindForStatus(status)}
	}
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typeErr) {
		return fmt.Errorf("%s: %s: the API answered with something other than its JSON (is endpoint right?): %w", Name, op, err)
	}
	return fmt.Errorf("%s: %s: %w", Name, op, err)
}

// Interface guards.
var _ provider.Driver = (*Driver)(nil)
