// Package fake is an httptest server speaking the part of the Linode API
// v4 the linode driver uses: images, types, and Linode instances (list,
// get, create, delete), with the API's page/page_size pagination
// answered as {data, page, pages, results}, its error body
// ({"errors": [{"reason": ..., "field": ...}]}) and bearer-token auth.
// Linode takes authorized_keys directly at create; there is no key API.
package fake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

// Options configures the fake; see fakeapi.Options.
type Options = fakeapi.Options

// Server is a fake Linode API. Its URL is the API root to use as the
// driver's endpoint; the API lives under /v4.
type Server struct {
	*fakeapi.Server

	mu       sync.Mutex
	rootPass []string
}

// Regions the fake knows.
var Regions = []string{"us-east", "eu-west", "ap-south"}

// Type is a Linode type (plan) as the fake serves it.
type Type struct {
	ID       string
	Label    string
	Class    string
	MemoryMB int
	DiskMB   int
	VCPUs    int
	Monthly  float64
}

// Image is an image as the fake serves it.
type Image struct {
	ID, Label, Vendor, Created string
	Deprecated                 bool
}

// Types are the types served.
var Types = []Type{
	{ID: "g6-nanode-1", Label: "Nanode 1GB", Class: "nanode", MemoryMB: 1024, DiskMB: 25600, VCPUs: 1, Monthly: 5},
	{ID: "g6-standard-1", Label: "Linode 2GB", Class: "standard", MemoryMB: 2048, DiskMB: 51200, VCPUs: 1, Monthly: 12},
	{ID: "g6-standard-2", Label: "Linode 4GB", Class: "standard", MemoryMB: 4096, DiskMB: 81920, VCPUs: 2, Monthly: 24},
	{ID: "g6-dedicated-2", Label: "Dedicated 4GB", Class: "dedicated", MemoryMB: 4096, DiskMB: 81920, VCPUs: 2, Monthly: 36},
}

// Images are the images served.
var Images = []Image{
	{ID: "linode/debian12", Label: "Debian 12", Vendor: "Debian", Created: "2023-06-12T00:00:00"},
	{ID: "linode/debian11", Label: "Debian 11", Vendor: "Debian", Created: "2021-08-14T00:00:00"},
	{ID: "linode/ubuntu24.04", Label: "Ubuntu 24.04 LTS", Vendor: "Ubuntu", Created: "2024-04-25T00:00:00"},
	{ID: "linode/centos7", Label: "CentOS 7", Vendor: "CentOS", Created: "2014-07-08T00:00:00", Deprecated: true},
}

// New starts a fake Linode API. Close it when done.
func New(o Options) *Server {
	s := &Server{}
	d := fakeapi.Dialect{Name: "linode", WriteError: writeError}
	s.Server = fakeapi.NewServer(d, o, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v4/images", s.listImages)
		mux.HandleFunc("GET /v4/linode/types", s.listTypes)
		mux.HandleFunc("GET /v4/linode/instances", s.listInstances)
		mux.HandleFunc("GET /v4/linode/instances/{id}", s.getInstance)
		mux.HandleFunc("POST /v4/linode/instances", s.createInstance)
		mux.HandleFunc("DELETE /v4/linode/instances/{id}", s.deleteInstance)
	})
	return s
}

// RootPasswords returns the root_pass values create requests carried, so a
// test can check the driver sends a strong one and leaks it nowhere.
func (s *Server) RootPasswords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rootPass...)
}

// writeError writes Linode's error body.
func writeError(w http.ResponseWriter, status int, kind fakeapi.Kind, msg string) {
	field := ""
	switch kind {
	case fakeapi.KindUnauthorized:
		msg = "Invalid Token"
	case fakeapi.KindNotFound:
		msg = "Not found"
	case fakeapi.KindRateLimited:
		msg = "Too Many Requests"
	case fakeapi.KindServer:
		msg = "Please try again later."
	default:
		// Field-specific messages are given as "field: reason".
		if f, r, ok := strings.Cut(msg, ": "); ok && !strings.Contains(f, " ") {
			field, msg = f, r
		}
	}
	reason := map[string]string{"reason": msg}
	if field != "" {
		reason["field"] = field
	}
	fakeapi.WriteJSON(w, status, map[string]any{"errors": []map[string]string{reason}})
}

// page renders Linode's paginated envelope.
func page[T any](s *Server, r *http.Request, all []T) map[string]any {
	p := s.Paginate(r, "page", "page_size", len(all))
	data := all[p.Start:p.End]
	if data == nil {
		data = []T{}
	}
	return map[string]any{"data": data, "page": p.Number, "pages": p.Pages, "results": len(all)}
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	var all []map[string]any
	for _, im := range Images {
		all = append(all, map[string]any{
			"id": im.ID, "label": im.Label, "vendor": im.Vendor, "created": im.Created, "updated": im.Created,
			"description": "", "type": "manual", "is_public": true, "deprecated": im.Deprecated, "size": 1500,
			"created_by": "linode", "status": "available", "capabilities": []string{"cloud-init"}, "eol": nil, "expiry": nil,
		})
	}
	fakeapi.WriteJSON(w, 200, page(s, r, all))
}

func typeJSON(t Type) map[string]any {
	return map[string]any{
		"id": t.ID, "label": t.Label, "class": t.Class, "memory": t.MemoryMB, "disk": t.DiskMB, "vcpus": t.VCPUs,
		"gpus": 0, "network_out": 1000, "transfer": 1000, "successor": nil,
		"price":         map[string]float64{"hourly": t.Monthly / 720, "monthly": t.Monthly},
		"addons":        map[string]any{"backups": map[string]any{"price": map[string]float64{"hourly": 0.003, "monthly": 2}}},
		"region_prices": []any{},
	}
}

func (s *Server) listTypes(w http.ResponseWriter, r *http.Request) {
	var all []map[string]any
	for _, t := range Types {
		all = append(all, typeJSON(t))
	}
	fakeapi.WriteJSON(w, 200, page(s, r, all))
}

// status renders a node's state as a Linode status.
func status(n fakeapi.Node) string {
	if n.RawStatus != "" {
		return n.RawStatus
	}
	switch n.State {
	case provider.StatePending:
		return "provisioning"
	case provider.StateRunning:
		return "running"
	case provider.StateStopped:
		return "offline"
	case provider.StateTerminated:
		return "deleting"
	}
	return "unknown"
}

func instance(n fakeapi.Node) map[string]any {
	id, _ := strconv.Atoi(n.ID)
	ipv4 := append(append([]string{}, n.PublicIPv4...), n.PrivateIPv4...)
	var ipv6 any
	if len(n.PublicIPv6) > 0 {
		ipv6 = n.PublicIPv6[0] + "/128"
	}
	var t Type
	for _, c := range Types {
		if c.ID == n.Size {
			t = c
		}
	}
	return map[string]any{
		"id": id, "label": n.Name, "region": n.Region, "image": n.Image, "type": n.Size, "status": status(n),
		"ipv4": ipv4, "ipv6": ipv6, "created": "2026-01-01T00:00:00", "updated": "2026-01-01T00:00:00",
		"hypervisor": "kvm", "watchdog_enabled": true, "tags": []string{}, "group": "",
		"specs":   map[string]int{"disk": t.DiskMB, "memory": t.MemoryMB, "vcpus": t.VCPUs, "transfer": 1000, "gpus": 0},
		"alerts":  map[string]int{"cpu": 90, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80},
		"backups": map[string]any{"enabled": false, "available": false, "schedule": map[string]any{"day": nil, "window": nil}, "last_successful": nil},
	}
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	var all []map[string]any
	for _, n := range s.Nodes() {
		all = append(all, instance(n))
	}
	fakeapi.WriteJSON(w, 200, page(s, r, all))
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	n, ok, err := s.PollNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		fakeapi.WriteJSON(w, 200, instance(n))
	}
}

func (s *Server) createInstance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Region         string   `json:"region"`
		Type           string   `json:"type"`
		Label          string   `json:"label"`
		Image          string   `json:"image"`
		RootPass       string   `json:"root_pass"`
		AuthorizedKeys []string `json:"authorized_keys"`
		Booted         *bool    `json:"booted"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	s.rootPass = append(s.rootPass, req.RootPass)
	s.mu.Unlock()
	bad := func(msg string) { writeError(w, 400, fakeapi.KindInvalid, msg) }
	switch {
	case !slices.Contains(Regions, req.Region):
		bad("region: region is not valid")
	case !slices.ContainsFunc(Types, func(t Type) bool { return t.ID == req.Type }):
		bad("type: A valid plan type by that ID was not found")
	case !slices.ContainsFunc(Images, func(im Image) bool { return im.ID == req.Image }):
		bad("image: No image with that ID exists")
	case len(req.Label) < 3 || len(req.Label) > 64:
		bad("label: Length must be 3-64 characters")
	case len(req.RootPass) < 11:
		bad("root_pass: Password does not meet strength requirement.")
	case slices.ContainsFunc(s.Nodes(), func(n fakeapi.Node) bool { return n.Name == req.Label }):
		bad("label: Label must be unique among your linodes")
	case s.AtLimit():
		bad("Account Limit reached. Please open a support ticket.")
	default:
		n, err := s.CreateNode(r.Context(), fakeapi.Node{Name: req.Label, Image: req.Image, Size: req.Type, Region: req.Region, Keys: req.AuthorizedKeys})
		if err != nil {
			writeError(w, 500, fakeapi.KindServer, "")
			s.Options().Errorf("linode fake: %v", err)
			return
		}
		fakeapi.WriteJSON(w, 200, instance(n))
	}
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	ok, err := s.DeleteNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("linode fake: %v", err)
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		fakeapi.WriteJSON(w, 200, map[string]any{})
	}
}
