// Package fake is an httptest server speaking the part of the Vultr API
// v2 the vultr driver uses: OS images, plans, instances (list, get,
// create, delete) and SSH keys, with the API's cursor pagination
// (per_page and cursor in, meta.links.next out), its error body
// ({"error": ..., "status": ...}) and bearer-token auth.
package fake

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest/fakeapi"
)

// Options configures the fake; see fakeapi.Options.
type Options = fakeapi.Options

// Server is a fake Vultr API. Its URL is the API root to use as the
// driver's endpoint; the API lives under /v2.
type Server struct {
	*fakeapi.Server
}

// Regions the fake knows.
var Regions = []string{"ewr", "ams", "fra"}

// OS is an operating system image as the fake serves it.
type OS struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Arch   string `json:"arch"`
	Family string `json:"family"`
}

// Plan is a plan as the fake serves it.
type Plan struct {
	ID          string   `json:"id"`
	VCPUCount   int      `json:"vcpu_count"`
	RAM         int      `json:"ram"`
	Disk        int      `json:"disk"`
	DiskCount   int      `json:"disk_count"`
	Bandwidth   int      `json:"bandwidth"`
	MonthlyCost float64  `json:"monthly_cost"`
	Type        string   `json:"type"`
	Locations   []string `json:"locations"`
}

// OSes are the images served, including the pseudo-OS entries the real
// API lists (snapshot, backup, application, custom ISO).
var OSes = []OS{
	{ID: 2136, Name: "Debian 12 x64 (bookworm)", Arch: "x64", Family: "debian"},
	{ID: 477, Name: "Debian 11 x64 (bullseye)", Arch: "x64", Family: "debian"},
	{ID: 2284, Name: "Ubuntu 24.04 LTS x64", Arch: "x64", Family: "ubuntu"},
	{ID: 2137, Name: "Debian 12 arm64 (bookworm)", Arch: "arm64", Family: "debian"},
	{ID: 164, Name: "Snapshot", Arch: "x64", Family: "snapshot"},
	{ID: 180, Name: "Backup", Arch: "x64", Family: "backup"},
	{ID: 186, Name: "Application", Arch: "x64", Family: "application"},
	{ID: 159, Name: "Custom", Arch: "x64", Family: "iso"},
}

// Plans are the plans served.
var Plans = []Plan{
	{ID: "vc2-1c-0.5gb", VCPUCount: 1, RAM: 512, Disk: 10, MonthlyCost: 2.5, Type: "vc2"},
	{ID: "vc2-1c-1gb", VCPUCount: 1, RAM: 1024, Disk: 25, MonthlyCost: 5, Type: "vc2"},
	{ID: "vc2-1c-2gb", VCPUCount: 1, RAM: 2048, Disk: 55, MonthlyCost: 10, Type: "vc2"},
	{ID: "vc2-2c-4gb", VCPUCount: 2, RAM: 4096, Disk: 80, MonthlyCost: 20, Type: "vc2"},
}

// FormatID renders the n-th instance or key as a Vultr-style UUID.
func FormatID(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n) }

// New starts a fake Vultr API. Close it when done.
func New(o Options) *Server {
	s := &Server{}
	d := fakeapi.Dialect{Name: "vultr", WriteError: writeError, FormatID: FormatID}
	s.Server = fakeapi.NewServer(d, o, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v2/os", s.listOS)
		mux.HandleFunc("GET /v2/plans", s.listPlans)
		mux.HandleFunc("GET /v2/instances", s.listInstances)
		mux.HandleFunc("GET /v2/instances/{id}", s.getInstance)
		mux.HandleFunc("POST /v2/instances", s.createInstance)
		mux.HandleFunc("DELETE /v2/instances/{id}", s.deleteInstance)
		mux.HandleFunc("GET /v2/ssh-keys", s.listKeys)
		mux.HandleFunc("POST /v2/ssh-keys", s.createKey)
	})
	return s
}

// writeError writes Vultr's error body.
func writeError(w http.ResponseWriter, status int, kind fakeapi.Kind, msg string) {
	switch kind {
	case fakeapi.KindUnauthorized:
		msg = "Invalid API token."
	case fakeapi.KindNotFound:
		if msg == "" {
			msg = "Not found"
		}
	case fakeapi.KindRateLimited:
		msg = "Rate limit reached - please try your request again later."
	case fakeapi.KindServer:
		msg = "Internal server error."
	}
	fakeapi.WriteJSON(w, status, map[string]any{"error": msg, "status": status})
}

// cursorPage serves one page of all, reading the opaque cursor the
// previous page handed out (the offset, base64-encoded).
func cursorPage[T any](s *Server, r *http.Request, all []T) ([]T, map[string]any) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	offset := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		after, ok := strings.CutPrefix(string(raw), "next__")
		if n, err2 := strconv.Atoi(after); err == nil && ok && err2 == nil {
			offset = n
		}
	}
	if max := s.Options().PageSize; per <= 0 || per > max {
		per = max
	}
	start := min(offset, len(all))
	end := min(start+per, len(all))
	next := ""
	if end < len(all) {
		next = base64.RawURLEncoding.EncodeToString([]byte("next__" + strconv.Itoa(end)))
	}
	prev := ""
	if start > 0 {
		prev = base64.RawURLEncoding.EncodeToString([]byte("prev__" + strconv.Itoa(start)))
	}
	page := all[start:end]
	if page == nil {
		page = []T{}
	}
	return page, map[string]any{"total": len(all), "links": map[string]string{"next": next, "prev": prev}}
}

func (s *Server) listOS(w http.ResponseWriter, r *http.Request) {
	page, meta := cursorPage(s, r, OSes)
	fakeapi.WriteJSON(w, 200, map[string]any{"os": page, "meta": meta})
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) {
	typ := r.URL.Query().Get("type")
	var all []Plan
	for _, p := range Plans {
		if typ == "" || typ == "all" || typ == p.Type {
			p.Locations, p.DiskCount, p.Bandwidth = Regions, 1, 1024
			all = append(all, p)
		}
	}
	page, meta := cursorPage(s, r, all)
	fakeapi.WriteJSON(w, 200, map[string]any{"plans": page, "meta": meta})
}

// statuses renders a node's state as Vultr's status and power_status.
// A RawStatus is "status/power_status".
func statuses(n fakeapi.Node) (status, power, server string) {
	if n.RawStatus != "" {
		st, pw, _ := strings.Cut(n.RawStatus, "/")
		return st, pw, "ok"
	}
	switch n.State {
	case provider.StatePending:
		return "pending", "stopped", "none"
	case provider.StateRunning:
		return "active", "running", "ok"
	case provider.StateStopped:
		return "active", "stopped", "ok"
	}
	return "closed", "stopped", "none"
}

func instance(n fakeapi.Node) map[string]any {
	var plan Plan
	for _, p := range Plans {
		if p.ID == n.Size {
			plan = p
		}
	}
	var os OS
	for _, o := range OSes {
		if strconv.Itoa(o.ID) == n.Image {
			os = o
		}
	}
	mainIP, v6, internal := "0.0.0.0", "", ""
	if len(n.PublicIPv4) > 0 {
		mainIP = n.PublicIPv4[0]
	}
	if len(n.PublicIPv6) > 0 {
		v6 = n.PublicIPv6[0]
	}
	if len(n.PrivateIPv4) > 0 {
		internal = n.PrivateIPv4[0]
	}
	status, power, server := statuses(n)
	return map[string]any{
		"id": n.ID, "os": os.Name, "ram": plan.RAM, "disk": plan.Disk, "plan": n.Size, "main_ip": mainIP,
		"vcpu_count": plan.VCPUCount, "region": n.Region, "date_created": "2026-01-01T00:00:00+00:00",
		"status": status, "power_status": power, "server_status": server, "allowed_bandwidth": 1000,
		"netmask_v4": "255.255.254.0", "gateway_v4": "203.0.113.1", "v6_network": "", "v6_main_ip": v6,
		"v6_network_size": 64, "label": n.Name, "internal_ip": internal, "kvm": "", "hostname": n.Name,
		"os_id": os.ID, "app_id": 0, "image_id": "", "firewall_group_id": "", "features": []string{}, "tags": []string{},
		"user_scheme": "root",
	}
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	var all []map[string]any
	for _, n := range s.Nodes() {
		all = append(all, instance(n))
	}
	page, meta := cursorPage(s, r, all)
	fakeapi.WriteJSON(w, 200, map[string]any{"instances": page, "meta": meta})
}

func (s *Server) getInstance(w http.ResponseWriter, r *http.Request) {
	n, ok, err := s.PollNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		fakeapi.WriteJSON(w, 200, map[string]any{"instance": instance(n)})
	}
}

func (s *Server) createInstance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Region   string   `json:"region"`
		Plan     string   `json:"plan"`
		Label    string   `json:"label"`
		Hostname string   `json:"hostname"`
		OsID     int      `json:"os_id"`
		SSHKeys  []string `json:"sshkey_id"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	bad := func(msg string) { writeError(w, 400, fakeapi.KindInvalid, msg) }
	switch {
	case !slices.Contains(Regions, req.Region):
		bad("Invalid region.")
		return
	case !slices.ContainsFunc(Plans, func(p Plan) bool { return p.ID == req.Plan }):
		bad("Invalid plan.")
		return
	case !slices.ContainsFunc(OSes, func(o OS) bool { return o.ID == req.OsID && o.Arch == "x64" && o.Family != "snapshot" }):
		bad("Invalid operating system.")
		return
	}
	var keys []string
	for _, id := range req.SSHKeys {
		k, ok := s.FindKey(func(k fakeapi.Key) bool { return k.ID == id })
		if !ok {
			bad("Invalid SSH key ID.")
			return
		}
		keys = append(keys, k.PublicKey)
	}
	if s.AtLimit() {
		bad("Server add failed: You have reached the maximum number of active instances for this account.")
		return
	}
	n, err := s.CreateNode(r.Context(), fakeapi.Node{Name: req.Label, Image: strconv.Itoa(req.OsID), Size: req.Plan, Region: req.Region, Keys: keys})
	if err != nil {
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("vultr fake: %v", err)
		return
	}
	body := instance(n)
	body["default_password"] = "v#Fake-Default-Password1"
	fakeapi.WriteJSON(w, 202, map[string]any{"instance": body})
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	ok, err := s.DeleteNode(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		writeError(w, 500, fakeapi.KindServer, "")
		s.Options().Errorf("vultr fake: %v", err)
	case !ok:
		writeError(w, 404, fakeapi.KindNotFound, "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func keyJSON(k fakeapi.Key) map[string]string {
	return map[string]string{"id": k.ID, "name": k.Name, "ssh_key": k.PublicKey, "date_created": "2026-01-01T00:00:00+00:00"}
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	var all []map[string]string
	for _, k := range s.Keys() {
		all = append(all, keyJSON(k))
	}
	page, meta := cursorPage(s, r, all)
	fakeapi.WriteJSON(w, 200, map[string]any{"ssh_keys": page, "meta": meta})
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string `json:"name"`
		SSHKey string `json:"ssh_key"`
	}
	if !s.ReadJSON(w, r, &req) {
		return
	}
	if req.Name == "" {
		writeError(w, 400, fakeapi.KindInvalid, "Missing name.")
		return
	}
	k, err := s.AddKey(req.Name, req.SSHKey)
	switch {
	case errors.Is(err, fakeapi.ErrDuplicateKey):
		writeError(w, 400, fakeapi.KindInvalid, "SSH key already exists.")
	case err != nil:
		writeError(w, 400, fakeapi.KindInvalid, "Invalid SSH key.")
	default:
		fakeapi.WriteJSON(w, 201, map[string]any{"ssh_key": keyJSON(k)})
	}
}
