// Package ec2 is the driver for Amazon EC2, on the official
// aws-sdk-go-v2 (service/ec2).
//
// Credentials are static: username = access key ID, secret = secret access
// key, session_token for temporary credentials, each falling back to the
// usual AWS_* environment variables through the option layer. We do not
// use aws-sdk-go-v2/config: it reads ~/.aws and the environment on its own
// (bypassing our option layer, prompts and redaction) and pulls in the
// SSO, SSO-OIDC, STS and IMDS clients, which roughly doubles what this
// package compiles, for profile features the driver does not offer. Users
// of SSO profiles can export keys with `aws configure export-credentials
// --format env`.
//
// Images: EC2 has millions of public images, so ListImages asks for a
// bounded set: the account's own images, plus a curated query of the
// official Debian 12 images (owner 136693071363, name debian-12-*) and
// Canonical's Ubuntu 22.04 and 24.04 amd64 server images (owner
// 099720109477). Image.Created is the image's CreationDate, so
// "name first debian-12-amd64-*" picks the newest. To use any other AMI,
// copy it into the account (it is then listed as owned).
//
// Sizes: current-generation x86_64 instance types (DescribeInstanceTypes),
// since the curated images are amd64; RAM in MB, vCPUs, instance-store disk
// GB (0 for EBS-only types, with a note). EC2's API has no prices.
//
// Keys: the first RSA or ED25519 key of CreateRequest.AuthorizedKeys is
// imported as key pair "toppcloud-<sha256 prefix>" (reused when its EC2
// fingerprint matches, see importedFingerprint); when there are other keys
// they all go into cloud-init user data as ssh_authorized_keys. Both reach
// the image's default user, not root: Node.SSHUser is admin for Debian
// images and ubuntu for Ubuntu images (ssh_user overrides), recorded in the
// instance's toppcloud:ssh-user tag so GetNode knows it later; setup-node
// works through sudo. Root login stays disabled as the images ship it.
// CreateRequest.Files are written by cloud-init's write_files.
//
// Every node gets security group "toppcloud" in the region's default VPC,
// allowing TCP 22, 80 and 443 from anywhere (IPv4 and IPv6). The group and
// the key pairs are shared by all nodes: created once, reused (and their
// missing rules added) next time, never deleted by the driver; a create
// that fails after making them leaves them for reuse.
//
// States: pending -> pending; running -> running; stopping and stopped ->
// stopped; shutting-down and terminated -> terminated; anything else ->
// unknown. EC2 keeps listing terminated instances for about an hour.
//
// Errors: EC2's XML error codes map to the provider sentinels (see
// kindForCode). The SDK's standard retryer retries throttling
// (RequestLimitExceeded, HTTP 503) and 5xx with jittered exponential
// backoff, 5 attempts; the driver does not retry on top of it.
package ec2

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Name is the provider type in ~/.toppcloud.conf.
const Name = "ec2"

// Owners of the curated public images.
const (
	DebianOwner    = "136693071363"
	CanonicalOwner = "099720109477"
)

// curatedImageNames are the name patterns asked of the curated owners.
var curatedImageNames = []string{
	"debian-12-*",
	"ubuntu/images/*ubuntu-jammy-22.04-amd64-server-*",
	"ubuntu/images/*ubuntu-noble-24.04-amd64-server-*",
}

// Tags the driver sets on instances.
const (
	tagName    = "Name"
	tagSSHUser = "toppcloud:ssh-user"
)

// SecurityGroupName is the group every node is put in.
const SecurityGroupName = "toppcloud"

// securityGroupPorts are opened to the world on SecurityGroupName.
var securityGroupPorts = []int32{22, 80, 443}

// maxAttempts bounds the SDK's retries (first try included).
const maxAttempts = 5

func init() {
	provider.Register(provider.Info{
		Name:         Name,
		Description:  "Amazon EC2",
		Options:      options(),
		DefaultImage: "name first debian-12-amd64-*",
		DefaultSize:  "name t3.micro",
		New:          func(env provider.Env) (provider.Driver, error) { return New(env) },
	})
}

func options() []provider.Option {
	return []provider.Option{
		provider.OptUsername.With(func(o *provider.Option) {
			o.Help = "AWS access key ID"
			o.Required, o.Prompt = true, true
			o.EnvVars = []string{"AWS_ACCESS_KEY_ID"}
		}),
		provider.OptSecret.With(func(o *provider.Option) {
			o.Help = "AWS secret access key"
			o.Required, o.Prompt = true, true
			o.EnvVars = []string{"AWS_SECRET_ACCESS_KEY"}
		}),
		{Name: "session_token", Help: "AWS session token (only for temporary credentials)", Secret: true, EnvVars: []string{"AWS_SESSION_TOKEN"}},
		provider.OptRegion.With(func(o *provider.Option) {
			o.Help = "AWS region (us-east-1, eu-central-1, ...)"
			o.Required, o.Prompt = true, true
			o.EnvVars = []string{"AWS_REGION", "AWS_DEFAULT_REGION"}
		}),
		provider.OptEndpoint.With(func(o *provider.Option) {
			o.Help = "EC2 API root URL without version path, replacing https://ec2.REGION.amazonaws.com"
		}),
		provider.OptImage,
		provider.OptSize,
		provider.OptSSHUser.With(func(o *provider.Option) {
			o.Default = ""
			o.Help = "user to log in as on new nodes (default: admin on Debian images, ubuntu on Ubuntu images, else root)"
		}),
	}
}

// Options are the settings of an [provider:NAME] section of type ec2.
type Options struct {
	AccessKeyID     string `config:"username"`
	SecretAccessKey string `config:"secret"`
	SessionToken    string `config:"session_token"`
	Region          string `config:"region"`
	Endpoint        string `config:"endpoint"`
	Image           string `config:"image"`
	Size            string `config:"size"`
	SSHUser         string `config:"ssh_user"`
}

// Driver talks to the EC2 API of one region.
type Driver struct {
	api  api
	opts Options
}

var regionRE = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)

// New returns a driver for env. It does no network I/O.
func New(env provider.Env) (*Driver, error) {
	return newDriver(env, nil)
}

// newDriver is New with the retry backoff replaceable, so tests of
// retries do not sleep for seconds; everything else is as shipped.
func newDriver(env provider.Env, backoff retry.BackoffDelayer) (*Driver, error) {
	var o Options
	if err := env.Settings.Decode(&o); err != nil {
		return nil, err
	}
	if o.AccessKeyID == "" || o.SecretAccessKey == "" {
		return nil, fmt.Errorf("ec2 needs username (access key ID) and secret (secret access key), or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY")
	}
	if !regionRE.MatchString(o.Region) {
		return nil, fmt.Errorf("ec2: region %q is not an AWS region name (like us-east-1 or eu-central-1)", o.Region)
	}
	if env.HTTPClient == nil {
		return nil, fmt.Errorf("ec2: no HTTP client")
	}
	var endpoint *string
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("ec2: endpoint %q must be an http or https URL like https://ec2.us-east-1.amazonaws.com", o.Endpoint)
		}
		endpoint = aws.String(strings.TrimRight(o.Endpoint, "/"))
	}
	creds := aws.Credentials{
		AccessKeyID:     o.AccessKeyID,
		SecretAccessKey: o.SecretAccessKey,
		SessionToken:    o.SessionToken,
		Source:          "toppcloud config",
	}
	client := ec2.New(ec2.Options{
		Region:       o.Region,
		BaseEndpoint: endpoint,
		HTTPClient:   env.HTTPClient,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		Retryer: retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = maxAttempts
			// The client-side retry token bucket would turn a burst of
			// throttling into immediate "retry quota exceeded" failures;
			// our calls are few, so rely on backoff alone.
			so.RateLimiter = ratelimit.None
			if backoff != nil {
				so.Backoff = backoff
			}
		}),
		APIOptions: []func(*middleware.Stack) error{addResponseCheck},
	})
	return &Driver{api: client, opts: o}, nil
}

// ListImages returns the account's own images and the curated Debian and
// Ubuntu images (see the package comment), sorted by name.
func (d *Driver) ListImages(ctx context.Context) ([]provider.Image, error) {
	queries := []*ec2.DescribeImagesInput{
		{Owners: []string{"self"}},
		{
			Owners:  []string{DebianOwner, CanonicalOwner},
			Filters: []types.Filter{{Name: aws.String("name"), Values: curatedImageNames}},
		},
	}
	seen := map[string]bool{}
	var out []provider.Image
	for _, in := range queries {
		in.Filters = append(in.Filters, types.Filter{Name: aws.String("state"), Values: []string{"available"}})
		in.MaxResults = aws.Int32(1000)
		p := ec2.NewDescribeImagesPaginator(d.api, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, apiError("list images", err)
			}
			for _, im := range page.Images {
				id := aws.ToString(im.ImageId)
				if id == "" || seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, toImage(im))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func toImage(im types.Image) provider.Image {
	img := provider.Image{ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name)}
	if img.Name == "" {
		img.Name = img.ID
	}
	if t, err := time.Parse(time.RFC3339, aws.ToString(im.CreationDate)); err == nil {
		img.Created = t
	}
	owner := aws.ToString(im.OwnerId)
	switch owner {
	case DebianOwner:
		owner = "Debian"
	case CanonicalOwner:
		owner = "Canonical"
	default:
		owner = "owner " + owner
	}
	img.Note = owner + ", " + string(im.Architecture)
	return img
}

// ListSizes returns the current-generation x86_64 instance types of the
// region.
func (d *Driver) ListSizes(ctx context.Context) ([]provider.Size, error) {
	p := ec2.NewDescribeInstanceTypesPaginator(d.api, &ec2.DescribeInstanceTypesInput{
		Filters: []types.Filter{
			{Name: aws.String("current-generation"), Values: []string{"true"}},
			{Name: aws.String("processor-info.supported-architecture"), Values: []string{"x86_64"}},
		},
		MaxResults: aws.Int32(100),
	})
	var out []provider.Size
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, apiError("list sizes", err)
		}
		for _, it := range page.InstanceTypes {
			out = append(out, toSize(it))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RAMMB != out[j].RAMMB {
			return out[i].RAMMB < out[j].RAMMB
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func toSize(it types.InstanceTypeInfo) provider.Size {
	s := provider.Size{ID: string(it.InstanceType), Name: string(it.InstanceType)}
	if it.MemoryInfo != nil {
		s.RAMMB = int(aws.ToInt64(it.MemoryInfo.SizeInMiB))
	}
	if it.VCpuInfo != nil {
		s.VCPUs = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
	}
	if it.InstanceStorageInfo != nil {
		s.DiskGB = int(aws.ToInt64(it.InstanceStorageInfo.TotalSizeInGB))
	}
	if s.DiskGB == 0 {
		s.Note = "EBS only: the disk is the image's root volume"
	}
	return s
}

// ListNodes returns every instance of the region, terminated ones
// included (as terminated).
func (d *Driver) ListNodes(ctx context.Context) ([]provider.Node, error) {
	p := ec2.NewDescribeInstancesPaginator(d.api, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)})
	var out []provider.Node
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, apiError("list nodes", err)
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out = append(out, toNode(inst))
			}
		}
	}
	return out, nil
}

// GetNode returns the instance with the given ID.
func (d *Driver) GetNode(ctx context.Context, id string) (provider.Node, error) {
	if !strings.HasPrefix(id, "i-") {
		return provider.Node{}, notFound(id)
	}
	out, err := d.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return provider.Node{}, apiError("get node "+id, err)
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if aws.ToString(inst.InstanceId) == id {
				return toNode(inst), nil
			}
		}
	}
	return provider.Node{}, notFound(id)
}

func notFound(id string) error {
	return &provider.APIError{Provider: Name, Op: "get node " + id, Message: "no instance " + id + " in this region (EC2 instance IDs look like i-0123456789abcdef0)", Kind: provider.ErrNotFound}
}

// CreateNode imports the key, makes sure the security group exists and
// launches one instance. See the package comment for what is shared and
// kept between nodes.
func (d *Driver) CreateNode(ctx context.Context, req provider.CreateRequest) (provider.Node, error) {
	fail := func(err error) (provider.Node, error) {
		return provider.Node{}, fmt.Errorf("create node %s: %w", req.Name, err)
	}
	// Everything that can be checked locally is, before any API call.
	if err := provider.ValidateHostname(req.Name); err != nil {
		return fail(fmt.Errorf("%w: %w", err, provider.ErrInvalid))
	}
	if !strings.HasPrefix(req.Image.ID, "ami-") {
		return fail(fmt.Errorf("image id %q is not an AMI id (ami-...): %w", req.Image.ID, provider.ErrInvalid))
	}
	if req.Size.ID == "" {
		return fail(fmt.Errorf("no instance type given: %w", provider.ErrInvalid))
	}
	keys, err := parseKeys(req.AuthorizedKeys)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", err, provider.ErrInvalid))
	}
	if len(keys) == 0 {
		return fail(fmt.Errorf("%w: %w", errNoKeys, provider.ErrInvalid))
	}
	pair := -1
	for i, k := range keys {
		if importable(k) {
			pair = i
			break
		}
	}
	var keyLines []string
	for _, k := range keys {
		keyLines = append(keyLines, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
	ud, err := userData(keyLines, pair >= 0 && len(keys) == 1, req.Files)
	if err != nil {
		return fail(err)
	}
	sshUser := d.sshUser(req.Image.Name)

	if err := d.checkNameFree(ctx, req.Name); err != nil {
		return fail(err)
	}
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(req.Image.ID),
		InstanceType: types.InstanceType(req.Size.ID),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance,
			Tags: []types.Tag{
				{Key: aws.String(tagName), Value: aws.String(req.Name)},
				{Key: aws.String(tagSSHUser), Value: aws.String(sshUserTag(sshUser))},
			},
		}},
	}
	if pair >= 0 {
		name, err := d.ensureKeyPair(ctx, keys[pair])
		if err != nil {
			return fail(err)
		}
		in.KeyName = aws.String(name)
	}
	sg, err := d.ensureSecurityGroup(ctx)
	if err != nil {
		return fail(err)
	}
	in.SecurityGroupIds = []string{sg}
	if ud != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(ud)))
	}
	// RunInstances carries an idempotency token the SDK fills in, so its
	// retries cannot launch a second instance.
	out, err := d.api.RunInstances(ctx, in)
	if err != nil {
		return fail(apiError("run instance", err))
	}
	if len(out.Instances) != 1 {
		return fail(fmt.Errorf("ec2: RunInstances returned %d instances, want 1", len(out.Instances)))
	}
	return toNode(out.Instances[0]), nil
}

// checkNameFree refuses a name that a live instance already carries: EC2
// allows duplicate Name tags, but toppcloud addresses nodes by name.
func (d *Driver) checkNameFree(ctx context.Context, name string) error {
	out, err := d.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + tagName), Values: []string{name}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
		},
	})
	if err != nil {
		return apiError("look for instances named "+name, err)
	}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			return fmt.Errorf("ec2: instance %s is already named %s: %w", aws.ToString(inst.InstanceId), name, provider.ErrExists)
		}
	}
	return nil
}

// sshUser is the user toppcloud logs in as on a node made from the image
// named imageName: the ssh_user setting, else the cloud image's default
// user. "" means root.
func (d *Driver) sshUser(imageName string) string {
	if d.opts.SSHUser != "" {
		if d.opts.SSHUser == "root" {
			return ""
		}
		return d.opts.SSHUser
	}
	return defaultUser(imageName)
}

// defaultUser is the cloud-init default user of well-known images.
func defaultUser(imageName string) string {
	n := strings.ToLower(imageName)
	switch {
	case strings.HasPrefix(n, "debian-"):
		return "admin"
	case strings.HasPrefix(n, "ubuntu/") || strings.HasPrefix(n, "ubuntu-"):
		return "ubuntu"
	case strings.HasPrefix(n, "al2023-") || strings.HasPrefix(n, "amzn"):
		return "ec2-user"
	}
	return ""
}

func sshUserTag(u string) string {
	if u == "" {
		return "root"
	}
	return u
}

// ensureSecurityGroup returns the ID of group "toppcloud" in the default
// VPC, creating it and adding missing rules as needed. Two toppclouds
// racing both see InvalidGroup.Duplicate or InvalidPermission.Duplicate
// from the loser, which is treated as success.
func (d *Driver) ensureSecurityGroup(ctx context.Context) (string, error) {
	vpcs, err := d.api.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{
		Filters: []types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}},
	})
	if err != nil {
		return "", apiError("find default VPC", err)
	}
	if len(vpcs.Vpcs) == 0 {
		return "", fmt.Errorf("ec2: region %s has no default VPC; create one (aws ec2 create-default-vpc) and retry: %w", d.opts.Region, provider.ErrInvalid)
	}
	vpc := aws.ToString(vpcs.Vpcs[0].VpcId)

	find := func() (*types.SecurityGroup, error) {
		out, err := d.api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
			Filters: []types.Filter{
				{Name: aws.String("group-name"), Values: []string{SecurityGroupName}},
				{Name: aws.String("vpc-id"), Values: []string{vpc}},
			},
		})
		if err != nil {
			return nil, apiError("find security group "+SecurityGroupName, err)
		}
		if len(out.SecurityGroups) == 0 {
			return nil, nil
		}
		return &out.SecurityGroups[0], nil
	}
	g, err := find()
	if err != nil {
		return "", err
	}
	if g == nil {
		_, err := d.api.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName:   aws.String(SecurityGroupName),
			Description: aws.String("toppcloud nodes: SSH, HTTP and HTTPS from anywhere"),
			VpcId:       aws.String(vpc),
		})
		if err != nil && errorCode(err) != "InvalidGroup.Duplicate" {
			return "", apiError("create security group "+SecurityGroupName, err)
		}
		if g, err = find(); err != nil {
			return "", err
		}
		if g == nil {
			return "", fmt.Errorf("ec2: security group %s was created but cannot be found", SecurityGroupName)
		}
	}
	if perms := missingRules(g.IpPermissions); len(perms) > 0 {
		_, err := d.api.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId:       g.GroupId,
			IpPermissions: perms,
		})
		if err != nil && errorCode(err) != "InvalidPermission.Duplicate" {
			return "", apiError("open ports on security group "+SecurityGroupName, err)
		}
	}
	return aws.ToString(g.GroupId), nil
}

// missingRules returns the ingress rules for securityGroupPorts that have
// does not contain yet, IPv4 and IPv6 separately.
func missingRules(have []types.IpPermission) []types.IpPermission {
	open := func(port int32, v6 bool) bool {
		for _, p := range have {
			proto := aws.ToString(p.IpProtocol)
			if proto != "tcp" && proto != "-1" {
				continue
			}
			if proto == "tcp" && (aws.ToInt32(p.FromPort) > port || aws.ToInt32(p.ToPort) < port) {
				continue
			}
			if v6 {
				for _, r := range p.Ipv6Ranges {
					if aws.ToString(r.CidrIpv6) == "::/0" {
						return true
					}
				}
			} else {
				for _, r := range p.IpRanges {
					if aws.ToString(r.CidrIp) == "0.0.0.0/0" {
						return true
					}
				}
			}
		}
		return false
	}
	var out []types.IpPermission
	for _, port := range securityGroupPorts {
		perm := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port)}
		if !open(port, false) {
			perm.IpRanges = []types.IpRange{{CidrIp: aws.String("0.0.0.0/0"), Description: aws.String("toppcloud")}}
		}
		if !open(port, true) {
			perm.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String("::/0"), Description: aws.String("toppcloud")}}
		}
		if len(perm.IpRanges) > 0 || len(perm.Ipv6Ranges) > 0 {
			out = append(out, perm)
		}
	}
	return out
}

// DestroyNode terminates the instance. Terminating one that is already
// terminated is ErrNotFound, as the Driver contract asks, although EC2
// itself accepts it.
func (d *Driver) DestroyNode(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, "i-") {
		return notFound(id)
	}
	out, err := d.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return apiError("destroy node "+id, err)
	}
	for _, ch := range out.TerminatingInstances {
		if aws.ToString(ch.InstanceId) == id && ch.PreviousState != nil && ch.PreviousState.Name == types.InstanceStateNameTerminated {
			return &provider.APIError{Provider: Name, Op: "destroy node " + id, Message: "instance " + id + " is already terminated", Kind: provider.ErrNotFound}
		}
	}
	return nil
}

// mapState is the EC2 state mapping documented in the package comment.
func mapState(s *types.InstanceState) provider.State {
	if s == nil {
		return provider.StateUnknown
	}
	switch s.Name {
	case types.InstanceStateNamePending:
		return provider.StatePending
	case types.InstanceStateNameRunning:
		return provider.StateRunning
	case types.InstanceStateNameStopping, types.InstanceStateNameStopped:
		return provider.StateStopped
	case types.InstanceStateNameShuttingDown, types.InstanceStateNameTerminated:
		return provider.StateTerminated
	}
	return provider.StateUnknown
}

// toNode converts an instance. Public addresses: the public IPv4, then the
// instance's IPv6 addresses (which are globally routable on EC2); private:
// the primary private IPv4, then the other private IPv4s of its interfaces.
func toNode(inst types.Instance) provider.Node {
	n := provider.Node{
		ID:       aws.ToString(inst.InstanceId),
		State:    mapState(inst.State),
		Image:    aws.ToString(inst.ImageId),
		Size:     string(inst.InstanceType),
		Provider: Name,
	}
	for _, t := range inst.Tags {
		switch aws.ToString(t.Key) {
		case tagName:
			n.Name = aws.ToString(t.Value)
		case tagSSHUser:
			if u := aws.ToString(t.Value); u != "root" {
				n.SSHUser = u
			}
		}
	}
	add := func(list *[]string, ip string) {
		if ip == "" {
			return
		}
		for _, have := range *list {
			if have == ip {
				return
			}
		}
		*list = append(*list, ip)
	}
	add(&n.PublicIPs, aws.ToString(inst.PublicIpAddress))
	add(&n.PrivateIPs, aws.ToString(inst.PrivateIpAddress))
	add(&n.PublicIPs, aws.ToString(inst.Ipv6Address))
	for _, ni := range inst.NetworkInterfaces {
		for _, a := range ni.Ipv6Addresses {
			add(&n.PublicIPs, aws.ToString(a.Ipv6Address))
		}
		for _, a := range ni.PrivateIpAddresses {
			add(&n.PrivateIPs, aws.ToString(a.PrivateIpAddress))
			if a.Association != nil {
				add(&n.PublicIPs, aws.ToString(a.Association.PublicIp))
			}
		}
	}
	// IPv4 before IPv6, each group in the order EC2 gave them.
	sort.SliceStable(n.PublicIPs, func(i, j int) bool {
		return !strings.Contains(n.PublicIPs[i], ":") && strings.Contains(n.PublicIPs[j], ":")
	})
	return n
}

var (
	_ provider.Driver = (*Driver)(nil)
)
