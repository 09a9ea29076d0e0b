// Package vultr is the Vultr driver, on the official SDK
// (github.com/vultr/govultr/v3).
//
// Keys: each of CreateRequest.AuthorizedKeys is registered through
// /v2/ssh-keys (named "toppcloud-<md5 prefix>") unless the account already
// has a key with the same fingerprint (Vultr reports no fingerprints, so
// the driver lists the keys and compares), and passed by ID at create
// (sshkey_id), so Vultr puts it in root's authorized_keys. Registered keys
// are kept and reused, also when the create fails. The default_password
// Vultr returns is dropped unread.
//
// Images are the x64 operating systems (os_id), without the pseudo entries
// (snapshot, backup, application, custom ISO).
//
// State mapping (status, power_status): pending -> pending; resizing ->
// pending; active with power_status running -> running; active with
// power_status stopped -> stopped; suspended -> stopped; closed ->
// terminated; anything else -> unknown. (server_status, the OS boot
// progress, is left to WaitUntilReady's SSH phase.)
package vultr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/vultr/govultr/v3"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "vultr"

// DefaultEndpoint is Vultr's public API root; the SDK's paths add /v2.
const DefaultEndpoint = "https://api.vultr.com"

// perPage is what we ask for (the API's maximum); the API may serve
// fewer (the fake does).
const perPage = 500

var options = []provider.Option{
	provider.OptSecret.With(func(o *provider.Option) {
		o.Help = "API key (Account > API; allow this machine's IP)"
		o.Required = true
		o.Prompt = true
		o.EnvVars = []string{"VULTR_API_KEY"}
	}),
	provider.OptRegion.With(func(o *provider.Option) {
		o.Help = "region for new instances (ewr, ams, fra, ...); needed by create-node"
		o.Prompt = true
	}),
	provider.OptEndpoint,
	provider.OptImage,
	provider.OptSize,
}

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Vultr cloud compute instances (token auth)",
		Options:      options,
		DefaultImage: "name Debian 12 x64*",
		DefaultSize:  "name vc2-1c-1gb",
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

// Options are the settings of a [provider:NAME] section of this type.
type Options = provider.TokenOptions

// Driver talks to one Vultr account.
type Driver struct {
	opts   Options
	client *govultr.Client
}

// New builds a driver from env without any network I/O.
func New(env provider.Env) (*Driver, error) {
	o, root, err := provider.DecodeTokenOptions(env.Settings, DefaultEndpoint, "API key", "VULTR_API_KEY")
	if err != nil {
		return nil, err
	}
	hc := provider.WithRetries(env.HTTPClient)
	// govultr expects the client to authenticate (it is meant for an
	// oauth2 client); it also drops the HTTP status of failed calls, which
	// statusRecorder keeps for error mapping.
	hc.Transport = &bearer{token: o.Token, base: &statusRecorder{base: hc.Transport}}
	client := govultr.NewClient(hc)
	if err := client.SetBaseURL(root); err != nil {
		return nil, fmt.Errorf("%s: endpoint: %w", Name, err)
	}
	client.SetUserAgent("toppcloud")
	// provider.WithRetries retries (never repeating a POST after a 5xx);
	// govultr's own retries would multiply the attempts.
	client.SetRetryLimit(0)
	return &Driver{opts: o, client: client}, nil
}

// ListImages lists the x64 operating systems.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	var out []provider.Image
	err := paginate(ctx, "list operating systems", func(ctx context.Context, o *govultr.ListOptions) (*govultr.Meta, error) {
		oses, meta, _, err := d.client.OS.List(ctx, o)
		for _, os := range oses {
			switch os.Family {
			case "snapshot", "backup", "application", "iso", "iPXE":
				continue
			}
			if os.Arch != "" && os.Arch != "x64" {
				continue
			}
			out = append(out, provider.Image{ID: strconv.Itoa(os.ID), Name: os.Name, Note: os.Family})
		}
		return meta, err
	})
	return out, err
}

// ListSizes lists the plans offered in the region (all, without one).
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	var out []provider.Size
	err := paginate(ctx, "list plans", func(ctx context.Context, o *govultr.ListOptions) (*govultr.Meta, error) {
		plans, meta, _, err := d.client.Plan.List(ctx, "all", o)
		for _, p := range plans {
			if d.opts.Region != "" && len(p.Locations) > 0 && !contains(p.Locations, d.opts.Region) {
				continue
			}
			out = append(out, provider.Size{ID: p.ID, Name: p.ID, RAMMB: p.RAM, DiskGB: p.Disk, VCPUs: p.VCPUCount, PriceMonthly: float64(p.MonthlyCost), Note: p.Type})
		}
		return meta, err
	})
	return out, err
}

// ListNodes lists every instance of the account.
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	var out []provider.Node
	err := paginate(ctx, "list instances", func(ctx context.Context, o *govultr.ListOptions) (*govultr.Meta, error) {
		instances, meta, _, err := d.client.Instance.List(ctx, o)
		for i := range instances {
			out = append(out, toNode(&instances[i]))
		}
		return meta, err
	})
	return out, err
}

// GetNode returns one instance.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	if err := checkID(id); err != nil {
		return provider.Node{}, err
	}
	ctx, call := track(ctx)
	in, _, err := d.client.Instance.Get(ctx, id)
	if err != nil {
		return provider.Node{}, apiError(ctx, call, "get instance "+id, err)
	}
	return toNode(in), nil
}

// CreateNode registers the keys (or finds them) and creates the instance.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	if err := d.checkCreate(req); err != nil {
		return provider.Node{}, err
	}
	osID, err := strconv.Atoi(req.Image.ID)
	if err != nil {
		return provider.Node{}, &provider.APIError{Provider: Name, Op: "create instance " + req.Name, Message: fmt.Sprintf("image id %q is not an os_id", req.Image.ID), Kind: provider.ErrInvalid}
	}
	keys, err := provider.ParseAuthorizedKeys(Name, req.AuthorizedKeys)
	if err != nil {
		return provider.Node{}, err
	}
	keyIDs, err := d.ensureKeys(ctx, keys)
	if err != nil {
		return provider.Node{}, err
	}
	ctx, call := track(ctx)
	in, _, err := d.client.Instance.Create(ctx, &govultr.InstanceCreateReq{
		Region:   d.opts.Region,
		Plan:     req.Size.ID,
		Label:    req.Name,
		Hostname: req.Name,
		OsID:     osID,
		SSHKeys:  keyIDs,
		Tags:     []string{"toppcloud"},
	})
	if err != nil {
		return provider.Node{}, apiError(ctx, call, "create instance "+req.Name, err)
	}
	in.DefaultPassword = ""
	return toNode(in), nil
}

// DestroyNode deletes an instance.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	ctx, call := track(ctx)
	if err := d.client.Instance.Delete(ctx, id); err != nil {
		return apiError(ctx, call, "delete instance "+id, err)
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
		return invalid("no region: set region in the provider section (e.g. ewr)")
	case req.Image.ID == "" || req.Size.ID == "":
		return invalid("no image or size chosen")
	case len(req.Files) > 0:
		return fmt.Errorf("%s: placing files at create: %w", Name, provider.ErrNotSupported)
	case len(req.AuthorizedKeys) == 0:
		return invalid("no authorized keys: the instance would be reachable by root password only")
	}
	return nil
}

// ensureKeys returns the account's SSH key IDs for keys, registering the
// ones the account lacks.
func (d *Driver) ensureKeys(ctx context.Context, keys []provider.AuthorizedKey) ([]string, error) {
	have := map[string]string{} // fingerprint -> key ID
	err := paginate(ctx, "list ssh keys", func(ctx context.Context, o *govultr.ListOptions) (*govultr.Meta, error) {
		list, meta, _, err := d.client.SSHKey.List(ctx, o)
		for _, k := range list {
			if pub, _, _, _, perr := ssh.ParseAuthorizedKey([]byte(k.SSHKey)); perr == nil {
				have[ssh.FingerprintSHA256(pub)] = k.ID
			}
		}
		return meta, err
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range keys {
		if id, ok := have[k.SHA256]; ok {
			ids = append(ids, id)
			continue
		}
		cctx, call := track(ctx)
		created, _, err := d.client.SSHKey.Create(cctx, &govultr.SSHKeyReq{Name: k.Name(), SSHKey: k.Line})
		if err != nil {
			return nil, apiError(cctx, call, "register ssh key "+k.SHA256, err)
		}
		have[k.SHA256] = created.ID
		ids = append(ids, created.ID)
	}
	return ids, nil
}

// paginate calls list with each cursor until meta.links.next is empty.
func paginate(ctx context.Context, op string, list func(context.Context, *govultr.ListOptions) (*govultr.Meta, error)) error {
	o := &govultr.ListOptions{PerPage: perPage}
	for {
		cctx, call := track(ctx)
		meta, err := list(cctx, o)
		if err != nil {
			return apiError(cctx, call, op, err)
		}
		if meta == nil || meta.Links == nil || meta.Links.Next == "" || meta.Links.Next == o.Cursor {
			return nil
		}
		o.Cursor = meta.Links.Next
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func checkID(id string) error {
	if !uuidRE.MatchString(id) {
		return &provider.APIError{Provider: Name, Op: "instance " + id, Message: "instance IDs are UUIDs", Kind: provider.ErrNotFound}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// stateOf maps an instance's status and power_status onto the common
// scale.
func stateOf(status, power string) provider.State {
	switch status {
	case "pending", "resizing":
		return provider.StatePending
	case "active":
		switch power {
		case "running":
			return provider.StateRunning
		case "stopped":
			return provider.StateStopped
		}
	case "suspended":
		return provider.StateStopped
	case "closed":
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

func toNode(in *govultr.Instance) provider.Node {
	n := provider.Node{ID: in.ID, Name: in.Label, State: stateOf(in.Status, in.PowerStatus), Image: strconv.Itoa(in.OsID), Size: in.Plan, Provider: Name}
	// Vultr reports 0.0.0.0 and "" until addresses are assigned.
	if in.MainIP != "" && in.MainIP != "0.0.0.0" {
		n.PublicIPs = append(n.PublicIPs, in.MainIP)
	}
	if in.V6MainIP != "" && in.V6MainIP != "::" {
		n.PublicIPs = append(n.PublicIPs, in.V6MainIP)
	}
	if in.InternalIP != "" && in.InternalIP != "0.0.0.0" {
		n.PrivateIPs = append(n.PrivateIPs, in.InternalIP)
	}
	return n
}

// call is what statusRecorder saw of the last response of one SDK call.
type call struct {
	status  int
	message string // the API's "error" field, for failed calls
}

type callKey struct{}

// track returns a context under which statusRecorder notes the response
// of the SDK call made with it.
func track(ctx context.Context) (context.Context, *call) {
	c := &call{}
	return context.WithValue(ctx, callKey{}, c), c
}

// statusRecorder notes the status and error message of responses in the
// *call their request's context carries. govultr turns failed calls into
// plain strings without the status; this keeps what error mapping needs.
type statusRecorder struct {
	base http.RoundTripper
}

func (t *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	c, _ := req.Context().Value(callKey{}).(*call)
	if err != nil || c == nil {
		return resp, err
	}
	c.status = resp.StatusCode
	if resp.StatusCode >= 400 {
		// Error bodies are small; keep at most 64 KiB and hand the same
		// bytes on to the SDK.
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr == nil {
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(body, &e) == nil {
				c.message = e.Error
			}
		}
	}
	return resp, nil
}

// bearer adds the API key to each request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (t *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// apiError turns a failed SDK call into a *provider.APIError with the
// status and message statusRecorder kept, or wraps the error with the
// provider's name.
func apiError(ctx context.Context, c *call, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s: %w", Name, op, ctx.Err())
	}
	if c.status >= 400 {
		msg := c.message
		if msg == "" {
			msg = http.StatusText(c.status)
		}
		kind := provider.KindForStatus(c.status)
		lower := strings.ToLower(msg)
		if c.status == http.StatusBadRequest && (strings.Contains(lower, "limit") || strings.Contains(lower, "reached the maximum")) {
			kind = provider.ErrQuota
		}
		if kind == provider.ErrAuth {
			msg += " (check the API key: secret in the provider section or $VULTR_API_KEY, and the key's allowed IPs)"
		}
		return &provider.APIError{Provider: Name, Op: op, Status: c.status, Message: msg, Kind: kind}
	}
	msg := err.Error()
	if strings.Contains(msg, "unmarshal") || strings.Contains(msg, "invalid character") {
		return fmt.Errorf("%s: %s: the API answered with something other than its JSON (is endpoint right?): %w", Name, op, err)
	}
	return fmt.Errorf("%s: %s: %w", Name, op, err)
}

// Interface guards.
var _ provider.Driver = (*Driver)(nil)
