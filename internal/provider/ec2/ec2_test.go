package ec2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/ec2/fake"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

// noBackoff keeps retry tests fast; the retry policy (which errors, how
// many attempts) is still the shipped one.
var noBackoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })

func newFake(t *testing.T, o fake.Options) *fake.Server {
	t.Helper()
	o.Errorf = t.Errorf
	s := fake.New(o)
	t.Cleanup(s.Close)
	return s
}

func settingsFor(s *fake.Server) provider.Settings {
	return provider.Settings{
		"username": fake.DefaultAccessKeyID,
		"secret":   fake.DefaultSecretAccessKey,
		"region":   fake.DefaultRegion,
		"endpoint": s.URL,
	}
}

func newDriverFor(t *testing.T, s *fake.Server, change ...func(provider.Settings)) *Driver {
	t.Helper()
	st := settingsFor(s)
	for _, c := range change {
		c(st)
	}
	d, err := newDriver(provider.Env{
		Section:    "test",
		Settings:   st,
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Log:        io.Discard,
		StateDir:   t.TempDir(),
	}, noBackoff)
	if err != nil {
		t.Fatalf("new driver: %v", err)
	}
	return d
}

// image and size return the entries ListImages/ListSizes give for a matcher.
func image(t *testing.T, d *Driver, matcher string) provider.Image {
	t.Helper()
	m, err := provider.ParseMatcher(matcher)
	if err != nil {
		t.Fatal(err)
	}
	images, err := d.ListImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	im, err := provider.MatchImage(images, m)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func size(t *testing.T, d *Driver, matcher string) provider.Size {
	t.Helper()
	m, err := provider.ParseMatcher(matcher)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := d.ListSizes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sz, err := provider.MatchSize(sizes, m)
	if err != nil {
		t.Fatal(err)
	}
	return sz
}

func request(t *testing.T, d *Driver, name string, keys ...string) provider.CreateRequest {
	t.Helper()
	if len(keys) == 0 {
		keys = []string{providertest.TestKey}
	}
	return provider.CreateRequest{
		Name:           name,
		Image:          image(t, d, "name first debian-12-amd64-*"),
		Size:           size(t, d, "name t3.micro"),
		AuthorizedKeys: keys,
	}
}

// keyReached checks that the instance can be reached with key: through
// its key pair or its cloud-init ssh_authorized_keys.
func keyReached(t *testing.T, s *fake.Server, id, key string) {
	t.Helper()
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	in, ok := s.Instance(id)
	if !ok {
		t.Fatalf("fake has no instance %s", id)
	}
	var got []string
	if in.KeyName != "" {
		for _, kp := range s.KeyPairs() {
			if kp.Name == in.KeyName {
				got = append(got, kp.Material)
			}
		}
	}
	keys, _, err := fake.ParseUserData(in.UserData)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, keys...)
	for _, line := range got {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err == nil && string(pub.Marshal()) == string(want.Marshal()) {
			return
		}
	}
	t.Errorf("key %q did not reach instance %s (key pair %q, user data %q)", key, id, in.KeyName, in.UserData)
}

func TestDriver_Conformance(t *testing.T) {
	fakes := map[provider.Driver]*fake.Server{}
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			s := newFake(t, fake.Options{})
			d := newDriverFor(t, s)
			fakes[d] = s
			return d
		},
		NewBadAuth: func(t *testing.T) provider.Driver {
			s := newFake(t, fake.Options{})
			return newDriverFor(t, s, func(st provider.Settings) { st["secret"] = "wrong-secret-key" })
		},
		Image: "name first debian-12-amd64-*",
		Size:  "name t3.micro",
		CheckKey: func(t *testing.T, d provider.Driver, n provider.Node, key string) {
			keyReached(t, fakes[d], n.ID, key)
		},
		DestroyLeavesTerminated: true,
	})
}

// TestDriver_ConformanceWithBackend runs the suite through the fake backed
// by another driver, the way the end-to-end test backs it with local.
func TestDriver_ConformanceWithBackend(t *testing.T) {
	providertest.Run(t, providertest.Opt{
		New: func(t *testing.T) provider.Driver {
			mem := providertest.NewMemory()
			mem.PendingPolls = 1
			s := newFake(t, fake.Options{Backend: mem, BackendImage: provider.Image{ID: "img-1"}, BackendSize: provider.Size{ID: "s-1"}})
			return newDriverFor(t, s)
		},
		SkipBadAuth:             "covered by TestDriver_Conformance",
		Image:                   "name first debian-12-amd64-*",
		Size:                    "name t3.micro",
		DestroyLeavesTerminated: true,
	})
}

func TestFake_BackendGetsKeysAndFiles(t *testing.T) {
	mem := providertest.NewMemory()
	s := newFake(t, fake.Options{Backend: mem, BackendImage: provider.Image{ID: "img-1", Name: "debian-12"}, BackendSize: provider.Size{ID: "s-2"}})
	d := newDriverFor(t, s)
	ecKey := newECDSAKey(t)
	req := request(t, d, "web1", providertest.TestKey, ecKey)
	req.Files = map[string][]byte{"/root/.ssh/authorized_keys": []byte(providertest.TestKey + "\n")}
	n, err := d.CreateNode(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(mem.Created) != 1 {
		t.Fatalf("backend got %d creates, want 1", len(mem.Created))
	}
	got := mem.Created[0]
	if got.Name != "web1" || got.Image.ID != "img-1" || got.Size.ID != "s-2" {
		t.Errorf("backend request = %+v", got)
	}
	if len(got.AuthorizedKeys) != 2 || !strings.HasPrefix(got.AuthorizedKeys[0], "ssh-ed25519 ") || !strings.HasPrefix(got.AuthorizedKeys[1], "ecdsa-sha2-nistp256 ") {
		t.Errorf("backend keys = %q, want the ed25519 key pair then the ecdsa key", got.AuthorizedKeys)
	}
	if string(got.Files["/root/.ssh/authorized_keys"]) != providertest.TestKey+"\n" {
		t.Errorf("backend files = %q", got.Files)
	}
	var node provider.Node
	for node.State != provider.StateRunning {
		if node, err = d.GetNode(context.Background(), n.ID); err != nil {
			t.Fatal(err)
		}
	}
	if node.Address() != "127.0.0.1" {
		t.Errorf("node address = %q, want the backend's 127.0.0.1", node.Address())
	}
	if err := d.DestroyNode(context.Background(), n.ID); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := mem.ListNodes(context.Background()); len(nodes) != 0 {
		t.Errorf("backend still has %d nodes after destroy", len(nodes))
	}
}

func TestOptions_Fields(t *testing.T) {
	if err := provider.CheckOptionFields(options(), &Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestRegister_EnvFallback(t *testing.T) {
	info, ok := provider.Lookup("ec2")
	if !ok {
		t.Fatal("ec2 is not registered")
	}
	for _, m := range []string{info.DefaultImage, info.DefaultSize} {
		if _, err := provider.ParseMatcher(m); err != nil {
			t.Errorf("default matcher %q: %v", m, err)
		}
	}
	s := newFake(t, fake.Options{Region: "eu-central-1"})
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     fake.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": fake.DefaultSecretAccessKey,
		"AWS_DEFAULT_REGION":    "eu-central-1",
		"AWS_SESSION_TOKEN":     "session-token-value",
	}
	st := provider.Resolve(info.Options, map[string]string{"endpoint": s.URL}, func(k string) string { return env[k] })
	var calls atomic.Int32
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		if got := r.Header.Get("X-Amz-Security-Token"); got != "session-token-value" {
			t.Errorf("request carries session token %q, want the one from $AWS_SESSION_TOKEN", got)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	d, err := provider.Open("ec2", provider.Env{Section: "aws", Settings: st, HTTPClient: client, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ListNodes(context.Background()); err != nil {
		t.Fatalf("ListNodes with credentials from the environment: %v", err)
	}
	if calls.Load() == 0 {
		t.Error("the SDK did not use the HTTP client from provider.Env")
	}

	delete(env, "AWS_DEFAULT_REGION")
	st = provider.Resolve(info.Options, nil, func(k string) string { return env[k] })
	_, err = provider.Open("ec2", provider.Env{Section: "aws", Settings: st, HTTPClient: http.DefaultClient})
	var missing *provider.MissingOptionError
	if !errors.As(err, &missing) || missing.Option.Name != "region" {
		t.Errorf("Open without region = %v, want a missing region error", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNew_Validation(t *testing.T) {
	good := provider.Settings{"username": "AKIA", "secret": "s", "region": "us-east-1"}
	tests := []struct {
		name   string
		change func(provider.Settings)
		want   string
	}{
		{"no key", func(s provider.Settings) { delete(s, "username") }, "access key ID"},
		{"no secret", func(s provider.Settings) { delete(s, "secret") }, "secret access key"},
		{"bad region", func(s provider.Settings) { s["region"] = "Frankfurt" }, "not an AWS region"},
		{"bad endpoint", func(s provider.Settings) { s["endpoint"] = "ec2.example.com" }, "http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := provider.Settings{}
			for k, v := range good {
				st[k] = v
			}
			tt.change(st)
			_, err := New(provider.Env{Settings: st, HTTPClient: http.DefaultClient})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(provider.Env{Settings: good, HTTPClient: http.DefaultClient}); err != nil {
		t.Errorf("New with good settings: %v", err)
	}
}

func TestMapState(t *testing.T) {
	tests := []struct {
		ec2  types.InstanceStateName
		want provider.State
	}{
		{types.InstanceStateNamePending, provider.StatePending},
		{types.InstanceStateNameRunning, provider.StateRunning},
		{types.InstanceStateNameStopping, provider.StateStopped},
		{types.InstanceStateNameStopped, provider.StateStopped},
		{types.InstanceStateNameShuttingDown, provider.StateTerminated},
		{types.InstanceStateNameTerminated, provider.StateTerminated},
		{"hibernating", provider.StateUnknown},
	}
	for _, tt := range tests {
		if got := mapState(&types.InstanceState{Name: tt.ec2}); got != tt.want {
			t.Errorf("mapState(%s) = %s, want %s", tt.ec2, got, tt.want)
		}
	}
	if got := mapState(nil); got != provider.StateUnknown {
		t.Errorf("mapState(nil) = %s", got)
	}
}

// TestListNodes_PaginationAndStates lists more instances than fit a page,
// in every EC2 state, through the wire.
func TestListNodes_PaginationAndStates(t *testing.T) {
	s := newFake(t, fake.Options{PageSize: 2})
	want := map[string]provider.State{}
	for _, st := range []string{"running", "stopping", "stopped", "terminated", "running", "stopped", "running"} {
		id := s.AddInstance(fake.Instance{State: st, Tags: map[string]string{"Name": "n-" + st}})
		want[id] = mapState(&types.InstanceState{Name: types.InstanceStateName(st)})
	}
	d := newDriverFor(t, s)
	nodes, err := d.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(want) {
		t.Fatalf("ListNodes returned %d nodes, want %d", len(nodes), len(want))
	}
	for _, n := range nodes {
		if n.State != want[n.ID] {
			t.Errorf("node %s state = %s, want %s", n.ID, n.State, want[n.ID])
		}
		if n.Provider != "ec2" || !strings.HasPrefix(n.Name, "n-") {
			t.Errorf("node %+v lacks provider or name", n)
		}
	}
	if got := s.CallCount("DescribeInstances"); got != 4 {
		t.Errorf("DescribeInstances called %d times, want 4 pages", got)
	}
}

func TestGetNode_Addresses(t *testing.T) {
	s := newFake(t, fake.Options{})
	id := s.AddInstance(fake.Instance{
		State:      "running",
		PublicIP:   "198.51.100.7",
		PrivateIPs: []string{"172.31.5.6", "172.31.5.7"},
		IPv6:       []string{"2001:db8::7", "2001:db8::8"},
		Tags:       map[string]string{"Name": "web", "toppcloud:ssh-user": "admin"},
	})
	n, err := newDriverFor(t, s).GetNode(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"198.51.100.7", "2001:db8::7", "2001:db8::8"}; !slices.Equal(n.PublicIPs, want) {
		t.Errorf("public IPs = %q, want %q", n.PublicIPs, want)
	}
	if want := []string{"172.31.5.6", "172.31.5.7"}; !slices.Equal(n.PrivateIPs, want) {
		t.Errorf("private IPs = %q, want %q", n.PrivateIPs, want)
	}
	if n.Name != "web" || n.SSHUser != "admin" || n.Size != "t3.micro" || n.Image == "" {
		t.Errorf("node = %+v", n)
	}
}

func TestListImages_Curated(t *testing.T) {
	s := newFake(t, fake.Options{PageSize: 2})
	d := newDriverFor(t, s)
	images, err := d.ListImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, im := range images {
		names = append(names, im.Name)
		if im.Created.IsZero() || im.Note == "" {
			t.Errorf("image %+v lacks creation time or note", im)
		}
	}
	want := []string{
		"debian-12-amd64-20240102-1614",
		"debian-12-amd64-20240507-1740",
		"debian-12-amd64-20240717-1811",
		"debian-12-arm64-20240717-1811",
		"my-golden-image",
		"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240701",
		"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240701",
	}
	if !slices.Equal(names, want) {
		t.Errorf("images = %q\nwant %q", names, want)
	}
	if s.CallCount("DescribeImages") < 4 {
		t.Errorf("DescribeImages called %d times: pagination not exercised", s.CallCount("DescribeImages"))
	}
	if got := image(t, d, "name first debian-12-amd64-*"); got.Name != "debian-12-amd64-20240717-1811" {
		t.Errorf("first debian-12-amd64 image = %s, want the newest", got.Name)
	}
	m, _ := provider.ParseMatcher("name centos-*")
	_, err = provider.MatchImage(images, m)
	if err == nil || !strings.Contains(err.Error(), "debian-12-amd64-20240717-1811") {
		t.Errorf("no-match error does not list candidates: %v", err)
	}
}

func TestListSizes_CurrentX86(t *testing.T) {
	s := newFake(t, fake.Options{PageSize: 2})
	sizes, err := newDriverFor(t, s).ListSizes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.Size{
		{ID: "t2.nano", Name: "t2.nano", RAMMB: 512, VCPUs: 1},
		{ID: "t3.micro", Name: "t3.micro", RAMMB: 1024, VCPUs: 2},
		{ID: "t3.small", Name: "t3.small", RAMMB: 2048, VCPUs: 2},
		{ID: "c5d.large", Name: "c5d.large", RAMMB: 4096, VCPUs: 2, DiskGB: 50},
		{ID: "m5.large", Name: "m5.large", RAMMB: 8192, VCPUs: 2},
	}
	if len(sizes) != len(want) {
		t.Fatalf("sizes = %+v\nwant %+v", sizes, want)
	}
	for i, sz := range sizes {
		w := want[i]
		if sz.ID != w.ID || sz.RAMMB != w.RAMMB || sz.VCPUs != w.VCPUs || sz.DiskGB != w.DiskGB {
			t.Errorf("size %d = %+v, want %+v", i, sz, w)
		}
		if (sz.DiskGB == 0) != strings.Contains(sz.Note, "EBS only") {
			t.Errorf("size %s note = %q", sz.ID, sz.Note)
		}
	}
}

func TestRetry_ThrottleThenSuccess(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	s.ThrottleNext(2)
	if _, err := d.ListNodes(context.Background()); err != nil {
		t.Fatalf("ListNodes after 2 throttles: %v", err)
	}
	if got := s.CallCount("DescribeInstances"); got != 3 {
		t.Errorf("DescribeInstances called %d times, want 3", got)
	}
}

func TestRetry_5xxThenSuccess(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	s.FailNext(1, 500, "InternalError", "An internal error has occurred")
	s.FailNext(1, 502, "Unavailable", "bad gateway")
	if _, err := d.ListSizes(context.Background()); err != nil {
		t.Fatalf("ListSizes after 500 and 502: %v", err)
	}
}

func TestRetry_GivesUpRateLimited(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	s.ThrottleNext(20)
	_, err := d.ListNodes(context.Background())
	if !errors.Is(err, provider.ErrRateLimited) {
		t.Fatalf("ListNodes under constant throttling = %v, want ErrRateLimited", err)
	}
	if !strings.Contains(err.Error(), "ec2") || !strings.Contains(err.Error(), "RequestLimitExceeded") {
		t.Errorf("error %q should name the provider and EC2's code", err)
	}
	if got := s.CallCount("DescribeInstances"); got != maxAttempts {
		t.Errorf("DescribeInstances called %d times, want %d attempts", got, maxAttempts)
	}
}

func TestCreate_Quota(t *testing.T) {
	s := newFake(t, fake.Options{InstanceLimit: 1})
	d := newDriverFor(t, s)
	if _, err := d.CreateNode(context.Background(), request(t, d, "one")); err != nil {
		t.Fatal(err)
	}
	_, err := d.CreateNode(context.Background(), request(t, d, "two"))
	if !errors.Is(err, provider.ErrQuota) || !strings.Contains(err.Error(), "InstanceLimitExceeded") {
		t.Fatalf("CreateNode over the limit = %v, want ErrQuota with EC2's code", err)
	}
}

func TestCreate_UnknownImageAndSize(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	req := request(t, d, "web")
	req.Image = provider.Image{ID: "ami-00000000000000000", Name: "gone"}
	_, err := d.CreateNode(context.Background(), req)
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "InvalidAMIID.NotFound") {
		t.Errorf("CreateNode with unknown AMI = %v, want ErrNotFound", err)
	}
	req = request(t, d, "web")
	req.Size = provider.Size{ID: "x9.huge", Name: "x9.huge"}
	_, err = d.CreateNode(context.Background(), req)
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "x9.huge") {
		t.Errorf("CreateNode with unknown type = %v, want ErrInvalid naming it", err)
	}
}

func TestAPI_GarbageBody(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	s.GarbageNext(1)
	nodes, err := d.ListNodes(context.Background())
	if err == nil {
		t.Fatalf("ListNodes on a garbage body returned %d nodes and no error", len(nodes))
	}
	if !strings.Contains(err.Error(), "ec2") || !strings.Contains(err.Error(), "not an EC2 response") {
		t.Errorf("error %q should name the provider and say the answer was not EC2's", err)
	}
}

func TestAPI_HangBoundedByContext(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	s.HangNext(maxAttempts)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := d.ListNodes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "ec2") {
		t.Errorf("ListNodes on a hanging API = %v, want the deadline error naming ec2", err)
	}
}

func TestAPI_HangBoundedByHTTPClient(t *testing.T) {
	s := newFake(t, fake.Options{})
	d, err := newDriver(provider.Env{Settings: settingsFor(s), HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}}, noBackoff)
	if err != nil {
		t.Fatal(err)
	}
	s.HangNext(maxAttempts)
	_, err = d.ListNodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ec2") {
		t.Errorf("ListNodes on a hanging API = %v, want an error naming ec2", err)
	}
}

func TestErrors_NoSecrets(t *testing.T) {
	const secret = "TOPSECRETvalue/0123456789abcdefghijklmnop"
	s := newFake(t, fake.Options{SecretAccessKey: secret})
	bad := newDriverFor(t, s, func(st provider.Settings) { st["secret"] = secret + "x" })
	good := newDriverFor(t, s, func(st provider.Settings) { st["secret"] = secret })
	var errs []error
	_, err := bad.ListNodes(context.Background())
	if !errors.Is(err, provider.ErrAuth) {
		t.Errorf("bad secret: %v, want ErrAuth", err)
	}
	errs = append(errs, err)
	_, err = bad.CreateNode(context.Background(), provider.CreateRequest{Name: "x", Image: provider.Image{ID: "ami-1"}, Size: provider.Size{ID: "t3.micro"}, AuthorizedKeys: []string{providertest.TestKey}})
	errs = append(errs, err)
	s.ThrottleNext(20)
	_, err = good.ListNodes(context.Background())
	errs = append(errs, err)
	s.GarbageNext(1)
	_, err = good.ListImages(context.Background())
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Error("expected an error")
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("error contains the secret: %v", err)
		}
	}
}

func TestCreate_ValidatesBeforeAnyCall(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	img := provider.Image{ID: "ami-0123456789abcdef0", Name: "debian-12-amd64-x"}
	sz := provider.Size{ID: "t3.micro"}
	tests := []struct {
		name string
		req  provider.CreateRequest
	}{
		{"bad name", provider.CreateRequest{Name: "Web_1", Image: img, Size: sz, AuthorizedKeys: []string{providertest.TestKey}}},
		{"no keys", provider.CreateRequest{Name: "web", Image: img, Size: sz}},
		{"bad key", provider.CreateRequest{Name: "web", Image: img, Size: sz, AuthorizedKeys: []string{"ssh-ed25519 notbase64"}}},
		{"not an ami", provider.CreateRequest{Name: "web", Image: provider.Image{ID: "img-1"}, Size: sz, AuthorizedKeys: []string{providertest.TestKey}}},
		{"no size", provider.CreateRequest{Name: "web", Image: img, AuthorizedKeys: []string{providertest.TestKey}}},
		{"relative file", provider.CreateRequest{Name: "web", Image: img, Size: sz, AuthorizedKeys: []string{providertest.TestKey}, Files: map[string][]byte{"etc/x": nil}}},
		{"huge files", provider.CreateRequest{Name: "web", Image: img, Size: sz, AuthorizedKeys: []string{providertest.TestKey}, Files: map[string][]byte{"/x": make([]byte, 20000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.CreateNode(context.Background(), tt.req)
			if !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("CreateNode = %v, want ErrInvalid", err)
			}
		})
	}
	if calls := s.Calls(); len(calls) != 0 {
		t.Errorf("invalid requests reached the API: %v", calls)
	}
}

func TestCreate_NameTaken(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	n, err := d.CreateNode(context.Background(), request(t, d, "web"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.CreateNode(context.Background(), request(t, d, "web"))
	if !errors.Is(err, provider.ErrExists) || !strings.Contains(err.Error(), n.ID) {
		t.Errorf("second CreateNode web = %v, want ErrExists naming %s", err, n.ID)
	}
	if err := d.DestroyNode(context.Background(), n.ID); err != nil {
		t.Fatal(err)
	}
	for { // wait until it is terminated; shutting-down still blocks the name
		got, err := d.GetNode(context.Background(), n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == provider.StateTerminated {
			break
		}
	}
	if _, err := d.CreateNode(context.Background(), request(t, d, "web")); err != nil {
		t.Errorf("CreateNode web after the old one was destroyed: %v", err)
	}
}

func TestDestroy_Twice(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	id := s.AddInstance(fake.Instance{State: "terminated"})
	err := d.DestroyNode(context.Background(), id)
	if !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("DestroyNode of a terminated instance = %v, want ErrNotFound", err)
	}
	err = d.DestroyNode(context.Background(), "i-0123456789abcdef0")
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "InvalidInstanceID.NotFound") {
		t.Errorf("DestroyNode of an unknown instance = %v, want ErrNotFound from EC2", err)
	}
}

func TestCreate_SSHUser(t *testing.T) {
	tests := []struct {
		image, setting, want string
	}{
		{"name first debian-12-amd64-*", "", "admin"},
		// The matcher's * does not cross "/" (path.Match), hence the /*/.
		{"name first ubuntu/images/*/ubuntu-noble-*", "", "ubuntu"},
		{"name my-golden-image", "", ""},
		{"name first debian-12-amd64-*", "root", ""},
		{"name first debian-12-amd64-*", "core", "core"},
	}
	for _, tt := range tests {
		t.Run(tt.image+"/"+tt.setting, func(t *testing.T) {
			s := newFake(t, fake.Options{})
			d := newDriverFor(t, s, func(st provider.Settings) { st["ssh_user"] = tt.setting })
			req := request(t, d, "web")
			req.Image = image(t, d, tt.image)
			n, err := d.CreateNode(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if n.SSHUser != tt.want {
				t.Errorf("created node SSHUser = %q, want %q", n.SSHUser, tt.want)
			}
			got, err := d.GetNode(context.Background(), n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.SSHUser != tt.want {
				t.Errorf("GetNode SSHUser = %q, want %q (from the tag)", got.SSHUser, tt.want)
			}
		})
	}
}

func newECDSAKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " ecdsa-comment"
}

func newRSAKey(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func TestCreate_KeyDelivery(t *testing.T) {
	ecKey := newECDSAKey(t)
	tests := []struct {
		name        string
		keys        []string
		wantKeyPair bool
		wantUDKeys  int
	}{
		{"one ed25519 key: key pair only", []string{providertest.TestKey}, true, 0},
		{"ed25519 and ecdsa: key pair and user data", []string{providertest.TestKey, ecKey}, true, 2},
		{"ecdsa only: user data only", []string{ecKey}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFake(t, fake.Options{})
			d := newDriverFor(t, s)
			n, err := d.CreateNode(context.Background(), request(t, d, "web", tt.keys...))
			if err != nil {
				t.Fatal(err)
			}
			in, _ := s.Instance(n.ID)
			if in.ClientToken == "" {
				t.Error("RunInstances carried no client token: its retries could launch twice")
			}
			if (in.KeyName != "") != tt.wantKeyPair {
				t.Errorf("key pair %q, want one: %v", in.KeyName, tt.wantKeyPair)
			}
			keys, _, err := fake.ParseUserData(in.UserData)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tt.wantUDKeys {
				t.Errorf("user data keys = %q, want %d", keys, tt.wantUDKeys)
			}
			for _, k := range tt.keys {
				keyReached(t, s, n.ID, k)
			}
		})
	}
}

func TestCreate_FilesAsWriteFiles(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	req := request(t, d, "web")
	req.Files = map[string][]byte{"/etc/toppcloud/hello": []byte("hi\x00there"), "/root/.ssh/authorized_keys": []byte(providertest.TestKey)}
	n, err := d.CreateNode(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.Instance(n.ID)
	_, files, err := fake.ParseUserData(in.UserData)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range req.Files {
		if string(files[p]) != string(want) {
			t.Errorf("file %s = %q, want %q", p, files[p], want)
		}
	}
}

func TestCreate_KeyPairReused(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	rsaKey := newRSAKey(t)
	for _, name := range []string{"a", "b"} {
		if _, err := d.CreateNode(context.Background(), request(t, d, name, rsaKey)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.CallCount("ImportKeyPair"); got != 1 {
		t.Errorf("ImportKeyPair called %d times for the same RSA key, want 1 (reuse by fingerprint)", got)
	}
	kps := s.KeyPairs()
	if len(kps) != 1 || !strings.HasPrefix(kps[0].Name, "toppcloud-") {
		t.Errorf("key pairs = %+v", kps)
	}
}

func TestCreate_KeyPairNameTakenByOtherKey(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(providertest.TestKey))
	s.AddKeyPair(fake.KeyPair{Name: keyPairName(pub), Fingerprint: "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff", Type: "rsa"})
	_, err := d.CreateNode(context.Background(), request(t, d, "web"))
	if !errors.Is(err, provider.ErrExists) || !strings.Contains(err.Error(), keyPairName(pub)) {
		t.Errorf("CreateNode with a foreign key under our name = %v, want ErrExists naming the key pair", err)
	}
	if got := s.CallCount("RunInstances"); got != 0 {
		t.Errorf("RunInstances called %d times after a key conflict", got)
	}
}

func TestCreate_KeyPairImportRace(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(providertest.TestKey))
	fp, _ := fake.Fingerprint(pub)
	s.Before("ImportKeyPair", func() {
		s.AddKeyPair(fake.KeyPair{Name: keyPairName(pub), Fingerprint: fp, Type: "ed25519", Material: providertest.TestKey})
	})
	if _, err := d.CreateNode(context.Background(), request(t, d, "web")); err != nil {
		t.Errorf("CreateNode when another client imported the key first: %v", err)
	}
}

func TestCreate_SecurityGroup(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	for _, name := range []string{"a", "b"} {
		if _, err := d.CreateNode(context.Background(), request(t, d, name)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.CallCount("CreateSecurityGroup"); got != 1 {
		t.Errorf("CreateSecurityGroup called %d times, want 1", got)
	}
	var g *fake.SecurityGroup
	for _, sg := range s.SecurityGroups() {
		if sg.Name == "toppcloud" {
			g = &sg
		}
	}
	if g == nil || g.VPC != s.DefaultVPC() {
		t.Fatalf("no toppcloud group in the default VPC: %+v", s.SecurityGroups())
	}
	var rules []string
	for _, r := range g.Rules {
		rules = append(rules, r.Protocol+"/"+strconv.Itoa(r.From)+"-"+strconv.Itoa(r.To)+"/"+r.CIDR)
	}
	slices.Sort(rules)
	want := []string{"tcp/22-22/0.0.0.0/0", "tcp/22-22/::/0", "tcp/443-443/0.0.0.0/0", "tcp/443-443/::/0", "tcp/80-80/0.0.0.0/0", "tcp/80-80/::/0"}
	if !slices.Equal(rules, want) {
		t.Errorf("rules = %q, want %q", rules, want)
	}
	for _, in := range s.Instances() {
		if !slices.Contains(in.SecurityGroupIDs, g.ID) {
			t.Errorf("instance %s not in the toppcloud group", in.ID)
		}
	}
}

func TestCreate_SecurityGroupPartialAndRace(t *testing.T) {
	t.Run("missing rules are added", func(t *testing.T) {
		s := newFake(t, fake.Options{})
		s.AddSecurityGroup(fake.SecurityGroup{Name: "toppcloud", Description: "x", Rules: []fake.Rule{{Protocol: "tcp", From: 22, To: 22, CIDR: "0.0.0.0/0"}}})
		d := newDriverFor(t, s)
		if _, err := d.CreateNode(context.Background(), request(t, d, "web")); err != nil {
			t.Fatal(err)
		}
		for _, g := range s.SecurityGroups() {
			if g.Name == "toppcloud" && len(g.Rules) != 6 {
				t.Errorf("group has %d rules, want 6: %+v", len(g.Rules), g.Rules)
			}
		}
		if s.CallCount("CreateSecurityGroup") != 0 {
			t.Error("existing group was created again")
		}
	})
	t.Run("concurrent creation", func(t *testing.T) {
		s := newFake(t, fake.Options{})
		s.Before("CreateSecurityGroup", func() {
			s.AddSecurityGroup(fake.SecurityGroup{Name: "toppcloud", Description: "made by another toppcloud"})
		})
		d := newDriverFor(t, s)
		if _, err := d.CreateNode(context.Background(), request(t, d, "web")); err != nil {
			t.Fatalf("CreateNode when another client made the group first: %v", err)
		}
	})
	t.Run("no default VPC", func(t *testing.T) {
		s := newFake(t, fake.Options{NoDefaultVPC: true})
		d := newDriverFor(t, s)
		_, err := d.CreateNode(context.Background(), request(t, d, "web"))
		if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "default VPC") {
			t.Errorf("CreateNode without a default VPC = %v", err)
		}
	})
}

func TestGetNode_NotFound(t *testing.T) {
	s := newFake(t, fake.Options{})
	d := newDriverFor(t, s)
	for _, id := range []string{"i-0123456789abcdef0", "i-zz", "web1"} {
		if _, err := d.GetNode(context.Background(), id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("GetNode(%s) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestAPI_UnknownRegionHost(t *testing.T) {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.DNSError{Err: "no such host", Name: "ec2.xx-nowhere-9.amazonaws.com", IsNotFound: true}
	}}}
	d, err := newDriver(provider.Env{Settings: provider.Settings{"username": "AKIA", "secret": "s", "region": "xx-nowhere-9"}, HTTPClient: client}, noBackoff)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.ListNodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check the region") {
		t.Errorf("ListNodes in a region whose endpoint does not resolve = %v, want a hint about the region", err)
	}
}
