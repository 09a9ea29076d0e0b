// Package fake is an in-process EC2 Query API (form-encoded POST with
// Action= and Version=2016-11-15, XML answers in EC2's own element names)
// for the actions the ec2 driver uses. Tests point the real aws-sdk-go-v2
// client at it, so they prove the driver speaks the documented protocol.
//
// It checks the SigV4 signature of every request (a wrong access key ID or
// secret gets 401 AuthFailure), paginates with small pages, moves new
// instances from pending to running and terminated ones from shutting-down
// to terminated over a few polls, keeps terminated instances listed as EC2
// does, honours RunInstances client tokens, and can inject throttling
// (HTTP 503 RequestLimitExceeded, as EC2 sends it), other errors, hangs and
// garbage bodies. A request it does not model (unknown action or
// parameter, unknown filter) gets HTTP 501 and is reported through
// Options.Errorf, so drift between driver and fake cannot pass silently.
//
// With Options.Backend set, instances are real nodes of another driver
// (see Options.Backend).
package fake

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// APIVersion is the only Version the fake accepts.
const APIVersion = "2016-11-15"

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Well-known owners of the seeded public images.
const (
	DebianOwner    = "136693071363"
	CanonicalOwner = "099720109477"
	AmazonOwner    = "137112412989"
)

// Defaults for Options.
const (
	DefaultAccessKeyID     = "AKIAFAKETOPPCLOUD001"
	DefaultSecretAccessKey = "fake/Secret+Access+Key/toppcloud0000000000"
	DefaultRegion          = "us-east-1"
	DefaultAccountID       = "123456789012"
)

// Options configure a Server. Zero values take the defaults.
type Options struct {
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	AccessKeyID, SecretAccessKey string
	// Region is the region requests must be signed for.
	Region string
	// AccountID owns "self" images, key pairs and groups.
	AccountID string
	// PageSize caps every page when the request gives MaxResults
	// (default 2, so pagination is exercised).
	PageSize int
	// PendingPolls is how many DescribeInstances answers show a new
	// instance pending (or a terminating one shutting-down) before it
	// moves on. Default 2.
	PendingPolls int
	// InstanceLimit, if > 0, is how many live instances the account may
	// have; RunInstances beyond it fails with InstanceLimitExceeded.
	InstanceLimit int
	// NoDefaultVPC removes the default VPC (accounts that deleted it).
	NoDefaultVPC bool
	// Backend, if set, makes instances real: RunInstances calls
	// Backend.CreateNode with the instance's Name tag, BackendImage and
	// BackendSize, the imported key pair and any cloud-init
	// ssh_authorized_keys as AuthorizedKeys and cloud-init write_files as
	// Files; DescribeInstances reports the backend node's state and
	// addresses; TerminateInstances calls Backend.DestroyNode.
	Backend      provider.Driver
	BackendImage provider.Image
	BackendSize  provider.Size
	// Errorf is called for requests the fake does not model (pass
	// t.Errorf). Nil panics instead, which is louder still.
	Errorf func(format string, args ...any)
}

// Image is an AMI the fake knows.
type Image struct {
	ID, Name, Owner, Architecture string
	Created                       time.Time
}

// InstanceType is an instance type the fake offers.
type InstanceType struct {
	Name              string
	MemoryMiB         int64
	VCPUs             int32
	InstanceStorageGB int64 // 0: EBS only
	CurrentGeneration bool
	Architecture      string // x86_64, arm64
}

// Instance is an instance as the fake holds it. Tests may seed instances
// with AddInstance in any state.
type Instance struct {
	ID, ImageID, Type, KeyName string
	// State is an EC2 state name: pending, running, shutting-down,
	// terminated, stopping, stopped.
	State            string
	Tags             map[string]string
	SecurityGroupIDs []string
	// UserData is the decoded user data.
	UserData   string
	PublicIP   string
	PrivateIPs []string // the first is the primary
	IPv6       []string
	// BackendID is the backend node's ID when Options.Backend is set.
	BackendID string
	// ClientToken is RunInstances' idempotency token.
	ClientToken string

	polls    int
	launched time.Time
}

// KeyPair is an imported key pair.
type KeyPair struct {
	ID, Name, Fingerprint, Type string
	// Material is the authorized_keys line as received.
	Material string
}

// SecurityGroup is a group with its ingress rules.
type SecurityGroup struct {
	ID, Name, Description, VPC string
	Rules                      []Rule
}

// Rule is one ingress permission of a security group, one CIDR each.
type Rule struct {
	Protocol string
	From, To int
	CIDR     string // 0.0.0.0/0 or ::/0
}

type vpc struct {
	id, cidr  string
	isDefault bool
}

type fault struct {
	status        int
	code, message string
	hang, garbage bool
}

// Server is a running fake EC2 endpoint.
type Server struct {
	// URL is the API root to use as the driver's endpoint.
	URL string

	srv  *httptest.Server
	o    Options
	done chan struct{}

	mu        sync.Mutex
	nextID    int
	images    []Image
	types     []InstanceType
	instances []*Instance
	keyPairs  []*KeyPair
	groups    []*SecurityGroup
	vpcs      []vpc
	faults    []fault
	calls     []string
	before    map[string][]func()
}

// New starts a fake with seeded images (Debian 12 and 11, Ubuntu 22.04
// and 24.04, Amazon Linux, one image owned by the account), instance types
// of both generations and architectures, and a default VPC with its
// default security group. Close it when done.
func New(o Options) *Server {
	if o.AccessKeyID == "" {
		o.AccessKeyID = DefaultAccessKeyID
	}
	if o.SecretAccessKey == "" {
		o.SecretAccessKey = DefaultSecretAccessKey
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.AccountID == "" {
		o.AccountID = DefaultAccountID
	}
	if o.PageSize <= 0 {
		o.PageSize = 2
	}
	if o.PendingPolls <= 0 {
		o.PendingPolls = 2
	}
	s := &Server{o: o, done: make(chan struct{})}
	s.seed()
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server; hanging requests are released.
func (s *Server) Close() {
	close(s.done)
	s.srv.Close()
}

func (s *Server) seed() {
	day := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC) }
	s.images = []Image{
		{Name: "debian-12-amd64-20240102-1614", Owner: DebianOwner, Architecture: "x86_64", Created: day(2024, 1, 2)},
		{Name: "debian-12-amd64-20240717-1811", Owner: DebianOwner, Architecture: "x86_64", Created: day(2024, 7, 17)},
		{Name: "debian-12-amd64-20240507-1740", Owner: DebianOwner, Architecture: "x86_64", Created: day(2024, 5, 7)},
		{Name: "debian-12-arm64-20240717-1811", Owner: DebianOwner, Architecture: "arm64", Created: day(2024, 7, 17)},
		{Name: "debian-11-amd64-20240717-1811", Owner: DebianOwner, Architecture: "x86_64", Created: day(2024, 7, 17)},
		{Name: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240701", Owner: CanonicalOwner, Architecture: "x86_64", Created: day(2024, 7, 1)},
		{Name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240701", Owner: CanonicalOwner, Architecture: "x86_64", Created: day(2024, 7, 1)},
		{Name: "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-20240701", Owner: CanonicalOwner, Architecture: "x86_64", Created: day(2024, 7, 1)},
		{Name: "al2023-ami-2023.5.20240708.0-kernel-6.1-x86_64", Owner: AmazonOwner, Architecture: "x86_64", Created: day(2024, 7, 8)},
		{Name: "my-golden-image", Owner: s.o.AccountID, Architecture: "x86_64", Created: day(2024, 6, 1)},
	}
	for i := range s.images {
		s.images[i].ID = s.newID("ami")
	}
	s.types = []InstanceType{
		{Name: "t3.micro", MemoryMiB: 1024, VCPUs: 2, CurrentGeneration: true, Architecture: "x86_64"},
		{Name: "t3.small", MemoryMiB: 2048, VCPUs: 2, CurrentGeneration: true, Architecture: "x86_64"},
		{Name: "m5.large", MemoryMiB: 8192, VCPUs: 2, CurrentGeneration: true, Architecture: "x86_64"},
		{Name: "c5d.large", MemoryMiB: 4096, VCPUs: 2, InstanceStorageGB: 50, CurrentGeneration: true, Architecture: "x86_64"},
		{Name: "t4g.micro", MemoryMiB: 1024, VCPUs: 2, CurrentGeneration: true, Architecture: "arm64"},
		{Name: "m1.small", MemoryMiB: 1740, VCPUs: 1, InstanceStorageGB: 160, CurrentGeneration: false, Architecture: "x86_64"},
		{Name: "t2.nano", MemoryMiB: 512, VCPUs: 1, CurrentGeneration: true, Architecture: "x86_64"},
	}
	other := vpc{id: s.newID("vpc"), cidr: "10.20.0.0/16"}
	s.vpcs = []vpc{other}
	if !s.o.NoDefaultVPC {
		s.vpcs = append(s.vpcs, vpc{id: s.newID("vpc"), cidr: "172.31.0.0/16", isDefault: true})
	}
	for _, v := range s.vpcs {
		s.groups = append(s.groups, &SecurityGroup{ID: s.newID("sg"), Name: "default", Description: "default VPC security group", VPC: v.id})
	}
}

// newID returns an EC2-looking ID with the given prefix; caller holds mu
// or is still constructing.
func (s *Server) newID(prefix string) string {
	s.nextID++
	return fmt.Sprintf("%s-%017x", prefix, 0xf00000+s.nextID)
}

// --- knobs and records for tests ---

// FailNext makes the next n requests fail with the given HTTP status and
// EC2 error code.
func (s *Server) FailNext(n, status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status, code: code, message: message})
	}
}

// ThrottleNext makes the next n requests fail as EC2 throttles: HTTP 503
// with code RequestLimitExceeded.
func (s *Server) ThrottleNext(n int) {
	s.FailNext(n, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
}

// HangNext makes the next n requests hang until the client gives up or
// the server closes.
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{hang: true})
	}
}

// GarbageNext makes the next n requests answer 200 with a body that is
// not an EC2 document.
func (s *Server) GarbageNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{garbage: true})
	}
}

// Before runs fn once, just before the next request for action is
// handled (after authentication), to stage races such as another client
// creating the same security group in between.
func (s *Server) Before(action string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.before == nil {
		s.before = map[string][]func(){}
	}
	s.before[action] = append(s.before[action], fn)
}

// AddSecurityGroup adds a group (rules included) and returns its ID. An
// empty VPC means the default VPC.
func (s *Server) AddSecurityGroup(g SecurityGroup) string {
	vpcID := g.VPC
	if vpcID == "" {
		vpcID = s.DefaultVPC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g.VPC = vpcID
	if g.ID == "" {
		g.ID = s.newID("sg")
	}
	s.groups = append(s.groups, &g)
	return g.ID
}

// Calls returns the actions received, in order (faulted ones included).
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// CallCount returns how many requests for action were received.
func (s *Server) CallCount(action string) int {
	n := 0
	for _, c := range s.Calls() {
		if c == action {
			n++
		}
	}
	return n
}

// AddImage adds an image and returns its ID.
func (s *Server) AddImage(im Image) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im.ID == "" {
		im.ID = s.newID("ami")
	}
	s.images = append(s.images, im)
	return im.ID
}

// AddInstance adds an instance as given (state, addresses, tags) and
// returns its ID. Its state does not advance unless it is pending or
// shutting-down.
func (s *Server) AddInstance(in Instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.ID == "" {
		in.ID = s.newID("i")
	}
	if in.State == "" {
		in.State = "running"
	}
	if in.Type == "" {
		in.Type = "t3.micro"
	}
	if in.ImageID == "" {
		in.ImageID = s.images[0].ID
	}
	in.launched = time.Now().UTC()
	s.instances = append(s.instances, &in)
	return in.ID
}

// AddKeyPair stores a key pair as is (fingerprint included), to model one
// made by someone else.
func (s *Server) AddKeyPair(kp KeyPair) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kp.ID == "" {
		kp.ID = s.newID("key")
	}
	s.keyPairs = append(s.keyPairs, &kp)
}

// Instances returns copies of all instances, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, len(s.instances))
	for i, in := range s.instances {
		out[i] = *in
		out[i].Tags = copyMap(in.Tags)
	}
	return out
}

// Instance returns a copy of one instance.
func (s *Server) Instance(id string) (Instance, bool) {
	for _, in := range s.Instances() {
		if in.ID == id {
			return in, true
		}
	}
	return Instance{}, false
}

// KeyPairs returns copies of the key pairs.
func (s *Server) KeyPairs() []KeyPair {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]KeyPair, len(s.keyPairs))
	for i, kp := range s.keyPairs {
		out[i] = *kp
	}
	return out
}

// SecurityGroups returns copies of the security groups.
func (s *Server) SecurityGroups() []SecurityGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SecurityGroup, len(s.groups))
	for i, g := range s.groups {
		out[i] = *g
		out[i].Rules = append([]Rule(nil), g.Rules...)
	}
	return out
}

// DefaultVPC returns the default VPC's ID, or "".
func (s *Server) DefaultVPC() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vpcs {
		if v.isDefault {
			return v.id
		}
	}
	return ""
}

// Images returns copies of the images.
func (s *Server) Images() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Image(nil), s.images...)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// --- HTTP ---

// apiError is an EC2 error answer.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badParam(format string, args ...any) *apiError {
	return &apiError{400, "InvalidParameterValue", fmt.Sprintf(format, args...)}
}

// unmodelled marks a request the fake does not implement: HTTP 501 and a
// test failure.
type unmodelled struct{ msg string }

func (e *unmodelled) Error() string { return e.msg }

// ServeHTTP answers one EC2 Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.writeError(w, &apiError{400, "MalformedQueryString", "unreadable body"})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		s.unmodelled(w, fmt.Sprintf("%s %s with Content-Type %q (want POST / form-encoded)", r.Method, r.URL.Path, r.Header.Get("Content-Type")))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.writeError(w, &apiError{400, "MalformedQueryString", err.Error()})
		return
	}
	action := form.Get("Action")
	s.mu.Lock()
	s.calls = append(s.calls, action)
	var f *fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		switch {
		case f.hang:
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		case f.garbage:
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html><body>502 Bad Gateway from some proxy</body></html>")
			return
		default:
			s.writeError(w, &apiError{f.status, f.code, f.message})
			return
		}
	}
	if err := s.checkAuth(r, body); err != nil {
		s.writeError(w, err)
		return
	}
	if v := form.Get("Version"); v != APIVersion {
		s.unmodelled(w, fmt.Sprintf("%s with Version %q, want %s", action, v, APIVersion))
		return
	}
	h, ok := handlers[action]
	if !ok {
		s.unmodelled(w, fmt.Sprintf("action %q", action))
		return
	}
	for k := range form {
		if k == "Action" || k == "Version" {
			continue
		}
		if !h.params.MatchString(k) {
			s.unmodelled(w, fmt.Sprintf("%s parameter %q", action, k))
			return
		}
	}
	s.mu.Lock()
	var hooks []func()
	if hs := s.before[action]; len(hs) > 0 {
		hooks, s.before[action] = hs[:1], hs[1:]
	}
	s.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	q := query{form}
	resp, err := h.fn(s, r.Context(), q)
	if err != nil {
		if u, ok := err.(*unmodelled); ok {
			s.unmodelled(w, action+": "+u.msg)
			return
		}
		if ae, ok := err.(*apiError); ok {
			s.writeError(w, ae)
			return
		}
		s.writeError(w, &apiError{500, "InternalError", err.Error()})
		return
	}
	s.writeXML(w, action, resp)
}

func (s *Server) unmodelled(w http.ResponseWriter, what string) {
	if s.o.Errorf != nil {
		s.o.Errorf("fake ec2: unmodelled request: %s", what)
	} else {
		panic("fake ec2: unmodelled request: " + what)
	}
	s.writeError(w, &apiError{http.StatusNotImplemented, "NotImplemented", "the fake does not model " + what})
}

type errorBody struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = &apiError{500, "InternalError", err.Error()}
	}
	out, _ := xml.Marshal(errorBody{Code: ae.code, Message: ae.message, RequestID: requestID()})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(ae.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

func (s *Server) writeXML(w http.ResponseWriter, action string, resp any) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	fmt.Fprintf(&buf, `<%sResponse xmlns="%s"><requestId>%s</requestId>`, action, xmlns, requestID())
	if err := xml.NewEncoder(&buf).Encode(resp); err != nil {
		s.writeError(w, err)
		return
	}
	fmt.Fprintf(&buf, `</%sResponse>`, action)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write(buf.Bytes())
}

func requestID() string { return "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE" }

// authRE parses a SigV4 Authorization header.
var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$`)

func authFailure() *apiError {
	return &apiError{401, "AuthFailure", "AWS was not able to validate the provided access credentials"}
}

// checkAuth verifies the request's SigV4 signature: it re-signs a copy
// carrying only the headers the client signed, with the fake's secret, at
// the client's X-Amz-Date, and compares.
func (s *Server) checkAuth(r *http.Request, body []byte) error {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return &apiError{401, "MissingAuthenticationToken", "Request is missing Authentication Token"}
	}
	akid, region, service, signed := m[1], m[3], m[4], strings.Split(m[5], ";")
	if akid != s.o.AccessKeyID {
		return authFailure()
	}
	if service != "ec2" || region != s.o.Region {
		return &apiError{401, "AuthFailure", fmt.Sprintf("Credential should be scoped to a valid region and service ec2, not %s/%s.", region, service)}
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return authFailure()
	}
	cp, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return authFailure()
	}
	cp.Host = r.Host
	for _, h := range signed {
		if h == "host" {
			continue
		}
		cp.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: s.o.AccessKeyID, SecretAccessKey: s.o.SecretAccessKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), "ec2", s.o.Region, when); err != nil {
		return authFailure()
	}
	if cp.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return authFailure()
	}
	return nil
}

// --- query parameters ---

type query struct{ url.Values }

// list returns prefix.1, prefix.2, ... in order.
func (q query) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + "." + strconv.Itoa(i)
		if _, ok := q.Values[k]; !ok {
			return out
		}
		out = append(out, q.Get(k))
	}
}

// count returns how many prefix.N.* groups there are.
func (q query) count(prefix string) int {
	n := 0
	for k := range q.Values {
		if !strings.HasPrefix(k, prefix+".") {
			continue
		}
		rest := strings.TrimPrefix(k, prefix+".")
		idx, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(idx); err == nil && i > n {
			n = i
		}
	}
	return n
}

type filter struct {
	name   string
	values []string
}

func (q query) filters(known ...string) ([]filter, error) {
	var out []filter
	for i := 1; i <= q.count("Filter"); i++ {
		p := fmt.Sprintf("Filter.%d", i)
		f := filter{name: q.Get(p + ".Name"), values: q.list(p + ".Value")}
		ok := false
		for _, k := range known {
			if f.name == k || (strings.HasSuffix(k, "*") && strings.HasPrefix(f.name, strings.TrimSuffix(k, "*"))) {
				ok = true
			}
		}
		if !ok {
			return nil, &unmodelled{fmt.Sprintf("filter %q", f.name)}
		}
		out = append(out, f)
	}
	return out, nil
}

// match reports whether v matches any of the filter's values, with EC2's
// * and ? wildcards (which, unlike path.Match, cross "/").
func (f filter) match(v string) bool {
	for _, pat := range f.values {
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pat)) + "$"
		if ok, _ := regexp.MatchString(re, v); ok {
			return true
		}
	}
	return false
}

// page applies MaxResults/NextToken to n items and returns the range and
// the next token. Without MaxResults everything comes in one page, as EC2
// does.
func (s *Server) page(q query, n, maxLimit int) (from, to int, next string, err error) {
	size := n
	if v := q.Get("MaxResults"); v != "" {
		mr, err := strconv.Atoi(v)
		if err != nil || mr < 5 || mr > maxLimit {
			return 0, 0, "", badParam("Value ( %s ) for parameter maxResults is invalid. Expecting a value between 5 and %d.", v, maxLimit)
		}
		size = min(mr, s.o.PageSize)
	}
	if t := q.Get("NextToken"); t != "" {
		off, err := strconv.Atoi(strings.TrimPrefix(t, "fake-token-"))
		if err != nil || !strings.HasPrefix(t, "fake-token-") || off > n {
			return 0, 0, "", &apiError{400, "InvalidPaginationToken", "The pagination token is invalid."}
		}
		from = off
	}
	to = min(from+size, n)
	if to < n {
		next = "fake-token-" + strconv.Itoa(to)
	}
	return from, to, next, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// --- actions ---

type handler struct {
	params *regexp.Regexp
	fn     func(*Server, context.Context, query) (any, error)
}

func params(res ...string) *regexp.Regexp {
	return regexp.MustCompile(`^(` + strings.Join(res, "|") + `)$`)
}

const filterParams = `Filter\.\d+\.(Name|Value\.\d+)`

var handlers = map[string]handler{
	"DescribeImages":                {params(`Owner\.\d+`, `ImageId\.\d+`, filterParams, `MaxResults`, `NextToken`), (*Server).describeImages},
	"DescribeInstanceTypes":         {params(`InstanceType\.\d+`, filterParams, `MaxResults`, `NextToken`), (*Server).describeInstanceTypes},
	"DescribeInstances":             {params(`InstanceId\.\d+`, filterParams, `MaxResults`, `NextToken`), (*Server).describeInstances},
	"RunInstances":                  {params(`ImageId`, `InstanceType`, `MinCount`, `MaxCount`, `KeyName`, `SecurityGroupId\.\d+`, `UserData`, `ClientToken`, `TagSpecification\.\d+\.(ResourceType|Tag\.\d+\.(Key|Value))`), (*Server).runInstances},
	"TerminateInstances":            {params(`InstanceId\.\d+`), (*Server).terminateInstances},
	"DescribeKeyPairs":              {params(`KeyName\.\d+`, `IncludePublicKey`), (*Server).describeKeyPairs},
	"ImportKeyPair":                 {params(`KeyName`, `PublicKeyMaterial`), (*Server).importKeyPair},
	"DescribeVpcs":                  {params(filterParams, `VpcId\.\d+`), (*Server).describeVpcs},
	"DescribeSecurityGroups":        {params(filterParams, `GroupId\.\d+`), (*Server).describeSecurityGroups},
	"CreateSecurityGroup":           {params(`GroupName`, `GroupDescription`, `VpcId`), (*Server).createSecurityGroup},
	"AuthorizeSecurityGroupIngress": {params(`GroupId`, `IpPermissions\.\d+\.(IpProtocol|FromPort|ToPort|IpRanges\.\d+\.(CidrIp|Description)|Ipv6Ranges\.\d+\.(CidrIpv6|Description))`), (*Server).authorizeIngress},
}

// Wire types: element names as EC2 sends them (checked against the SDK's
// deserializers: reservationSet/item/instancesSet/item, ipAddress for the
// public IPv4, tagSet/item, and so on).

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func xTags(m map[string]string) []xTag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []xTag
	for _, k := range keys {
		out = append(out, xTag{k, m[k]})
	}
	return out
}

type xImage struct {
	ImageID      string `xml:"imageId"`
	Location     string `xml:"imageLocation"`
	State        string `xml:"imageState"`
	OwnerID      string `xml:"imageOwnerId"`
	CreationDate string `xml:"creationDate"`
	IsPublic     bool   `xml:"isPublic"`
	Architecture string `xml:"architecture"`
	ImageType    string `xml:"imageType"`
	Name         string `xml:"name"`
	RootDevice   string `xml:"rootDeviceType"`
	Virt         string `xml:"virtualizationType"`
}

type describeImagesResponse struct {
	XMLName xml.Name `xml:"imagesSet"`
	Items   []xImage `xml:"item"`
}

// element is one element with text content.
type element struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func elem(name, value string) element { return element{XMLName: xml.Name{Local: name}, Value: value} }

// multi encodes several top-level elements in a row.
type multi []any

func (m multi) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	for _, v := range m {
		if err := e.Encode(v); err != nil {
			return err
		}
	}
	return nil
}

func withToken(v any, token string) any {
	if token == "" {
		return v
	}
	return multi{v, elem("nextToken", token)}
}

func (s *Server) describeImages(_ context.Context, q query) (any, error) {
	filters, err := q.filters("name", "state", "architecture")
	if err != nil {
		return nil, err
	}
	owners := q.list("Owner")
	ids := q.list("ImageId")
	if len(ids) > 0 && q.Get("MaxResults") != "" {
		return nil, &apiError{400, "InvalidParameterCombination", "The parameter imageIdsSet cannot be used with the parameter maxResults"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []Image
	for _, im := range s.images {
		if len(ids) > 0 && !slices.Contains(ids, im.ID) {
			continue
		}
		if len(owners) > 0 {
			ok := false
			for _, ow := range owners {
				if ow == im.Owner || (ow == "self" && im.Owner == s.o.AccountID) {
					ok = true
				}
			}
			if !ok {
				continue
			}
		} else if len(ids) == 0 && im.Owner != s.o.AccountID {
			// Without owners or IDs EC2 lists every public image;
			// the driver must never ask that.
			return nil, &unmodelled{"DescribeImages without Owner or ImageId (would list millions of public images)"}
		}
		ok := true
		for _, f := range filters {
			switch f.name {
			case "name":
				ok = ok && f.match(im.Name)
			case "state":
				ok = ok && f.match("available")
			case "architecture":
				ok = ok && f.match(im.Architecture)
			}
		}
		if ok {
			hits = append(hits, im)
		}
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, "ami-") {
			return nil, &apiError{400, "InvalidAMIID.Malformed", fmt.Sprintf("Invalid id: \"%s\"", id)}
		}
	}
	from, to, next, err := s.page(q, len(hits), 1000)
	if err != nil {
		return nil, err
	}
	resp := describeImagesResponse{}
	for _, im := range hits[from:to] {
		resp.Items = append(resp.Items, xImage{
			ImageID: im.ID, Location: im.Owner + "/" + im.Name, State: "available", OwnerID: im.Owner,
			CreationDate: im.Created.UTC().Format("2006-01-02T15:04:05.000Z"), IsPublic: im.Owner != s.o.AccountID,
			Architecture: im.Architecture, ImageType: "machine", Name: im.Name, RootDevice: "ebs", Virt: "hvm",
		})
	}
	return withToken(resp, next), nil
}

type xInstanceType struct {
	InstanceType      string   `xml:"instanceType"`
	CurrentGeneration bool     `xml:"currentGeneration"`
	ProcessorArchs    []string `xml:"processorInfo>supportedArchitectures>item"`
	DefaultVCpus      int32    `xml:"vCpuInfo>defaultVCpus"`
	MemoryMiB         int64    `xml:"memoryInfo>sizeInMiB"`
	StorageSupported  bool     `xml:"instanceStorageSupported"`
	Storage           *struct {
		TotalSizeInGB int64 `xml:"totalSizeInGB"`
	} `xml:"instanceStorageInfo,omitempty"`
}

type describeInstanceTypesResponse struct {
	XMLName xml.Name        `xml:"instanceTypeSet"`
	Items   []xInstanceType `xml:"item"`
}

func (s *Server) describeInstanceTypes(_ context.Context, q query) (any, error) {
	filters, err := q.filters("current-generation", "processor-info.supported-architecture")
	if err != nil {
		return nil, err
	}
	names := q.list("InstanceType")
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []InstanceType
	for _, it := range s.types {
		if len(names) > 0 && !slices.Contains(names, it.Name) {
			continue
		}
		ok := true
		for _, f := range filters {
			switch f.name {
			case "current-generation":
				ok = ok && f.match(strconv.FormatBool(it.CurrentGeneration))
			case "processor-info.supported-architecture":
				ok = ok && f.match(it.Architecture)
			}
		}
		if ok {
			hits = append(hits, it)
		}
	}
	from, to, next, err := s.page(q, len(hits), 100)
	if err != nil {
		return nil, err
	}
	var resp describeInstanceTypesResponse
	for _, it := range hits[from:to] {
		x := xInstanceType{
			InstanceType: it.Name, CurrentGeneration: it.CurrentGeneration, ProcessorArchs: []string{it.Architecture},
			DefaultVCpus: it.VCPUs, MemoryMiB: it.MemoryMiB, StorageSupported: it.InstanceStorageGB > 0,
		}
		if it.InstanceStorageGB > 0 {
			x.Storage = &struct {
				TotalSizeInGB int64 `xml:"totalSizeInGB"`
			}{it.InstanceStorageGB}
		}
		resp.Items = append(resp.Items, x)
	}
	return withToken(resp, next), nil
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xGroup struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

type xPrivateIP struct {
	Address string `xml:"privateIpAddress"`
	Primary bool   `xml:"primary"`
}

type xIPv6 struct {
	Address string `xml:"ipv6Address"`
}

type xInterface struct {
	ID         string       `xml:"networkInterfaceId"`
	PrivateIP  string       `xml:"privateIpAddress,omitempty"`
	PrivateIPs []xPrivateIP `xml:"privateIpAddressesSet>item"`
	IPv6       []xIPv6      `xml:"ipv6AddressesSet>item"`
}

type xInstance struct {
	InstanceID   string       `xml:"instanceId"`
	ImageID      string       `xml:"imageId"`
	State        xState       `xml:"instanceState"`
	KeyName      string       `xml:"keyName,omitempty"`
	InstanceType string       `xml:"instanceType"`
	LaunchTime   string       `xml:"launchTime"`
	PrivateIP    string       `xml:"privateIpAddress,omitempty"`
	PublicIP     string       `xml:"ipAddress,omitempty"`
	IPv6         string       `xml:"ipv6Address,omitempty"`
	Groups       []xGroup     `xml:"groupSet>item"`
	Architecture string       `xml:"architecture"`
	ClientToken  string       `xml:"clientToken,omitempty"`
	Tags         []xTag       `xml:"tagSet>item"`
	Interfaces   []xInterface `xml:"networkInterfaceSet>item"`
}

type xReservation struct {
	ID        string      `xml:"reservationId"`
	OwnerID   string      `xml:"ownerId"`
	Instances []xInstance `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName      xml.Name       `xml:"reservationSet"`
	Reservations []xReservation `xml:"item"`
}

// advance moves an instance one poll along its lifecycle; mu is held.
func (s *Server) advance(ctx context.Context, in *Instance) {
	if in.BackendID != "" {
		s.syncBackend(ctx, in)
		return
	}
	in.polls++
	switch in.State {
	case "pending":
		if in.polls > s.o.PendingPolls {
			in.State = "running"
			if in.PublicIP == "" {
				n := len(s.instances)
				in.PublicIP = fmt.Sprintf("203.0.113.%d", 10+n%240)
				in.IPv6 = append(in.IPv6, fmt.Sprintf("2001:db8:1234::%x", 0x10+n))
			}
		}
	case "shutting-down":
		if in.polls > s.o.PendingPolls {
			in.State = "terminated"
			in.PublicIP, in.IPv6 = "", nil
		}
	}
}

// syncBackend copies the backend node's state and addresses; mu is held.
func (s *Server) syncBackend(ctx context.Context, in *Instance) {
	if in.State == "terminated" || in.State == "shutting-down" {
		in.State = "terminated"
		return
	}
	n, err := s.o.Backend.GetNode(ctx, in.BackendID)
	if err != nil {
		if isNotFound(err) {
			in.State = "terminated"
		}
		return
	}
	switch n.State {
	case provider.StatePending, provider.StateUnknown:
		in.State = "pending"
	case provider.StateRunning:
		in.State = "running"
	case provider.StateStopped:
		in.State = "stopped"
	case provider.StateTerminated, provider.StateError:
		in.State = "terminated"
	}
	in.PublicIP, in.IPv6 = "", nil
	for _, ip := range n.PublicIPs {
		if strings.Contains(ip, ":") {
			in.IPv6 = append(in.IPv6, ip)
		} else if in.PublicIP == "" {
			in.PublicIP = ip
		}
	}
	if len(n.PrivateIPs) > 0 {
		in.PrivateIPs = append([]string(nil), n.PrivateIPs...)
	}
}

func (s *Server) xInstance(in *Instance) xInstance {
	x := xInstance{
		InstanceID: in.ID, ImageID: in.ImageID, State: xState{stateCodes[in.State], in.State},
		KeyName: in.KeyName, InstanceType: in.Type, LaunchTime: in.launched.Format("2006-01-02T15:04:05.000Z"),
		PublicIP: in.PublicIP, Architecture: "x86_64", ClientToken: in.ClientToken, Tags: xTags(in.Tags),
	}
	for _, id := range in.SecurityGroupIDs {
		g := s.group(id)
		if g != nil {
			x.Groups = append(x.Groups, xGroup{g.ID, g.Name})
		}
	}
	if len(in.IPv6) > 0 {
		x.IPv6 = in.IPv6[0]
	}
	if in.State != "terminated" {
		ni := xInterface{ID: "eni-" + strings.TrimPrefix(in.ID, "i-")}
		for i, ip := range in.PrivateIPs {
			if i == 0 {
				x.PrivateIP, ni.PrivateIP = ip, ip
			}
			ni.PrivateIPs = append(ni.PrivateIPs, xPrivateIP{ip, i == 0})
		}
		for _, ip := range in.IPv6 {
			ni.IPv6 = append(ni.IPv6, xIPv6{ip})
		}
		x.Interfaces = []xInterface{ni}
	}
	return x
}

func (s *Server) group(id string) *SecurityGroup {
	for _, g := range s.groups {
		if g.ID == id {
			return g
		}
	}
	return nil
}

func (s *Server) describeInstances(ctx context.Context, q query) (any, error) {
	filters, err := q.filters("instance-state-name", "tag:*")
	if err != nil {
		return nil, err
	}
	ids := q.list("InstanceId")
	if len(ids) > 0 && q.Get("MaxResults") != "" {
		return nil, &apiError{400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if err := s.checkInstanceID(id); err != nil {
			return nil, err
		}
	}
	var hits []*Instance
	for _, in := range s.instances {
		if len(ids) > 0 && !slices.Contains(ids, in.ID) {
			continue
		}
		ok := true
		for _, f := range filters {
			if f.name == "instance-state-name" {
				ok = ok && f.match(in.State)
			} else if v, has := in.Tags[strings.TrimPrefix(f.name, "tag:")]; has {
				ok = ok && f.match(v)
			} else {
				ok = false
			}
		}
		if ok {
			hits = append(hits, in)
		}
	}
	from, to, next, err := s.page(q, len(hits), 1000)
	if err != nil {
		return nil, err
	}
	var resp describeInstancesResponse
	for _, in := range hits[from:to] {
		s.advance(ctx, in)
		resp.Reservations = append(resp.Reservations, xReservation{
			ID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: s.o.AccountID, Instances: []xInstance{s.xInstance(in)},
		})
	}
	return withToken(resp, next), nil
}

var instanceIDRE = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)

// checkInstanceID fails as EC2 does for a malformed or unknown ID; mu is held.
func (s *Server) checkInstanceID(id string) error {
	if !instanceIDRE.MatchString(id) {
		return &apiError{400, "InvalidInstanceID.Malformed", fmt.Sprintf("Invalid id: \"%s\"", id)}
	}
	for _, in := range s.instances {
		if in.ID == id {
			return nil
		}
	}
	return &apiError{400, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id)}
}

type instancesSet struct {
	XMLName   xml.Name    `xml:"instancesSet"`
	Instances []xInstance `xml:"item"`
}

func (s *Server) runInstances(ctx context.Context, q query) (any, error) {
	if q.Get("MinCount") != "1" || q.Get("MaxCount") != "1" {
		return nil, &unmodelled{fmt.Sprintf("MinCount %q MaxCount %q (only 1 is modelled)", q.Get("MinCount"), q.Get("MaxCount"))}
	}
	tags := map[string]string{}
	for i := 1; i <= q.count("TagSpecification"); i++ {
		p := fmt.Sprintf("TagSpecification.%d", i)
		if rt := q.Get(p + ".ResourceType"); rt != "instance" {
			return nil, &unmodelled{"tag specification for resource type " + rt}
		}
		for j := 1; j <= q.count(p+".Tag"); j++ {
			tags[q.Get(fmt.Sprintf("%s.Tag.%d.Key", p, j))] = q.Get(fmt.Sprintf("%s.Tag.%d.Value", p, j))
		}
	}
	var userData string
	if ud := q.Get("UserData"); ud != "" {
		raw, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return nil, badParam("Invalid BASE64 encoding of user data.")
		}
		if len(raw) > 16<<10 {
			return nil, badParam("User data is limited to 16384 bytes")
		}
		userData = string(raw)
	}

	s.mu.Lock()
	token := q.Get("ClientToken")
	if token != "" {
		for _, in := range s.instances {
			if in.ClientToken == token {
				x := s.xInstance(in)
				s.mu.Unlock()
				return multi{elem("reservationId", "r-"+strings.TrimPrefix(in.ID, "i-")), elem("ownerId", s.o.AccountID), instancesSet{Instances: []xInstance{x}}}, nil
			}
		}
	}
	imageID := q.Get("ImageId")
	if !strings.HasPrefix(imageID, "ami-") {
		s.mu.Unlock()
		return nil, &apiError{400, "InvalidAMIID.Malformed", fmt.Sprintf("Invalid id: \"%s\" (expecting \"ami-...\")", imageID)}
	}
	if !slices.ContainsFunc(s.images, func(im Image) bool { return im.ID == imageID }) {
		s.mu.Unlock()
		return nil, &apiError{400, "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", imageID)}
	}
	typ := q.Get("InstanceType")
	if !slices.ContainsFunc(s.types, func(it InstanceType) bool { return it.Name == typ }) {
		s.mu.Unlock()
		return nil, badParam("The instance type '%s' does not exist in this region", typ)
	}
	keyName := q.Get("KeyName")
	var keyMaterial string
	if keyName != "" {
		kp := s.keyPair(keyName)
		if kp == nil {
			s.mu.Unlock()
			return nil, &apiError{400, "InvalidKeyPair.NotFound", fmt.Sprintf("The key pair '%s' does not exist", keyName)}
		}
		keyMaterial = kp.Material
	}
	groups := q.list("SecurityGroupId")
	for _, g := range groups {
		if s.group(g) == nil {
			s.mu.Unlock()
			return nil, &apiError{400, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", g)}
		}
	}
	if s.o.InstanceLimit > 0 {
		live := 0
		for _, in := range s.instances {
			if in.State != "terminated" && in.State != "shutting-down" {
				live++
			}
		}
		if live >= s.o.InstanceLimit {
			s.mu.Unlock()
			return nil, &apiError{400, "InstanceLimitExceeded", fmt.Sprintf("You have requested more instances (%d) than your current instance limit of %d allows for the specified instance type.", live+1, s.o.InstanceLimit)}
		}
	}
	in := &Instance{
		ID: s.newID("i"), ImageID: imageID, Type: typ, KeyName: keyName, State: "pending", Tags: tags,
		SecurityGroupIDs: groups, UserData: userData, ClientToken: token, launched: time.Now().UTC(),
	}
	in.PrivateIPs = []string{fmt.Sprintf("172.31.%d.%d", 16+s.nextID/250%16, 1+s.nextID%250)}
	s.mu.Unlock()

	if s.o.Backend != nil {
		// Outside the lock: a real backend may take a while. The request
		// context is detached so a client timeout cannot leave a node
		// half-made; the client token makes the SDK's retry harmless.
		id, err := s.createOnBackend(context.WithoutCancel(ctx), in, keyMaterial)
		if err != nil {
			return nil, &apiError{500, "InternalError", "backend: " + err.Error()}
		}
		in.BackendID = id
	}
	s.mu.Lock()
	s.instances = append(s.instances, in)
	x := s.xInstance(in)
	s.mu.Unlock()
	return multi{elem("reservationId", "r-"+strings.TrimPrefix(in.ID, "i-")), elem("ownerId", s.o.AccountID), instancesSet{Instances: []xInstance{x}}}, nil
}

// cloudConfig is the part of #cloud-config the fake understands: the JSON
// form the driver writes.
type cloudConfig struct {
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	WriteFiles        []struct {
		Path, Content, Encoding string
	} `json:"write_files"`
}

// ParseUserData reads the driver's #cloud-config (JSON flavour): the
// authorized keys and the files it carries.
func ParseUserData(ud string) (keys []string, files map[string][]byte, err error) {
	if ud == "" {
		return nil, nil, nil
	}
	body, ok := strings.CutPrefix(ud, "#cloud-config\n")
	if !ok {
		return nil, nil, fmt.Errorf("user data does not start with #cloud-config")
	}
	var cc cloudConfig
	if err := json.Unmarshal([]byte(body), &cc); err != nil {
		return nil, nil, fmt.Errorf("user data: %w", err)
	}
	files = map[string][]byte{}
	for _, f := range cc.WriteFiles {
		data := []byte(f.Content)
		if f.Encoding == "b64" {
			if data, err = base64.StdEncoding.DecodeString(f.Content); err != nil {
				return nil, nil, fmt.Errorf("user data file %s: %w", f.Path, err)
			}
		}
		files[f.Path] = data
	}
	return cc.SSHAuthorizedKeys, files, nil
}

func (s *Server) createOnBackend(ctx context.Context, in *Instance, keyMaterial string) (string, error) {
	keys, files, err := ParseUserData(in.UserData)
	if err != nil {
		return "", err
	}
	var all []string
	if keyMaterial != "" {
		all = append(all, strings.TrimSpace(keyMaterial))
	}
	for _, k := range keys {
		if !slices.Contains(all, k) {
			all = append(all, k)
		}
	}
	if len(files) == 0 {
		files = nil
	}
	n, err := s.o.Backend.CreateNode(ctx, provider.CreateRequest{
		Name: in.Tags["Name"], Image: s.o.BackendImage, Size: s.o.BackendSize, AuthorizedKeys: all, Files: files,
	})
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

type xStateChange struct {
	ID       string `xml:"instanceId"`
	Current  xState `xml:"currentState"`
	Previous xState `xml:"previousState"`
}

type terminateResponse struct {
	XMLName xml.Name       `xml:"instancesSet"`
	Items   []xStateChange `xml:"item"`
}

func (s *Server) terminateInstances(ctx context.Context, q query) (any, error) {
	ids := q.list("InstanceId")
	if len(ids) == 0 {
		return nil, &apiError{400, "MissingParameter", "The request must contain the parameter InstanceId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if err := s.checkInstanceID(id); err != nil {
			return nil, err
		}
	}
	var resp terminateResponse
	for _, in := range s.instances {
		if !slices.Contains(ids, in.ID) {
			continue
		}
		prev := in.State
		if prev != "terminated" {
			if in.BackendID != "" {
				if err := s.o.Backend.DestroyNode(context.WithoutCancel(ctx), in.BackendID); err != nil && !isNotFound(err) {
					return nil, &apiError{500, "InternalError", "backend: " + err.Error()}
				}
			}
			in.State, in.polls = "shutting-down", 0
		}
		resp.Items = append(resp.Items, xStateChange{in.ID, xState{stateCodes[in.State], in.State}, xState{stateCodes[prev], prev}})
	}
	return resp, nil
}

func isNotFound(err error) bool { return errors.Is(err, provider.ErrNotFound) }

func (s *Server) keyPair(name string) *KeyPair {
	for _, kp := range s.keyPairs {
		if kp.Name == name {
			return kp
		}
	}
	return nil
}

type xKeyPair struct {
	ID          string `xml:"keyPairId"`
	Name        string `xml:"keyName"`
	Fingerprint string `xml:"keyFingerprint"`
	Type        string `xml:"keyType"`
	PublicKey   string `xml:"publicKey,omitempty"`
}

type describeKeyPairsResponse struct {
	XMLName xml.Name   `xml:"keySet"`
	Items   []xKeyPair `xml:"item"`
}

func (s *Server) describeKeyPairs(_ context.Context, q query) (any, error) {
	names := q.list("KeyName")
	withKey := q.Get("IncludePublicKey") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if s.keyPair(n) == nil {
			return nil, &apiError{400, "InvalidKeyPair.NotFound", fmt.Sprintf("The key pair '%s' does not exist", n)}
		}
	}
	var resp describeKeyPairsResponse
	for _, kp := range s.keyPairs {
		if len(names) > 0 && !slices.Contains(names, kp.Name) {
			continue
		}
		x := xKeyPair{kp.ID, kp.Name, kp.Fingerprint, kp.Type, ""}
		if withKey {
			x.PublicKey = kp.Material
		}
		resp.Items = append(resp.Items, x)
	}
	return resp, nil
}

// Fingerprint computes what EC2 reports for an imported key: MD5 of the
// DER SubjectPublicKeyInfo as colon hex for RSA, padded base64 SHA-256 of
// the SSH wire blob for ED25519.
func Fingerprint(pub ssh.PublicKey) (string, error) {
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		der, err := x509.MarshalPKIXPublicKey(pub.(ssh.CryptoPublicKey).CryptoPublicKey())
		if err != nil {
			return "", err
		}
		sum := md5.Sum(der)
		h := hex.EncodeToString(sum[:])
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		return strings.Join(parts, ":"), nil
	case ssh.KeyAlgoED25519:
		sum := sha256.Sum256(pub.Marshal())
		return base64.StdEncoding.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("unsupported key type %s", pub.Type())
}

func (s *Server) importKeyPair(_ context.Context, q query) (any, error) {
	name := q.Get("KeyName")
	if name == "" || len(name) > 255 {
		return nil, &apiError{400, "MissingParameter", "The request must contain the parameter KeyName"}
	}
	raw, err := base64.StdEncoding.DecodeString(q.Get("PublicKeyMaterial"))
	if err != nil {
		return nil, &apiError{400, "InvalidKeyPair.Format", "Key is not in valid OpenSSH public key format"}
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
	if err != nil {
		return nil, &apiError{400, "InvalidKeyPair.Format", "Key is not in valid OpenSSH public key format"}
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return nil, &apiError{400, "InvalidKeyPair.Format", "Key type is not supported: " + pub.Type()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keyPair(name) != nil {
		return nil, &apiError{400, "InvalidKeyPair.Duplicate", fmt.Sprintf("The keypair already exists: %s", name)}
	}
	typ := "rsa"
	if pub.Type() == ssh.KeyAlgoED25519 {
		typ = "ed25519"
	}
	kp := &KeyPair{ID: s.newID("key"), Name: name, Fingerprint: fp, Type: typ, Material: strings.TrimSpace(string(raw))}
	s.keyPairs = append(s.keyPairs, kp)
	return multi{elem("keyFingerprint", fp), elem("keyName", name), elem("keyPairId", kp.ID)}, nil
}

type xVpc struct {
	ID        string `xml:"vpcId"`
	State     string `xml:"state"`
	CIDR      string `xml:"cidrBlock"`
	IsDefault bool   `xml:"isDefault"`
	OwnerID   string `xml:"ownerId"`
}

type describeVpcsResponse struct {
	XMLName xml.Name `xml:"vpcSet"`
	Items   []xVpc   `xml:"item"`
}

func (s *Server) describeVpcs(_ context.Context, q query) (any, error) {
	filters, err := q.filters("is-default")
	if err != nil {
		return nil, err
	}
	ids := q.list("VpcId")
	s.mu.Lock()
	defer s.mu.Unlock()
	var resp describeVpcsResponse
	for _, v := range s.vpcs {
		if len(ids) > 0 && !slices.Contains(ids, v.id) {
			continue
		}
		ok := true
		for _, f := range filters {
			ok = ok && f.match(strconv.FormatBool(v.isDefault))
		}
		if ok {
			resp.Items = append(resp.Items, xVpc{v.id, "available", v.cidr, v.isDefault, s.o.AccountID})
		}
	}
	return resp, nil
}

type xIPRange struct {
	CIDR        string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xIPv6Range struct {
	CIDR        string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type xPermission struct {
	Protocol string       `xml:"ipProtocol"`
	From     int          `xml:"fromPort"`
	To       int          `xml:"toPort"`
	V4       []xIPRange   `xml:"ipRanges>item"`
	V6       []xIPv6Range `xml:"ipv6Ranges>item"`
}

type xSecurityGroup struct {
	OwnerID     string        `xml:"ownerId"`
	ID          string        `xml:"groupId"`
	Name        string        `xml:"groupName"`
	Description string        `xml:"groupDescription"`
	VPC         string        `xml:"vpcId"`
	Permissions []xPermission `xml:"ipPermissions>item"`
}

type describeSecurityGroupsResponse struct {
	XMLName xml.Name         `xml:"securityGroupInfo"`
	Items   []xSecurityGroup `xml:"item"`
}

func (s *Server) describeSecurityGroups(_ context.Context, q query) (any, error) {
	filters, err := q.filters("group-name", "vpc-id")
	if err != nil {
		return nil, err
	}
	ids := q.list("GroupId")
	s.mu.Lock()
	defer s.mu.Unlock()
	var resp describeSecurityGroupsResponse
	for _, g := range s.groups {
		if len(ids) > 0 && !slices.Contains(ids, g.ID) {
			continue
		}
		ok := true
		for _, f := range filters {
			switch f.name {
			case "group-name":
				ok = ok && f.match(g.Name)
			case "vpc-id":
				ok = ok && f.match(g.VPC)
			}
		}
		if !ok {
			continue
		}
		x := xSecurityGroup{OwnerID: s.o.AccountID, ID: g.ID, Name: g.Name, Description: g.Description, VPC: g.VPC}
		for _, r := range g.Rules {
			p := xPermission{Protocol: r.Protocol, From: r.From, To: r.To}
			if strings.Contains(r.CIDR, ":") {
				p.V6 = []xIPv6Range{{CIDR: r.CIDR}}
			} else {
				p.V4 = []xIPRange{{CIDR: r.CIDR}}
			}
			x.Permissions = append(x.Permissions, p)
		}
		resp.Items = append(resp.Items, x)
	}
	return resp, nil
}

func (s *Server) createSecurityGroup(_ context.Context, q query) (any, error) {
	name, desc, vpcID := q.Get("GroupName"), q.Get("GroupDescription"), q.Get("VpcId")
	if name == "" || desc == "" {
		return nil, &apiError{400, "MissingParameter", "GroupName and GroupDescription are required"}
	}
	if vpcID == "" {
		return nil, &unmodelled{"CreateSecurityGroup without VpcId"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.vpcs, func(v vpc) bool { return v.id == vpcID }) {
		return nil, &apiError{400, "InvalidVpcID.NotFound", fmt.Sprintf("The vpc ID '%s' does not exist", vpcID)}
	}
	for _, g := range s.groups {
		if g.Name == name && g.VPC == vpcID {
			return nil, &apiError{400, "InvalidGroup.Duplicate", fmt.Sprintf("The security group '%s' already exists for VPC '%s'", name, vpcID)}
		}
	}
	g := &SecurityGroup{ID: s.newID("sg"), Name: name, Description: desc, VPC: vpcID}
	s.groups = append(s.groups, g)
	return elem("groupId", g.ID), nil
}

func (s *Server) authorizeIngress(_ context.Context, q query) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.group(q.Get("GroupId"))
	if g == nil {
		return nil, &apiError{400, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", q.Get("GroupId"))}
	}
	var add []Rule
	for i := 1; i <= q.count("IpPermissions"); i++ {
		p := fmt.Sprintf("IpPermissions.%d", i)
		proto := q.Get(p + ".IpProtocol")
		from, to := atoi(q.Get(p+".FromPort")), atoi(q.Get(p+".ToPort"))
		var cidrs []string
		cidrs = append(cidrs, valuesOf(q, p+".IpRanges", "CidrIp")...)
		cidrs = append(cidrs, valuesOf(q, p+".Ipv6Ranges", "CidrIpv6")...)
		if len(cidrs) == 0 {
			return nil, &unmodelled{"ingress rule without CIDR ranges"}
		}
		for _, c := range cidrs {
			r := Rule{Protocol: proto, From: from, To: to, CIDR: c}
			for _, have := range g.Rules {
				if have == r {
					return nil, &apiError{400, "InvalidPermission.Duplicate", fmt.Sprintf("the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", c, strings.ToUpper(proto), from, to)}
				}
			}
			add = append(add, r)
		}
	}
	g.Rules = append(g.Rules, add...)
	return elem("return", "true"), nil
}

// valuesOf returns prefix.N.field for N = 1, 2, ...
func valuesOf(q query, prefix, field string) []string {
	var out []string
	for i := 1; i <= q.count(prefix); i++ {
		if v := q.Get(fmt.Sprintf("%s.%d.%s", prefix, i, field)); v != "" {
			out = append(out, v)
		}
	}
	return out
}
