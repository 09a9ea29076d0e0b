// Package fake is an httptest server speaking the part of the Hetzner
// Cloud API v1 the hetzner driver uses: system images, server types with
// prices, servers (list, get, create, delete) and SSH keys, with the API's
// page/per_page pagination reported in meta.pagination, its error body
// ({"error": {"code": ..., "message": ...}}) and bearer-token auth.
package fake

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

// Options configures the fake; see fakeapi.Options.
type Options = fakeapi.Options

// Server is a fake Hetzner Cloud API. Its URL is the API root to use as
// the driver's endpoint; the API lives under /v1.
type Server struct {
	*fakeapi.Server
}

// Locations the fake knows.
var Locations = []string{"fsn1", "nbg1", "hel1"}

// ServerType is a server type as the fake keeps it.
type ServerType struct {
	ID       int64
	Name     string
	Cores    int
	MemoryGB float32
	DiskGB   int
	// Monthly is the gross monthly price in EUR, the same everywhere.
	Monthly string
}

// Image is a system image as the fake keeps it.
type Image struct {
	ID        int64
	Name      string
	Flavor    string
	Version   string
	Created   string
	Arch      string
	OtherType string // "" for system images; "snapshot" etc. to test filtering
}

// ServerTypes are the server types served.
var ServerTypes = []ServerType{
	{ID: 104, Name: "cx22", Cores: 2, MemoryGB: 4, DiskGB: 40, Monthly: "4.5900"},
	{ID: 105, Name: "cx32", Cores: 4, MemoryGB: 8, DiskGB: 80, Monthly: "7.4900"},
	{ID: 106, Name: "cx42", Cores: 8, MemoryGB: 16, DiskGB: 160, Monthly: "18.5900"},
	{ID: 45, Name: "cax11", Cores: 2, MemoryGB: 4, DiskGB: 40, Monthly: "4.5900"},
}

// Images are the images served.
var Images = []Image{
	{ID: 114690387, Name: "debian-12", Flavor: "debian", Version: "12", Created: "2023-06-13T06:00:02Z", Arch: "x86"},
	{ID: 67794396, Name: "debian-11", Flavor: "debian", Version: "11", Created: "2021-08-16T11:12:01Z", Arch: "x86"},
	{ID: 161547269, Name: "ubuntu-24.04", Flavor: "ubuntu", Version: "24.04", Created: "2024-04-25T10:00:00Z", Arch: "x86"},
	{ID: 114690389, Name: "debian-12", Flavor: "debian", Version: "12", Created: "2023-06-13T06:00:02Z", Arch: "arm"},
	{ID: 99999901, Name: "my-snapshot", Flavor: "debian", Version: "12", Created: "2025-01-01T00:00:00Z", Arch: "x86", OtherType: "snapshot"},
}

// New starts a fake Hetzner Cloud API. Close it when done.
func New(o Options) *Server {
	s := &Server{}
	d := fakeapi.Dialect{Name: "hetzner", WriteError: writeError}
	s.Server = fakeapi.NewServer(d, o, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v1/images", s.listImages)
		mux.HandleFunc("GET /v1/server_types", s.listServerTypes)
		mux.HandleFunc("GET /v1/servers", s.listServers)
		mux.HandleFunc("GET /v1/servers/{id}", s.getServer)
		mux.HandleFunc("POST /v1/servers", s.createServer)
		mux.HandleFunc("DELETE /v1/servers/{id}", s.deleteServer)
		mux.HandleFunc("GET /v1/ssh_keys", s.listKeys)
		mux.HandleFunc("POST /v1/ssh_keys", s.createKey)
	})
	return s
}

// writeError writes Hetzner's error body.
func writeError(w http.ResponseWriter, status int, kind fakeapi.Kind, msg string) {
	code := string(kind)
	switch kind {
	case fakeapi.KindUnauthorized:
		msg = "unable to authenticate"
	case fakeapi.KindRateLimited:
		code, msg = "rate_limit_exceeded", "limit of 3600 requests per hour reached"
	case fakeapi.KindServer:
		code, msg = "server_error", "error within the API backend"
	case fakeapi.KindInvalid:
		code = "invalid_input"
	case fakeapi.KindQuota:
		code = "resource_limit_exceeded"
	case fakeapi.KindNotFound:
		if msg == "" {
			msg = "resource not found"
		}
	}
	fakeapi.WriteJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg, "details": map[string]any{}}})
}

func meta(p fakeapi.Page, total int) map[string]any {
	var prev, next any
	if p.Number > 1 {
		prev = p.Number - 1
	}
	if p.Number < p.Pages {
		next = p.Number + 1
	}
	return map[string]any{"pagination": map[string]any{
		"page": p.Number, "per_page": p.PerPage, "previous_page": prev, "next_page": next,
		"last_page": p.Pages, "total_entries": total,
	}}
}

func location(name string) map[string]any {
	return map[string]any{"id": slices.Index(Locations, name) + 1, "name": name, "description": name, "country": "DE", "city": name, "network_zone": "eu-central"}
}

func imageJSON(im Image) map[string]any {
	typ := "system"
	if im.OtherType != "" {
		typ = im.OtherType
	}
	return map[string]any{
		"id": im.ID, "type": typ, "status": "available", "name": im.Name, "description": im.Flavor + " " + im.Version,
		"image_size": nil, "disk_size": 5, "created": im.Created, "created_from": nil, "bound_to": nil,
		"os_flavor": im.Flavor, "os_version": im.Version, "rapid_deploy": true, "protection": map[string]bool{"delete": false},
		"deprecated": nil, "deleted": nil, "labels": map[string]string{}, "architecture": im.Arch,
	}
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var match []map[string]any
	for _, im := range Images {
		typ := "system"
		if im.OtherType != "" {
			typ = im.OtherType
		}
		if types := q["type"]; len(types) > 0 && !slices.Contains(types, typ) {
			continue
		}
		if arch := q["architecture"]; len(arch) > 0 && !slices.Contains(arch, im.Arch) {
			continue
		}
		match = append(match, imageJSON(im))
	}
	p := s.Paginate(r, "page", "per_page", len(match))
	fakeapi.WriteJSON(w, 200, map[string]any{"images": match[p.Start:p.End], "meta": meta(p, len(match))})
}

func serverTypeJSON(st ServerType) map[string]any {
	arch := "x86"
	if st.Name[:3] == "cax" {
		arch = "arm"
	}
	var prices, locs []map[string]any
	for i, l := range Locations {
		prices = append(prices, map[string]any{
			"location":      l,
			"price_hourly":  map[string]string{"net": "0.0060", "gross": "0.0071"},
			"price_monthly": map[string]string{"net": st.Monthly, "gross": st.Monthly},
		})
		locs = append(locs, map[string]any{"id": i + 1, "name": l, "deprecation": nil, "available": true, "recommended": true})
	}
	return map[string]any{
		"id": st.ID, "name": st.Name, "description": st.Name, "category": "shared", "cores": st.Cores, "memory": st.MemoryGB, "disk": st.DiskGB,
		"deprecated": false, "deprecation": nil, "prices": prices, "storage_type": "local", "cpu_type": "shared",
		"architecture": arch, "locations": locs,
	}
}

func (s *Server) listServerTypes(w http.ResponseWriter, r *http.Request) {
	var all []map[string]any
	for _, st := range ServerTypes {
		all = append(all, serverTypeJSON(st))
	}
	p := s.Paginate(r, "page", "per_page", len(all))
	fakeapi.WriteJSON(w, 200, map[string]any{"server_types": all[p.Start:p.End], "meta": meta(p, len(all))})
}

// status renders a node's state as a Hetzner server status.
func status(n fakeapi.Node) string {
	if n.RawStatus != "" {
		return n.RawStatus
	}
	switch n.State {
	case provider.StatePending:
		return "initializing"
	case provider.StateRunning:
		return "running"
	case provider.StateStopped:
		return "off"
	case provider.StateTerminated:
		return "deleting"
	}
	return "unknown"
}

func serverJSON(n fakeapi.Node) map[string]any {
	id, _ := strconv.ParseInt(n.ID, 10, 64)
	ipv4 := map[string]any{"id": id + 1000, "ip": "", "blocked": false, "dns_ptr": ""}
	if len(n.PublicIPv4) > 0 {
		ipv4["ip"] = n.PublicIPv4[0]
	}
	// The API reports the server's IPv6 /64 network, not an address.
	var ipv6 any
	if len(n.PublicIPv6) > 0 {
		_, network, err := net.ParseCIDR(n.PublicIPv6[0] + "/64")
		if err == nil {
			ipv6 = map[string]any{"id": id + 2000, "ip": network.String(), "blocked": false, "dns_ptr": []any{}}
		}
	}
	var private []map[string]any
	for _, ip := range n.PrivateIPv4 {
		private = append(private, map[string]any{"network": 4711, "ip": ip, "alias_ips": []string{}, "mac_address": "86:00:00:2a:7d:e0"})
	}
	var st ServerType
	for _, t := range ServerTypes {
		if t.Name == n.Size {
			st = t
		}
	}
	if st.Name == "" {
		st = ServerTypes[0]
	}
	var image any
	for _, im := range Images {
		if im.Name == n.Image && im.Arch == "x86" {
			image = imageJSON(im)
		}
	}
	loc := n.Region
	if loc == "" {
		loc = Locations[0]
	}
	return map[string]any{
		"id": id, "name": n.Name, "status": status(n), "created": "2026-01-01T00:00:00+00:00",
		"public_net":  map[string]any{"ipv4": ipv4, "ipv6": ipv6, "floating_ips": []int{}, "firewalls": []any{}},
		"private_net": private, "server_type": serverTypeJSON(st),
		"datacenter": map[string]any{"id": 4, "name": loc + "-dc14", "description": loc, "location": location(loc)},
		"location":   location(loc),
		"image":      image, "iso": nil, "rescue_enabled": false, "locked": false, "backup_window": nil,
		"outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 0,
		"protection": map[string]bool{"delete": false, "rebuild": false}, "labels": map[string]string{},
		"volumes": []int{}, "load_balancers": []int{}, "primary_disk_size": st.DiskGB, "placement_group": nil,
	}
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request) {
	nodes := s.Nodes()
	p := s.Paginate(r, "page", "per_page", len(nodes))
	out := []map[string]any{}
	for _, n := range nodes[p.Start:p.End] {
		out = append(out, serverJSON(n))
	}
	fakeapi.WriteJSON(w, 200, map[string]any{"servers": out, "meta": meta(p, len(nodes))})
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, ok, err := s.PollNode(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, fmt.Sprintf("server with ID '%s' not found", id))
	default:
		fakeapi.WriteJSON(w, 200, map[string]any{"server": serverJSON(n)})
	}
}

func action(id int64, command string, serverID int64) map[string]any {
	return map[string]any{
		"id": id, "command": command, "status": "running", "progress": 0, "started": time.Now().UTC().Format(time.RFC3339),
		"finished": nil, "error": nil, "resources": []map[string]any{{"id": serverID, "type": "server"}},
	}
}

func (s *Server) createServer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name       string  `json:"name"`
		ServerType any     `json:"server_type"`
		Image      any     `json:"image"`
		SSHKeys    []int64 `json:"ssh_keys"`
		Location   string  `json:"location"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	idOrName := func(v any) string {
		if f, ok := v.(float64); ok {
			return strconv.FormatInt(int64(f), 10)
		}
		str, _ := v.(string)
		return str
	}
	typ, img := idOrName(req.ServerType), idOrName(req.Image)
	var st *ServerType
	for i, t := range ServerTypes {
		if t.Name == typ || strconv.FormatInt(t.ID, 10) == typ {
			st = &ServerTypes[i]
		}
	}
	if st == nil {
		writeError(w, 400, fakeapi.KindInvalid, "invalid input in field 'server_type'")
		return
	}
	var im *Image
	for i, c := range Images {
		if (c.Name == img && c.Arch == "x86" && c.OtherType == "") || strconv.FormatInt(c.ID, 10) == img {
			im = &Images[i]
		}
	}
	if im == nil {
		writeError(w, 400, fakeapi.KindInvalid, "invalid input in field 'image'")
		return
	}
	if req.Name == "" {
		writeError(w, 400, fakeapi.KindInvalid, "invalid input in field 'name'")
		return
	}
	if req.Location != "" && !slices.Contains(Locations, req.Location) {
		writeError(w, 400, fakeapi.KindInvalid, "invalid input in field 'location'")
		return
	}
	if slices.ContainsFunc(s.Nodes(), func(n fakeapi.Node) bool { return n.Name == req.Name }) {
		writeError(w, 409, "uniqueness_error", "server name is already used")
		return
	}
	var keys []string
	for _, id := range req.SSHKeys {
		k, ok := s.FindKey(func(k fakeapi.Key) bool { return k.ID == strconv.FormatInt(id, 10) })
		if !ok {
			writeError(w, 400, fakeapi.KindInvalid, fmt.Sprintf("ssh key %d not found", id))
			return
		}
		keys = append(keys, k.PublicKey)
	}
	if s.AtLimit() {
		writeError(w, 403, fakeapi.KindQuota, "server limit exceeded")
		return
	}
	n, err := s.CreateNode(r.Context(), fakeapi.Node{Name: req.Name, Image: im.Name, Size: st.Name, Region: req.Location, Keys: keys})
	if err != nil {
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("hetzner fake: %v", err)
		return
	}
	id, _ := strconv.ParseInt(n.ID, 10, 64)
	var rootPassword any
	if len(keys) == 0 {
		rootPassword = "generated-root-password"
	}
	fakeapi.WriteJSON(w, 201, map[string]any{
		"server": serverJSON(n), "action": action(id*10, "create_server", id),
		"next_actions": []any{action(id*10+1, "start_server", id)}, "root_password": rootPassword,
	})
}

func (s *Server) deleteServer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ok, err := s.DeleteNode(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("hetzner fake: %v", err)
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, fmt.Sprintf("server with ID '%s' not found", id))
	default:
		n, _ := strconv.ParseInt(id, 10, 64)
		fakeapi.WriteJSON(w, 200, map[string]any{"action": action(n*10+2, "delete_server", n)})
	}
}

func keyJSON(k fakeapi.Key) map[string]any {
	id, _ := strconv.ParseInt(k.ID, 10, 64)
	return map[string]any{"id": id, "name": k.Name, "fingerprint": k.Fingerprint, "public_key": k.PublicKey, "labels": map[string]string{}, "created": "2026-01-01T00:00:00+00:00"}
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	fp, name := r.URL.Query().Get("fingerprint"), r.URL.Query().Get("name")
	var match []map[string]any
	for _, k := range s.Keys() {
		if (fp == "" || k.Fingerprint == fp) && (name == "" || k.Name == name) {
			match = append(match, keyJSON(k))
		}
	}
	p := s.Paginate(r, "page", "per_page", len(match))
	fakeapi.WriteJSON(w, 200, map[string]any{"ssh_keys": match[p.Start:p.End], "meta": meta(p, len(match))})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string `json:"name"`
		PublicKey string `json:"public_key"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	if _, taken := s.FindKey(func(k fakeapi.Key) bool { return k.Name == req.Name }); taken || req.Name == "" {
		writeError(w, 409, "uniqueness_error", "SSH key with the same name already exists")
		return
	}
	k, err := s.AddKey(req.Name, req.PublicKey)
	switch {
	case errors.Is(err, fakeapi.ErrDuplicateKey):
		writeError(w, 409, "uniqueness_error", "SSH key with the same fingerprint already exists")
	case err != nil:
		writeError(w, 400, fakeapi.KindInvalid, "invalid input in field 'public_key'")
	default:
		fakeapi.WriteJSON(w, 201, map[string]any{"ssh_key": keyJSON(k)})
	}
}
