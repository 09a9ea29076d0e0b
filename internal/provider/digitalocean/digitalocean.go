// Package digitalocean is the DigitalOcean driver, on the official SDK
// (github.com/digitalocean/godo).
//
// Keys: each of CreateRequest.AuthorizedKeys is registered as an account
// SSH key (POST /v2/account/keys, named "toppcloud-<md5 prefix>") unless a
// key with the same MD5 fingerprint is already there, and passed by
// fingerprint at create, so DigitalOcean puts it in root's
// authorized_keys. Registered keys are kept and reused, also when the
// create fails: they are the user's own public keys, harmless to keep.
//
// State mapping (droplet status): new -> pending, active -> running,
// off -> stopped, archive -> terminated, anything else -> unknown.
package digitalocean

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "digitalocean"

// DefaultEndpoint is DigitalOcean's public API root; the driver adds /v2.
const DefaultEndpoint = "https://api.digitalocean.com"

// perPage is what we ask for; the API may serve fewer (the fake does).
const perPage = 200

var options = []provider.Option{
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "personal access token with read and write scope"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"DIGITALOCEAN_TOKEN"}
	}),
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "region slug for new droplets (nyc3, ams3, fra1, ...); needed by create-node"
		o.Prompt = true
	}),
	provider.OptEndpoint,
	provider.OptImage,
	provider.OptSize,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "DigitalOcean droplets (token auth)",
		Options:      options,
		DefaultImage: "name debian-12-x64",
		DefaultSize:  "name s-1vcpu-1gb",
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

// Options are the settings of a [provider:NAME] section of this type.
type Options = provider.TokenOptions

// Driver talks to one DigitalOcean account.
type Driver struct {
	opts   Options
	client *godo.Client
}

// New builds a driver from env without any network I/O.
func New(env provider.Env) (*Driver, error) {
	o, root, err := provider.DecodeTokenOptions(env.Settings, DefaultEndpoint, "API token", "DIGITALOCEAN_TOKEN")
	if err != nil {
		return nil, err
	}
	// godo's own retries replace the HTTP client with one of their making
	// (bypassing env.HTTPClient); provider.WithRetries retries instead.
	client, err := godo.New(provider.WithRetries(env.HTTPClient),
		godo.SetBaseURL(root+"/"),
		godo.SetRequestHeaders(map[string]string{"Authorization": "Bearer " + o.Token}),
		godo.SetUserAgent("toppcloud"))
	if err != nil {
		return nil, fmt.Errorf("digitalocean: %w", err)
	}
	return &Driver{opts: o, client: client}, nil
}

// ListImages lists the distribution images (slug as ID, so it works both
// for matching and for create).
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	var out []provider.Image
	opt := &godo.ListOptions{PerPage: perPage}
	for {
		images, resp, err := d.client.Images.ListDistribution(ctx, opt)
		if err != nil {
			return nil, apiError("list images", err)
		}
		for _, im := range images {
			if im.Status != "" && im.Status != "available" {
				continue
			}
			if d.opts.Region != "" && len(im.Regions) > 0 && !slices.Contains(im.Regions, d.opts.Region) {
				continue
			}
			id := im.Slug
			if id == "" {
				id = strconv.Itoa(im.ID)
			}
			created, _ := time.Parse(time.RFC3339, im.Created)
			out = append(out, provider.Image{ID: id, Name: id, Note: strings.TrimSpace(im.Distribution + " " + im.Name), Created: created})
		}
		if !nextPage(resp, opt) {
			return out, nil
		}
	}
}

// ListSizes lists the sizes available (in the region, when one is set).
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	var out []provider.Size
	opt := &godo.ListOptions{PerPage: perPage}
	for {
		sizes, resp, err := d.client.Sizes.List(ctx, opt)
		if err != nil {
			return nil, apiError("list sizes", err)
		}
		for _, sz := range sizes {
			if !sz.Available || (d.opts.Region != "" && !slices.Contains(sz.Regions, d.opts.Region)) {
				continue
			}
			out = append(out, provider.Size{ID: sz.Slug, Name: sz.Slug, RAMMB: sz.Memory, DiskGB: sz.Disk, VCPUs: sz.Vcpus, PriceMonthly: sz.PriceMonthly, Note: sz.Description})
		}
		if !nextPage(resp, opt) {
			return out, nil
		}
	}
}

// ListNodes lists every droplet of the account.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	var out []provider.Node
	opt := &godo.ListOptions{PerPage: perPage}
	for {
		droplets, resp, err := d.client.Droplets.List(ctx, opt)
		if err != nil {
			return nil, apiError("list droplets", err)
		}
		for _, dr := range droplets {
			out = append(out, toNode(dr))
		}
		if !nextPage(resp, opt) {
			return out, nil
		}
	}
}

// GetNode returns one droplet.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	n, err := dropletID(id)
	if err != nil {
		return provider.Node{}, err
	}
	dr, _, err := d.client.Droplets.Get(ctx, n)
	if err != nil {
		return provider.Node{}, apiError("get droplet "+id, err)
	}
	return toNode(*dr), nil
}

// CreateNode registers the keys (or finds them) and creates the droplet.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	if err := d.checkCreate(req); err != nil {
		return provider.Node{}, err
	}
	keys, err := provider.ParseAuthorizedKeys(Name, req.AuthorizedKeys)
	if err != nil {
		return provider.Node{}, err
	}
	var sshKeys []godo.DropletCreateSSHKey
	for _, k := range keys {
		fp, err := d.ensureKey(ctx, k)
		if err != nil {
			return provider.Node{}, err
		}
		sshKeys = append(sshKeys, godo.DropletCreateSSHKey{Fingerprint: fp})
	}
	image := godo.DropletCreateImage{Slug: req.Image.ID}
	if n, err := strconv.Atoi(req.Image.ID); err == nil {
		image = godo.DropletCreateImage{ID: n}
	}
	dr, _, err := d.client.Droplets.Create(ctx, &godo.DropletCreateRequest{
		Name:    req.Name,
		Region:  d.opts.Region,
		Size:    req.Size.ID,
		Image:   image,
		SSHKeys: sshKeys,
		IPv6:    true,
		Tags:    []string{"toppcloud"},
	})
	if err != nil {
		return provider.Node{}, apiError("create droplet "+req.Name, err)
	}
	return toNode(*dr), nil
}

// DestroyNode deletes a droplet.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	n, err := dropletID(id)
	if err != nil {
		return err
	}
	if _, err := d.client.Droplets.Delete(ctx, n); err != nil {
		return apiError("delete droplet "+id, err)
	}
	return nil
}

// checkCreate validates a request before any remote action.
func (d *Driver) checkCreate(req provider.CreateRequest) error {
	invalid := func(msg string) error {
		return &provider.APIError{Provider: Name, Op: "create droplet " + req.Name, Message: msg, Kind: provider.ErrInvalid}
	}
	switch {
	case d.opts.Region == "":
		return invalid("no region: set region in the provider section (e.g. nyc3)")
	case req.Image.ID == "" || req.Size.ID == "":
		return invalid("no image or size chosen")
	case len(req.Files) > 0:
		return fmt.Errorf("%s: placing files at create: %w", Name, provider.ErrNotSupported)
	case len(req.AuthorizedKeys) == 0:
		return invalid("no authorized keys: the droplet would be unreachable")
	}
	if err := provider.ValidateHostname(req.Name); err != nil {
		return invalid(err.Error())
	}
	return nil
}

// ensureKey returns the fingerprint of an account key for pub, registering
// it first when the account does not have it.
func (d *Driver) ensureKey(ctx context.Context, k provider.AuthorizedKey) (string, error) {
	_, _, err := d.client.Keys.GetByFingerprint(ctx, k.MD5)
	if err == nil {
		return k.MD5, nil
	}
	if !errors.Is(apiError("", err), provider.ErrNotFound) {
		return "", apiError("look up ssh key "+k.MD5, err)
	}
	if _, _, err := d.client.Keys.Create(ctx, &godo.KeyCreateRequest{Name: k.Name(), PublicKey: k.Line}); err != nil {
		return "", apiError("register ssh key "+k.MD5, err)
	}
	return k.MD5, nil
}

func dropletID(id string) (int, error) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 {
		return 0, &provider.APIError{Provider: Name, Op: "droplet " + id, Message: "droplet IDs are numbers", Kind: provider.ErrNotFound}
	}
	return n, nil
}

// nextPage advances opt to the next page and reports whether there is one.
func nextPage(resp *godo.Response, opt *godo.ListOptions) bool {
	if resp == nil || resp.Links == nil || resp.Links.IsLastPage() {
		return false
	}
	page, err := resp.Links.CurrentPage()
	if err != nil {
		return false
	}
	opt.Page = page + 1
	return true
}

// stateOf maps a droplet status onto the common scale.
func stateOf(status string) provider.State {
	switch status {
	case "new":
		return provider.StatePending
	case "active":
		return provider.StateRunning
	case "off":
		return provider.StateStopped
	case "archive":
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

func toNode(dr godo.Droplet) provider.Node {
	n := provider.Node{ID: strconv.Itoa(dr.ID), Name: dr.Name, State: stateOf(dr.Status), Size: dr.SizeSlug, Provider: Name}
	if dr.Image != nil {
		n.Image = dr.Image.Slug
		if n.Image == "" {
			n.Image = strconv.Itoa(dr.Image.ID)
		}
	}
	if dr.Networks != nil {
		for _, v4 := range dr.Networks.V4 {
			if v4.Type == "public" {
				n.PublicIPs = append(n.PublicIPs, v4.IPAddress)
			} else {
				n.PrivateIPs = append(n.PrivateIPs, v4.IPAddress)
			}
		}
		for _, v6 := range dr.Networks.V6 {
			if v6.Type == "public" {
				n.PublicIPs = append(n.PublicIPs, v6.IPAddress)
			} else {
				n.PrivateIPs = append(n.PrivateIPs, v6.IPAddress)
			}
		}
	}
	return n
}

// apiError turns an SDK error into a *provider.APIError carrying the API's
// own message, or wraps a transport error with the provider's name.
func apiError(op string, err error) error {
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		status := er.Response.StatusCode
		kind := provider.KindForStatus(status)
		// DigitalOcean reports the droplet limit as a 422.
		if status == http.StatusUnprocessableEntity && strings.Contains(er.Message, "limit") {
			kind = provider.ErrQuota
		}
		msg := er.Message
		if kind == provider.ErrAuth {
			msg += " (check the token: secret in the provider section or $DIGITALOCEAN_TOKEN)"
		}
		return &provider.APIError{Provider: Name, Op: op, Status: status, Message: msg, Kind: kind}
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
