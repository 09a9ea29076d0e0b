// Package fakeapi is the machinery the token-cloud fakes (digitalocean,
// hetzner, linode, vultr) share: an httptest server with bearer-token
// auth, fault injection (429 with Retry-After, 5xx, garbage bodies, stalls),
// a record of requests, loud failure on requests no fake models, page
// arithmetic, and a store of servers that go from pending to running over a
// few polls or are backed by a real provider.Driver.
//
// Each provider's fake (NAME/fake) supplies what differs: its routes, its
// JSON shapes, its error bodies and its pagination style.
package fakeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// DefaultToken is the bearer token a fake accepts when Options.Token is
// empty.
const DefaultToken = "fake-token-5b1f0c9e"

// Options are the settings every fake shares. The zero value is a fake
// accepting DefaultToken, two items per page, servers running after two
// polls, with no backend.
type Options struct {
	// Token is the one bearer token the fake accepts.
	Token string
	// PageSize caps every page the fake returns, whatever the client asks
	// for, so a handful of servers already spans several pages. Default 2.
	PageSize int
	// PendingPolls is how many reads of a new server (GET of that server)
	// report it as still building. Default 2. Ignored with a Backend.
	PendingPolls int
	// Backend, if set, does the real work: a created server is
	// Backend.CreateNode with the server's name, BackendImage and
	// BackendSize (the API's image and size names mean nothing to the
	// backend), and the SSH keys the API received as AuthorizedKeys.
	// Like a real cloud, the API answers the create at once (pending)
	// while the backend works in the background, so a slow backend (the
	// local provider building its first image) cannot time the client
	// out; reads then report the backend node's state and addresses; a
	// failed backend create is reported through Errorf and shows as
	// state error. Delete waits for a create in progress, then calls
	// Backend.DestroyNode.
	Backend      provider.Driver
	BackendImage provider.Image
	BackendSize  provider.Size
	// ServerLimit, if positive, is how many servers the account may have;
	// creating one more fails with the API's quota error.
	ServerLimit int
	// Errorf is called for a request no fake models (the fake also answers
	// 501), so drift between a driver and its fake fails the test. Pass
	// t.Errorf. Nil logs with the log package.
	Errorf func(format string, args ...any)
}

// Kind names a class of error; each provider's fake turns it into that
// API's own status code and body.
type Kind string

// The error kinds fakeapi itself raises or the fakes share.
const (
	KindUnauthorized Kind = "unauthorized"
	KindNotFound     Kind = "not_found"
	KindRateLimited  Kind = "rate_limited"
	KindServer       Kind = "server_error"
	KindUnmodelled   Kind = "not_implemented"
	KindInvalid      Kind = "invalid"
	KindQuota        Kind = "quota"
)

// Dialect is what one provider's fake tells Server about its API.
type Dialect struct {
	// Name is the provider's name, for messages ("digitalocean").
	Name string
	// WriteError writes the API's own error body with the given status.
	// An empty message means the API's usual message for that kind.
	WriteError func(w http.ResponseWriter, status int, kind Kind, message string)
	// FormatID turns the n-th server (1, 2, ...) into the API's ID form.
	// Nil gives decimal numbers.
	FormatID func(n int) string
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	// Authorized is false when the bearer token was wrong or missing.
	Authorized bool
}

type faultKind int

const (
	faultStatus faultKind = iota
	faultRateLimit
	faultGarbage
	faultStall
)

type fault struct {
	kind       faultKind
	status     int
	retryAfter string
}

// Server is an httptest server speaking one provider's API. Provider fakes
// embed it.
type Server struct {
	opts    Options
	dialect Dialect
	mux     *http.ServeMux
	httpSrv *httptest.Server
	closed  chan struct{}
	once    sync.Once
	// bgCtx ends when the server closes, cancelling backend creates;
	// bg waits for them.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	mu       sync.Mutex
	faults   []fault
	requests []Request
	nextID   int
	nodes    map[string]*Node
	order    []string
	nextKey  int
	keys     []Key
}

// NewServer starts a server for dialect; routes registers the provider's
// handlers on mux (Go 1.22 patterns such as "GET /v2/droplets/{id}").
// Requests matching no route answer 501 and call Options.Errorf.
func NewServer(d Dialect, o Options, routes func(mux *http.ServeMux)) *Server {
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.PageSize <= 0 {
		o.PageSize = 2
	}
	if o.PendingPolls == 0 {
		o.PendingPolls = 2
	}
	if o.Errorf == nil {
		o.Errorf = log.Printf
	}
	if d.FormatID == nil {
		d.FormatID = strconv.Itoa
	}
	s := &Server{opts: o, dialect: d, mux: http.NewServeMux(), closed: make(chan struct{}), nodes: map[string]*Node{}}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	routes(s.mux)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.opts.Errorf("fake %s: unmodelled request %s %s", d.Name, r.Method, r.URL.RequestURI())
		d.WriteError(w, http.StatusNotImplemented, KindUnmodelled, "not modelled by the fake: "+r.Method+" "+r.URL.Path)
	})
	s.httpSrv = httptest.NewServer(s)
	return s
}

// URL is the API root to give the driver as its endpoint
// ("http://127.0.0.1:PORT", no version path).
func (s *Server) URL() string { return s.httpSrv.URL }

// Client returns an *http.Client for the server.
func (s *Server) Client() *http.Client { return s.httpSrv.Client() }

// Options returns the options in force, defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Close stops the server, releasing stalled requests first and waiting
// for backend creates in progress (which it cancels).
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.httpSrv.Close()
	s.bgCancel()
	s.bg.Wait()
}

// FailNext makes the next n requests answer status (a 5xx, typically)
// with the API's error body.
func (s *Server) FailNext(n, status int) { s.addFaults(n, fault{kind: faultStatus, status: status}) }

// RateLimitNext makes the next n requests answer 429 with the given
// Retry-After header (seconds; "" sends none).
func (s *Server) RateLimitNext(n int, retryAfter string) {
	s.addFaults(n, fault{kind: faultRateLimit, status: http.StatusTooManyRequests, retryAfter: retryAfter})
}

// GarbageNext makes the next n requests answer 200 with a body that is not
// JSON, as a misconfigured proxy would.
func (s *Server) GarbageNext(n int) { s.addFaults(n, fault{kind: faultGarbage}) }

// StallNext makes the next n requests hang until the client gives up or
// the server closes.
func (s *Server) StallNext(n int) { s.addFaults(n, fault{kind: faultStall}) }

func (s *Server) addFaults(n int, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CountRequests counts received requests with the given method whose path
// starts with prefix.
func (s *Server) CountRequests(method, prefix string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

// ServeHTTP records the request, applies injected faults, checks the
// token and dispatches to the provider's routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization") == "Bearer "+s.opts.Token
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Authorized: auth})
	var f *fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		switch f.kind {
		case faultStall:
			select {
			case <-r.Context().Done():
			case <-s.closed:
			}
			return
		case faultGarbage:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("<html><body>502 upstream sent garbage</body></html>"))
			return
		case faultRateLimit:
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			s.dialect.WriteError(w, f.status, KindRateLimited, "")
			return
		default:
			s.dialect.WriteError(w, f.status, KindServer, "")
			return
		}
	}
	if !auth {
		s.dialect.WriteError(w, http.StatusUnauthorized, KindUnauthorized, "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ReadJSON decodes the request body into v; on failure it writes the
// API's invalid-input error and returns false.
func (s *Server) ReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		s.dialect.WriteError(w, http.StatusBadRequest, KindInvalid, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

// Error writes the API's error body.
func (s *Server) Error(w http.ResponseWriter, status int, kind Kind, message string) {
	s.dialect.WriteError(w, status, kind, message)
}

// Page is one page of a list.
type Page struct {
	Number  int // 1-based page number served
	PerPage int // items per page actually used
	Pages   int // total pages (at least 1)
	Start   int // index of the first item in the page
	End     int // index after the last item
}

// Paginate computes the page the client asked for from the query's
// pageKey and sizeKey, capping the size at Options.PageSize.
func (s *Server) Paginate(r *http.Request, pageKey, sizeKey string, total int) Page {
	page, _ := strconv.Atoi(r.URL.Query().Get(pageKey))
	per, _ := strconv.Atoi(r.URL.Query().Get(sizeKey))
	return PageOf(page, per, s.opts.PageSize, total)
}

// PageOf computes page number page (1-based; <1 means 1) of total items at
// per items a page, per capped at max (per <1 means max).
func PageOf(page, per, max, total int) Page {
	if per <= 0 || per > max {
		per = max
	}
	if page < 1 {
		page = 1
	}
	pages := (total + per - 1) / per
	if pages < 1 {
		pages = 1
	}
	start := min((page-1)*per, total)
	end := min(start+per, total)
	return Page{Number: page, PerPage: per, Pages: pages, Start: start, End: end}
}

// Node is a server as the fake keeps it; each provider's fake renders it
// in its own JSON.
type Node struct {
	ID     string
	Name   string
	Image  string
	Size   string
	Region string
	// State is where the server is on the common scale; fakes render it
	// as their API's status unless RawStatus is set.
	State provider.State
	// RawStatus, if set, is sent as the API's status verbatim (tests of
	// state mapping seed nodes with it).
	RawStatus string
	// Addresses; set once the server is running (or seeded by tests).
	PublicIPv4  []string
	PrivateIPv4 []string
	PublicIPv6  []string
	// Keys are the authorized_keys lines the API received for this server.
	Keys []string
	// Backend is the backend node's ID when a Backend is configured.
	Backend string

	polls    int
	creating chan struct{} // closed when the backend create has ended
}

// AddNode stores n as is (an ID is assigned when empty) and returns it; for
// tests that seed servers in given states.
func (s *Server) AddNode(n Node) Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.ID == "" {
		s.nextID++
		n.ID = s.dialect.FormatID(s.nextID)
	}
	cp := n
	s.nodes[n.ID] = &cp
	s.order = append(s.order, n.ID)
	return n
}

// CreateNode creates a server, pending in the store; with a Backend the
// backend node is created in the background. It returns the server as
// first seen.
func (s *Server) CreateNode(ctx context.Context, n Node) (Node, error) {
	n.State = provider.StatePending
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	n.ID = s.dialect.FormatID(s.nextID)
	cp := n
	if s.opts.Backend != nil {
		cp.creating = make(chan struct{})
		s.bg.Add(1)
		go s.createOnBackend(&cp)
	}
	s.nodes[n.ID] = &cp
	s.order = append(s.order, n.ID)
	return n, nil
}

// createOnBackend creates the backend node for p (a stored server).
func (s *Server) createOnBackend(p *Node) {
	defer s.bg.Done()
	defer close(p.creating)
	s.mu.Lock()
	req := provider.CreateRequest{Name: p.Name, Image: s.opts.BackendImage, Size: s.opts.BackendSize, AuthorizedKeys: append([]string(nil), p.Keys...)}
	s.mu.Unlock()
	bn, err := s.opts.Backend.CreateNode(s.bgCtx, req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		p.State = provider.StateError
		s.opts.Errorf("fake %s: backend create %s: %v", s.dialect.Name, p.Name, err)
		return
	}
	p.Backend = bn.ID
	applyBackend(p, bn)
}

func applyBackend(n *Node, bn provider.Node) {
	n.State = bn.State
	n.PublicIPv4, n.PublicIPv6 = nil, nil
	for _, ip := range bn.PublicIPs {
		if strings.Contains(ip, ":") {
			n.PublicIPv6 = append(n.PublicIPv6, ip)
		} else {
			n.PublicIPv4 = append(n.PublicIPv4, ip)
		}
	}
	n.PrivateIPv4 = nil
	for _, ip := range bn.PrivateIPs {
		if !strings.Contains(ip, ":") {
			n.PrivateIPv4 = append(n.PrivateIPv4, ip)
		}
	}
}

// AtLimit reports whether creating another server would pass
// Options.ServerLimit.
func (s *Server) AtLimit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.ServerLimit > 0 && len(s.nodes) >= s.opts.ServerLimit
}

// PollNode returns a server as a GET of it sees it, advancing a pending
// server one poll (or asking the Backend). ok is false when there is no
// such server.
func (s *Server) PollNode(ctx context.Context, id string) (n Node, ok bool, err error) {
	s.mu.Lock()
	p, ok := s.nodes[id]
	if !ok {
		s.mu.Unlock()
		return Node{}, false, nil
	}
	backendID := p.Backend
	if p.creating != nil && backendID == "" {
		// Backend create still running, or failed.
		n = *p
		s.mu.Unlock()
		return n, true, nil
	}
	if backendID == "" {
		p.polls++
		if p.State == provider.StatePending && p.RawStatus == "" && p.polls > s.opts.PendingPolls {
			p.State = provider.StateRunning
			p.PublicIPv4 = []string{fmt.Sprintf("203.0.113.%d", s.ipSuffix(id))}
			p.PrivateIPv4 = []string{fmt.Sprintf("10.0.0.%d", s.ipSuffix(id))}
			p.PublicIPv6 = []string{fmt.Sprintf("2001:db8::%x", s.ipSuffix(id))}
		}
		n = *p
		s.mu.Unlock()
		return n, true, nil
	}
	s.mu.Unlock()
	bn, err := s.opts.Backend.GetNode(ctx, backendID)
	if err != nil {
		return Node{}, true, fmt.Errorf("backend get %s: %w", backendID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok = s.nodes[id]; !ok {
		return Node{}, false, nil
	}
	applyBackend(p, bn)
	return *p, true, nil
}

// ipSuffix gives each server a distinct last address byte.
func (s *Server) ipSuffix(id string) int {
	for i, o := range s.order {
		if o == id {
			return i%250 + 2
		}
	}
	return 2
}

// Node returns a server without polling it.
func (s *Server) Node(id string) (Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.nodes[id]
	if !ok {
		return Node{}, false
	}
	return *p, true
}

// NodeKeys returns the authorized_keys lines the server with the given ID
// was created with (none if there is no such server).
func (s *Server) NodeKeys(id string) []string {
	n, _ := s.Node(id)
	return n.Keys
}

// Nodes returns every server, oldest first, without polling.
func (s *Server) Nodes() []Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Node, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.nodes[id])
	}
	return out
}

// DeleteNode removes a server (destroying the backend node first). ok is
// false when there is no such server.
func (s *Server) DeleteNode(ctx context.Context, id string) (ok bool, err error) {
	s.mu.Lock()
	p, ok := s.nodes[id]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if p.creating != nil {
		select {
		case <-p.creating:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	s.mu.Lock()
	backendID := p.Backend
	s.mu.Unlock()
	if backendID != "" {
		if err := s.opts.Backend.DestroyNode(ctx, backendID); err != nil {
			return true, fmt.Errorf("backend destroy %s: %w", backendID, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, id)
	for i, o := range s.order {
		if o == id {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return true, nil
}
