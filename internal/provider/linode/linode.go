// Package linode is the Linode (Akamai Cloud) driver, on the official SDK
// (github.com/linode/linodego).
//
// Keys: Linode takes public keys directly at create (authorized_keys) and
// puts them in root's authorized_keys; there is nothing to register. The
// API also insists on a root password: the driver generates a random one
// per node and forgets it (never printed, logged or stored; keys are how
// toppcloud logs in).
//
// State mapping (instance status): provisioning, booting, rebooting,
// migrating, rebuilding, cloning, restoring, resizing -> pending;
// running -> running; offline, shutting_down, stopped,
// billing_suspension -> stopped; deleting -> terminated; anything else ->
// unknown.
package linode

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/linode/linodego"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "linode"

// DefaultEndpoint is Linode's public API root; the driver adds /v4.
const DefaultEndpoint = "https://api.linode.com"

// pageSize is what we ask for (the API's maximum); the API may serve
// fewer (the fake does).
const pageSize = 500

var options = []provider.Option{
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "personal access token with Linodes read/write"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"LINODE_TOKEN"}
	}),
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "region for new Linodes (us-east, eu-west, ...); needed by create-node"
		o.Prompt = true
	}),
	provider.OptEndpoint,
	provider.OptImage,
	provider.OptSize,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Linode (Akamai Cloud) instances (token auth)",
		Options:      options,
		DefaultImage: "id linode/debian12",
		DefaultSize:  "name g6-nanode-1",
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

// Options are the settings of a [provider:NAME] section of this type.
type Options = provider.TokenOptions

// Driver talks to one Linode account.
type Driver struct {
	opts   Options
	client *linodego.Client
}

// New builds a driver from env without any network I/O.
func New(env provider.Env) (*Driver, error) {
	o, root, err := provider.DecodeTokenOptions(env.Settings, DefaultEndpoint, "API token", "LINODE_TOKEN")
	if err != nil {
		return nil, err
	}
	c := linodego.NewClient(provider.WithRetries(env.HTTPClient))
	// NewClient reads LINODE_URL and LINODE_API_VERSION; the section's
	// endpoint (or the public API) wins.
	c.SetBaseURL(root)
	c.SetAPIVersion("v4")
	c.SetToken(o.Token)
	c.SetUserAgent("toppcloud " + linodego.DefaultUserAgent)
	// provider.WithRetries retries; linodego's own retries would multiply
	// the attempts and log each one through the log package.
	c.SetRetryCount(0)
	// Cached lists would hide changes between calls; LINODE_DEBUG must not
	// turn on request dumps.
	c.UseCache(false)
	c.SetDebug(false)
	return &Driver{opts: o, client: &c}, nil
}

func listOptions() *linodego.ListOptions {
	return &linodego.ListOptions{PageOptions: &linodego.PageOptions{}, PageSize: pageSize}
}

// ListImages lists the public images.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	images, err := d.client.ListImages(ctx, listOptions())
	if err != nil {
		return nil, d.apiError(ctx, "list images", err)
	}
	var out []provider.Image
	for _, im := range images {
		if !im.IsPublic || (im.Status != "" && im.Status != linodego.ImageStatusAvailable) {
			continue
		}
		img := provider.Image{ID: im.ID, Name: im.Label, Note: im.Vendor}
		if im.Deprecated {
			img.Note = strings.TrimSpace(img.Note + " (deprecated)")
		}
		if im.Created != nil {
			img.Created = *im.Created
		}
		out = append(out, img)
	}
	return out, nil
}

// ListSizes lists the Linode types (plans).
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	types, err := d.client.ListTypes(ctx, listOptions())
	if err != nil {
		return nil, d.apiError(ctx, "list types", err)
	}
	var out []provider.Size
	for _, t := range types {
		sz := provider.Size{ID: t.ID, Name: t.ID, RAMMB: t.Memory, DiskGB: t.Disk / 1024, VCPUs: t.VCPUs, Note: t.Label}
		if t.Price != nil {
			sz.PriceMonthly = float64(t.Price.Monthly)
		}
		for _, rp := range t.RegionPrices {
			if rp.ID == d.opts.Region {
				sz.PriceMonthly = float64(rp.Monthly)
			}
		}
		out = append(out, sz)
	}
	return out, nil
}

// ListNodes lists every Linode of the account.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	instances, err := d.client.ListInstances(ctx, listOptions())
	if err != nil {
		return nil, d.apiError(ctx, "list instances", err)
	}
	out := make([]provider.Node, 0, len(instances))
	for i := range instances {
		out = append(out, toNode(&instances[i]))
	}
	return out, nil
}

// GetNode returns one Linode.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	n, err := instanceID(id)
	if err != nil {
		return provider.Node{}, err
	}
	in, err := d.client.GetInstance(ctx, n)
	if err != nil {
		return provider.Node{}, d.apiError(ctx, "get instance "+id, err)
	}
	return toNode(in), nil
}

// CreateNode creates a booted Linode with the keys in root's
// authorized_keys and a random root password nobody keeps.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	if err := d.checkCreate(req); err != nil {
		return provider.Node{}, err
	}
	var keys []string
	for _, line := range req.AuthorizedKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return provider.Node{}, &provider.APIError{Provider: Name, Op: "parse authorized key", Message: err.Error(), Kind: provider.ErrInvalid}
		}
		keys = append(keys, strings.TrimSpace(line))
	}
	pass, err := rootPassword()
	if err != nil {
		return provider.Node{}, err
	}
	booted := true
	in, err := d.client.CreateInstance(ctx, linodego.InstanceCreateOptions{
		Region:         d.opts.Region,
		Type:           req.Size.ID,
		Label:          req.Name,
		Image:          req.Image.ID,
		RootPass:       pass,
		AuthorizedKeys: keys,
		Booted:         &booted,
		Tags:           []string{"toppcloud"},
	})
	if err != nil {
		return provider.Node{}, d.apiError(ctx, "create instance "+req.Name, err)
	}
	return toNode(in), nil
}

// DestroyNode deletes a Linode.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	n, err := instanceID(id)
	if err != nil {
		return err
	}
	if err := d.client.DeleteInstance(ctx, n); err != nil {
		return d.apiError(ctx, "delete instance "+id, err)
	}
	return nil
}

// checkCreate validates a request before any remote action.
func (d *Driver) checkCreate(req provider.CreateRequest) error {
	invalid := func(msg string) error {
		return &provider.APIError{Provider: Name, Op: "create instance " + req.Name, Message: msg, Kind: provider.ErrInvalid}
	}
	if err := provider.ValidateHostname(req.Name); err != nil {
		return invalid(err.Error())
	}
	switch {
	case d.opts.Region == "":
		return invalid("no region: set region in the provider section (e.g. us-east)")
	case req.Image.ID == "" || req.Size.ID == "":
		return invalid("no image or size chosen")
	case len(req.Files) > 0:
		return fmt.Errorf("%s: placing files at create: %w", Name, provider.ErrNotSupported)
	case len(req.AuthorizedKeys) == 0:
		return invalid("no authorized keys: the Linode would be unreachable")
	}
	return nil
}

// rootPassword returns 32 random URL-safe characters (192 bits), which
// meets Linode's strength rule.
func rootPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("%s: generate root password: %w", Name, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func instanceID(id string) (int, error) {
	n, err := strconv.Atoi(id)
	if err != nil || n <= 0 {
		return 0, &provider.APIError{Provider: Name, Op: "instance " + id, Message: "Linode IDs are numbers", Kind: provider.ErrNotFound}
	}
	return n, nil
}

// stateOf maps an instance status onto the common scale.
func stateOf(s linodego.InstanceStatus) provider.State {
	switch s {
	case "provisioning", "booting", "rebooting", "migrating", "rebuilding", "cloning", "restoring", "resizing":
		return provider.StatePending
	case "running":
		return provider.StateRunning
	case "offline", "shutting_down", "stopped", "billing_suspension":
		return provider.StateStopped
	case "deleting":
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

func toNode(in *linodego.Instance) provider.Node {
	n := provider.Node{ID: strconv.Itoa(in.ID), Name: in.Label, State: stateOf(in.Status), Image: in.Image, Size: in.Type, Provider: Name}
	// Linode lists public and private IPv4 addresses together.
	for _, ip := range in.IPv4 {
		if ip == nil {
			continue
		}
		if ip.IsPrivate() {
			n.PrivateIPs = append(n.PrivateIPs, ip.String())
		} else {
			n.PublicIPs = append(n.PublicIPs, ip.String())
		}
	}
	if in.IPv6 != "" {
		if ip, _, err := net.ParseCIDR(in.IPv6); err == nil {
			n.PublicIPs = append(n.PublicIPs, ip.String())
		} else if ip := net.ParseIP(in.IPv6); ip != nil {
			n.PublicIPs = append(n.PublicIPs, ip.String())
		}
	}
	return n
}

// apiError turns an SDK error into a *provider.APIError carrying the API's
// own message, or wraps a transport error with the provider's name.
func (d *Driver) apiError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", Name, op, ctx.Err())
	}
	var status int
	var msg string
	switch e := err.(type) {
	case *linodego.Error:
		status, msg = e.Code, e.Message
	case linodego.Error:
		status, msg = e.Code, e.Message
	default:
		return fmt.Errorf("%s: %s: %w", Name, op, err)
	}
	// linodego reports Go-side failures (transport, decoding) with codes
	// below 100 and the error's text.
	if status < 100 {
		if strings.Contains(msg, "invalid character") || strings.Contains(msg, "cannot unmarshal") {
			msg = "the API answered with something other than its JSON (is endpoint right?): " + msg
		}
		return fmt.Errorf("%s: %s: %s", Name, op, msg)
	}
	kind := provider.KindForStatus(status)
	if status == http.StatusBadRequest && strings.Contains(strings.ToLower(msg), "limit") {
		kind = provider.ErrQuota
	}
	if kind == provider.ErrAuth {
		msg += " (check the token: secret in the provider section or $LINODE_TOKEN)"
	}
	return &provider.APIError{Provider: Name, Op: op, Status: status, Message: msg, Kind: kind}
}

// Interface guards.
var _ provider.Driver = (*Driver)(nil)
