// Package fake is an httptest server speaking the part of DigitalOcean's
// API v2 the digitalocean driver uses: distribution images, sizes,
// droplets (list, get, create, delete) and account SSH keys, with the
// API's page/per_page pagination and links.pages.next, its error body
// ({"id": ..., "message": ...}) and bearer-token auth.
package fake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

// Options configures the fake; see fakeapi.Options.
type Options = fakeapi.Options

// Server is a fake DigitalOcean API. Its URL is the API root to use as the
// driver's endpoint; the API lives under /v2.
type Server struct {
	*fakeapi.Server
}

// Regions the fake knows.
var Regions = []string{"nyc3", "ams3", "fra1"}

// Image is a distribution image as the fake serves it.
type Image struct {
	ID           int      `json:"id"`
	Name         string   `json:"name"`
	Distribution string   `json:"distribution"`
	Slug         string   `json:"slug"`
	Public       bool     `json:"public"`
	Regions      []string `json:"regions"`
	CreatedAt    string   `json:"created_at"`
	Type         string   `json:"type"`
	MinDiskSize  int      `json:"min_disk_size"`
	Status       string   `json:"status"`
}

// Size is a droplet size as the fake serves it.
type Size struct {
	Slug         string   `json:"slug"`
	Memory       int      `json:"memory"`
	VCPUs        int      `json:"vcpus"`
	Disk         int      `json:"disk"`
	Transfer     float64  `json:"transfer"`
	PriceMonthly float64  `json:"price_monthly"`
	PriceHourly  float64  `json:"price_hourly"`
	Regions      []string `json:"regions"`
	Available    bool     `json:"available"`
	Description  string   `json:"description"`
}

// Images are the distribution images served.
var Images = []Image{
	{ID: 151000001, Name: "12 x64", Distribution: "Debian", Slug: "debian-12-x64", CreatedAt: "2025-06-01T10:00:00Z"},
	{ID: 151000002, Name: "11 x64", Distribution: "Debian", Slug: "debian-11-x64", CreatedAt: "2024-06-01T10:00:00Z"},
	{ID: 151000003, Name: "24.04 (LTS) x64", Distribution: "Ubuntu", Slug: "ubuntu-24-04-x64", CreatedAt: "2025-05-01T10:00:00Z"},
	{ID: 151000004, Name: "22.04 (LTS) x64", Distribution: "Ubuntu", Slug: "ubuntu-22-04-x64", CreatedAt: "2024-05-01T10:00:00Z"},
	{ID: 151000005, Name: "41 x64", Distribution: "Fedora", Slug: "fedora-41-x64", CreatedAt: "2025-01-01T10:00:00Z"},
}

// Sizes are the sizes served; one is unavailable.
var Sizes = []Size{
	{Slug: "s-1vcpu-512mb-10gb", Memory: 512, VCPUs: 1, Disk: 10, PriceMonthly: 4, Available: true},
	{Slug: "s-1vcpu-1gb", Memory: 1024, VCPUs: 1, Disk: 25, PriceMonthly: 6, Available: true},
	{Slug: "s-1vcpu-2gb", Memory: 2048, VCPUs: 1, Disk: 50, PriceMonthly: 12, Available: true},
	{Slug: "s-2vcpu-4gb", Memory: 4096, VCPUs: 2, Disk: 80, PriceMonthly: 24, Available: true},
	{Slug: "s-8vcpu-16gb-retired", Memory: 16384, VCPUs: 8, Disk: 320, PriceMonthly: 96, Available: false},
}

// New starts a fake DigitalOcean API. Close it when done.
func New(o Options) *Server {
	s := &Server{}
	d := fakeapi.Dialect{Name: "digitalocean", WriteError: writeError}
	s.Server = fakeapi.NewServer(d, o, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v2/images", s.listImages)
		mux.HandleFunc("GET /v2/sizes", s.listSizes)
		mux.HandleFunc("GET /v2/droplets", s.listDroplets)
		mux.HandleFunc("GET /v2/droplets/{id}", s.getDroplet)
		mux.HandleFunc("POST /v2/droplets", s.createDroplet)
		mux.HandleFunc("DELETE /v2/droplets/{id}", s.deleteDroplet)
		mux.HandleFunc("GET /v2/account/keys/{key}", s.getKey)
		mux.HandleFunc("POST /v2/account/keys", s.createKey)
	})
	return s
}

// writeError writes DigitalOcean's error body.
func writeError(w http.ResponseWriter, status int, kind fakeapi.Kind, msg string) {
	id := string(kind)
	switch kind {
	case fakeapi.KindUnauthorized:
		id, msg = "Unauthorized", "Unable to authenticate you"
	case fakeapi.KindNotFound:
		if msg == "" {
			msg = "The resource you were accessing could not be found."
		}
	case fakeapi.KindRateLimited:
		id, msg = "too_many_requests", "API Rate limit exceeded."
	case fakeapi.KindServer:
		msg = "Server was unable to give you a response."
	case fakeapi.KindInvalid, fakeapi.KindQuota:
		id = "unprocessable_entity"
	}
	fakeapi.WriteJSON(w, status, map[string]string{"id": id, "message": msg, "request_id": "fake-request"})
}

// links renders DigitalOcean's links object: absolute URLs for the
// neighbouring pages, as the API sends them.
func links(r *http.Request, p fakeapi.Page) map[string]any {
	pageURL := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(p.PerPage))
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
		return u.String()
	}
	pages := map[string]string{}
	if p.Number > 1 {
		pages["first"] = pageURL(1)
		pages["prev"] = pageURL(p.Number - 1)
	}
	if p.Number < p.Pages {
		pages["next"] = pageURL(p.Number + 1)
		pages["last"] = pageURL(p.Pages)
	}
	return map[string]any{"pages": pages}
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("type") != "distribution" {
		s.Options().Errorf("digitalocean fake: images listed without type=distribution: %s", r.URL.RawQuery)
	}
	all := make([]Image, len(Images))
	for i, im := range Images {
		im.Public, im.Regions, im.Type, im.MinDiskSize, im.Status = true, Regions, "base", 10, "available"
		all[i] = im
	}
	p := s.Paginate(r, "page", "per_page", len(all))
	fakeapi.WriteJSON(w, 200, map[string]any{"images": all[p.Start:p.End], "links": links(r, p), "meta": map[string]int{"total": len(all)}})
}

func (s *Server) listSizes(w http.ResponseWriter, r *http.Request) {
	all := make([]Size, len(Sizes))
	for i, sz := range Sizes {
		sz.Regions, sz.Transfer, sz.PriceHourly, sz.Description = Regions, 1, sz.PriceMonthly/672, "Basic"
		all[i] = sz
	}
	p := s.Paginate(r, "page", "per_page", len(all))
	fakeapi.WriteJSON(w, 200, map[string]any{"sizes": all[p.Start:p.End], "links": links(r, p), "meta": map[string]int{"total": len(all)}})
}

// status renders a node's state as a droplet status.
func status(n fakeapi.Node) string {
	if n.RawStatus != "" {
		return n.RawStatus
	}
	switch n.State {
	case provider.StatePending:
		return "new"
	case provider.StateRunning:
		return "active"
	case provider.StateStopped:
		return "off"
	case provider.StateTerminated:
		return "archive"
	}
	return "unknown"
}

func droplet(n fakeapi.Node) map[string]any {
	id, _ := strconv.Atoi(n.ID)
	v4 := []map[string]string{}
	for _, ip := range n.PublicIPv4 {
		v4 = append(v4, map[string]string{"ip_address": ip, "netmask": "255.255.240.0", "gateway": "203.0.113.1", "type": "public"})
	}
	for _, ip := range n.PrivateIPv4 {
		v4 = append(v4, map[string]string{"ip_address": ip, "netmask": "255.255.0.0", "gateway": "", "type": "private"})
	}
	v6 := []map[string]any{}
	for _, ip := range n.PublicIPv6 {
		v6 = append(v6, map[string]any{"ip_address": ip, "netmask": 64, "gateway": "2001:db8::1", "type": "public"})
	}
	var img Image
	for _, im := range Images {
		if im.Slug == n.Image {
			img = im
		}
	}
	var size Size
	for _, sz := range Sizes {
		if sz.Slug == n.Size {
			size = sz
		}
	}
	return map[string]any{
		"id": id, "name": n.Name, "memory": size.Memory, "vcpus": size.VCPUs, "disk": size.Disk,
		"locked": false, "status": status(n), "created_at": "2026-01-01T00:00:00Z",
		"image": img, "size": size, "size_slug": n.Size,
		"networks": map[string]any{"v4": v4, "v6": v6},
		"region":   map[string]any{"slug": n.Region, "name": n.Region, "available": true},
		"tags":     []string{},
	}
}

func (s *Server) listDroplets(w http.ResponseWriter, r *http.Request) {
	nodes := s.Nodes()
	p := s.Paginate(r, "page", "per_page", len(nodes))
	out := []map[string]any{}
	for _, n := range nodes[p.Start:p.End] {
		out = append(out, droplet(n))
	}
	fakeapi.WriteJSON(w, 200, map[string]any{"droplets": out, "links": links(r, p), "meta": map[string]int{"total": len(nodes)}})
}

func (s *Server) getDroplet(w http.ResponseWriter, r *http.Request) {
	n, ok, err := s.PollNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		fakeapi.WriteJSON(w, 200, map[string]any{"droplet": droplet(n)})
	}
}

type createRequest struct {
	Name    string            `json:"name"`
	Region  string            `json:"region"`
	Size    string            `json:"size"`
	Image   json.RawMessage   `json:"image"`
	SSHKeys []json.RawMessage `json:"ssh_keys"`
	IPv6    bool              `json:"ipv6"`
	Tags    []string          `json:"tags"`
}

func (s *Server) createDroplet(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !s.ReadJSON(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeError(w, 422, fakeapi.KindInvalid, "Name is required.")
		return
	}
	if !slices.Contains(Regions, req.Region) {
		writeError(w, 422, fakeapi.KindInvalid, "You specified an invalid region for Droplet creation.")
		return
	}
	sizeOK := slices.ContainsFunc(Sizes, func(sz Size) bool { return sz.Slug == req.Size && sz.Available })
	if !sizeOK {
		writeError(w, 422, fakeapi.KindInvalid, "You specified an invalid size for Droplet creation.")
		return
	}
	// The image is a slug or a numeric ID.
	var slug string
	var imageID int
	if json.Unmarshal(req.Image, &slug) != nil {
		_ = json.Unmarshal(req.Image, &imageID)
	}
	image := ""
	for _, im := range Images {
		if (slug != "" && im.Slug == slug) || (slug == "" && im.ID == imageID) {
			image = im.Slug
		}
	}
	if image == "" {
		writeError(w, 422, fakeapi.KindInvalid, "You specified an invalid image for Droplet creation.")
		return
	}
	// ssh_keys entries are fingerprints or numeric IDs of account keys.
	var keys []string
	for _, raw := range req.SSHKeys {
		var fp string
		var id int
		if json.Unmarshal(raw, &fp) != nil {
			_ = json.Unmarshal(raw, &id)
		}
		k, ok := s.FindKey(func(k fakeapi.Key) bool { return k.Fingerprint == fp || k.ID == strconv.Itoa(id) })
		if !ok {
			writeError(w, 422, fakeapi.KindInvalid, fmt.Sprintf("ssh_keys: %s is not a key of this account.", raw))
			return
		}
		keys = append(keys, k.PublicKey)
	}
	if s.AtLimit() {
		writeError(w, 422, fakeapi.KindQuota, "creating this/these droplet(s) will exceed your droplet limit")
		return
	}
	n, err := s.CreateNode(r.Context(), fakeapi.Node{Name: req.Name, Image: image, Size: req.Size, Region: req.Region, Keys: keys})
	if err != nil {
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("digitalocean fake: %v", err)
		return
	}
	fakeapi.WriteJSON(w, 202, map[string]any{
		"droplet": droplet(n),
		"links":   map[string]any{"actions": []map[string]any{{"id": 1, "rel": "create", "href": "http://" + r.Host + "/v2/actions/1"}}},
	})
}

func (s *Server) deleteDroplet(w http.ResponseWriter, r *http.Request) {
	ok, err := s.DeleteNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("digitalocean fake: %v", err)
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func keyJSON(k fakeapi.Key) map[string]any {
	id, _ := strconv.Atoi(k.ID)
	return map[string]any{"id": id, "fingerprint": k.Fingerprint, "public_key": k.PublicKey, "name": k.Name}
}

// getKey looks a key up by ID or fingerprint, as the API allows.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	want := r.PathValue("key")
	k, ok := s.FindKey(func(k fakeapi.Key) bool { return k.ID == want || k.Fingerprint == want })
	if !ok {
		writeError(w, 404, fakeapi.KindNotFound, "")
		return
	}
	fakeapi.WriteJSON(w, 200, map[string]any{"ssh_key": keyJSON(k)})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string `json:"name"`
		PublicKey string `json:"public_key"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeError(w, 422, fakeapi.KindInvalid, "Name is required.")
		return
	}
	k, err := s.AddKey(req.Name, req.PublicKey)
	switch {
	case errors.Is(err, fakeapi.ErrDuplicateKey):
		writeError(w, 422, fakeapi.KindInvalid, "SSH Key is already in use on your account")
	case err != nil:
		writeError(w, 422, fakeapi.KindInvalid, "Key invalid, key should be of the format `type key [comment]`")
	default:
		fakeapi.WriteJSON(w, 201, map[string]any{"ssh_key": keyJSON(k)})
	}
}
