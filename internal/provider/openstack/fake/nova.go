package fake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// serveCompute handles /compute/REGION/VERSION/PROJECT/...
func (s *Server) serveCompute(w http.ResponseWriter, r *http.Request, region, version, project string, rest []string) {
	if version != s.opts.ComputeVersion || project != s.opts.ProjectID || !slices.Contains(s.opts.Regions, region) {
		s.notModelled(w, r)
		return
	}
	s.mu.Lock()
	tokProject, ok := s.tokens[r.Header.Get("X-Auth-Token")]
	s.mu.Unlock()
	if !ok || tokProject != project {
		writeError(w, http.StatusUnauthorized, "unauthorized", "The request you have made requires authentication.")
		return
	}
	base := s.ComputeURL(region)
	switch {
	case r.Method == http.MethodGet && len(rest) == 2 && rest[0] == "flavors" && rest[1] == "detail":
		s.listFlavors(w, r, base)
	case r.Method == http.MethodGet && len(rest) == 2 && rest[0] == "images" && rest[1] == "detail":
		s.listImages(w, r, base)
	case r.Method == http.MethodGet && len(rest) == 2 && rest[0] == "servers" && rest[1] == "detail":
		s.listServers(w, r, region, base)
	case r.Method == http.MethodPost && len(rest) == 1 && rest[0] == "servers":
		s.createServer(w, r, region, base)
	case r.Method == http.MethodGet && len(rest) == 2 && rest[0] == "servers":
		s.getServer(w, region, rest[1], base)
	case r.Method == http.MethodDelete && len(rest) == 2 && rest[0] == "servers":
		s.deleteServer(w, region, rest[1])
	case len(rest) == 1 && rest[0] == "os-keypairs" && s.opts.NoKeypairs:
		writeError(w, http.StatusNotFound, "itemNotFound", "The resource could not be found.")
	case r.Method == http.MethodGet && len(rest) == 1 && rest[0] == "os-keypairs":
		s.listKeypairs(w, region)
	case r.Method == http.MethodPost && len(rest) == 1 && rest[0] == "os-keypairs":
		s.createKeypair(w, r, region)
	default:
		s.notModelled(w, r)
	}
}

// page cuts one page out of ids the way Nova does: entries after marker,
// at most min(limit, PageSize) of them, and a "next" link whenever the page
// is full (so the last page may be empty, as with Nova).
func (s *Server) page(w http.ResponseWriter, r *http.Request, ids []string, base, path string) (from, to int, links []map[string]string, ok bool) {
	q := r.URL.Query()
	limit := s.opts.PageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "badRequest", "Invalid input for query parameters limit.")
			return 0, 0, nil, false
		}
		limit = min(n, limit)
	}
	from = 0
	if m := q.Get("marker"); m != "" {
		i := slices.Index(ids, m)
		if i < 0 {
			writeError(w, http.StatusBadRequest, "badRequest", fmt.Sprintf("marker [%s] not found", m))
			return 0, 0, nil, false
		}
		from = i + 1
	}
	to = min(from+limit, len(ids))
	if to-from == limit && limit > 0 {
		v := url.Values{"limit": {strconv.Itoa(limit)}, "marker": {ids[to-1]}}
		links = append(links, map[string]string{"rel": "next", "href": base + path + "?" + v.Encode()})
	}
	return from, to, links, true
}

func (s *Server) listFlavors(w http.ResponseWriter, r *http.Request, base string) {
	var ids []string
	for _, f := range s.opts.Flavors {
		ids = append(ids, f.ID)
	}
	from, to, links, ok := s.page(w, r, ids, base, "/flavors/detail")
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, f := range s.opts.Flavors[from:to] {
		out = append(out, map[string]any{
			"id": f.ID, "name": f.Name, "ram": f.RAM, "disk": f.Disk, "vcpus": f.VCPUs, "swap": "",
			"OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": true, "rxtx_factor": 1.0,
			"links": []map[string]string{{"rel": "self", "href": base + "/flavors/" + f.ID}},
		})
	}
	body := map[string]any{"flavors": out}
	if links != nil {
		body["flavors_links"] = links
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, base string) {
	var ids []string
	for _, im := range s.opts.Images {
		ids = append(ids, im.ID)
	}
	from, to, links, ok := s.page(w, r, ids, base, "/images/detail")
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, im := range s.opts.Images[from:to] {
		out = append(out, map[string]any{
			"id": im.ID, "name": im.Name, "status": "ACTIVE", "progress": 100, "minDisk": 0, "minRam": 0,
			"created": im.Created.UTC().Format(time.RFC3339), "updated": im.Created.UTC().Format(time.RFC3339),
			"metadata": map[string]string{}, "links": []map[string]string{{"rel": "self", "href": base + "/images/" + im.ID}},
		})
	}
	body := map[string]any{"images": out}
	if links != nil {
		body["images_links"] = links
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listServers(w http.ResponseWriter, r *http.Request, region, base string) {
	s.mu.Lock()
	var list []*server
	for _, sv := range s.servers {
		if sv.region == region && !sv.deleted {
			list = append(list, sv)
		}
	}
	s.mu.Unlock()
	var ids []string
	for _, sv := range list {
		ids = append(ids, sv.id)
	}
	from, to, links, ok := s.page(w, r, ids, base, "/servers/detail")
	if !ok {
		return
	}
	out := []map[string]any{}
	for _, sv := range list[from:to] {
		s.refreshFromBackend(sv)
		out = append(out, s.serverJSON(sv, base))
	}
	body := map[string]any{"servers": out}
	if links != nil {
		body["servers_links"] = links
	}
	writeJSON(w, http.StatusOK, body)
}

// find returns a live server of region by ID.
func (s *Server) find(region, id string) *server {
	for _, sv := range s.servers {
		if sv.id == id && sv.region == region && !sv.deleted {
			return sv
		}
	}
	return nil
}

func (s *Server) getServer(w http.ResponseWriter, region, id, base string) {
	s.mu.Lock()
	sv := s.find(region, id)
	if sv != nil && s.opts.Backend == nil && sv.status == "BUILD" {
		sv.polls++
		if sv.polls > s.opts.BuildPolls {
			s.activate(sv)
		}
	}
	s.mu.Unlock()
	if sv == nil {
		writeError(w, http.StatusNotFound, "itemNotFound", "Instance "+id+" could not be found.")
		return
	}
	s.refreshFromBackend(sv)
	writeJSON(w, http.StatusOK, map[string]any{"server": s.serverJSON(sv, base)})
}

// activate makes a BUILD server ACTIVE with addresses. s.mu is held.
func (s *Server) activate(sv *server) {
	sv.status = "ACTIVE"
	sv.addresses = s.opts.Addresses(sv.ordinal)
	for _, a := range sv.addresses {
		if a.Network == "public" && a.Version == 4 && sv.accessV4 == "" {
			sv.accessV4 = a.Addr
		}
		if a.Network == "public" && a.Version == 6 && sv.accessV6 == "" {
			sv.accessV6 = a.Addr
		}
	}
}

func (s *Server) serverJSON(sv *server, base string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := map[string][]map[string]any{}
	for _, a := range sv.addresses {
		typ := a.Type
		if typ == "" {
			typ = "fixed"
		}
		addrs[a.Network] = append(addrs[a.Network], map[string]any{"addr": a.Addr, "version": a.Version, "OS-EXT-IPS:type": typ})
	}
	progress := 0
	if sv.status == "ACTIVE" {
		progress = 100
	}
	m := map[string]any{
		"id": sv.id, "name": sv.name, "status": sv.status, "progress": progress,
		"accessIPv4": sv.accessV4, "accessIPv6": sv.accessV6,
		"addresses": addrs,
		"image":     map[string]any{"id": sv.imageRef, "links": []map[string]string{{"rel": "bookmark", "href": base + "/images/" + sv.imageRef}}},
		"flavor":    map[string]any{"id": sv.flavor, "links": []map[string]string{{"rel": "bookmark", "href": base + "/flavors/" + sv.flavor}}},
		"metadata":  map[string]string{},
		"created":   sv.created.Format(time.RFC3339),
		"updated":   sv.created.Format(time.RFC3339),
		"tenant_id": s.opts.ProjectID, "user_id": s.opts.UserID, "hostId": "",
		"OS-DCF:diskConfig": "MANUAL",
		"links":             []map[string]string{{"rel": "self", "href": base + "/servers/" + sv.id}},
	}
	if sv.keyName != "" {
		m["key_name"] = sv.keyName
	} else {
		m["key_name"] = nil
	}
	if sv.fault != "" {
		m["fault"] = map[string]any{"code": 500, "message": sv.fault, "created": sv.created.Format(time.RFC3339)}
	}
	return m
}

type createBody struct {
	Server struct {
		Name        string `json:"name"`
		ImageRef    string `json:"imageRef"`
		FlavorRef   string `json:"flavorRef"`
		KeyName     string `json:"key_name"`
		UserData    string `json:"user_data"`
		Personality []struct {
			Path     string `json:"path"`
			Contents string `json:"contents"`
		} `json:"personality"`
		Networks []struct {
			UUID string `json:"uuid"`
		} `json:"networks"`
	} `json:"server"`
}

func (s *Server) createServer(w http.ResponseWriter, r *http.Request, region, base string) {
	var body createBody
	dec := json.NewDecoder(r.Body)
	// Nova's v2.1 schema refuses unknown properties; so do we, which also
	// catches a driver sending something the fake does not model.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute server: "+err.Error())
		return
	}
	b := body.Server
	if b.Name == "" {
		writeError(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute name. Value: None.")
		return
	}
	if !slices.ContainsFunc(s.opts.Images, func(im Image) bool { return im.ID == b.ImageRef }) {
		writeError(w, http.StatusBadRequest, "badRequest", "Can not find requested image")
		return
	}
	if !slices.ContainsFunc(s.opts.Flavors, func(f Flavor) bool { return f.ID == b.FlavorRef }) {
		writeError(w, http.StatusBadRequest, "badRequest", "Flavor '"+b.FlavorRef+"' could not be found.")
		return
	}
	rec := Created{Name: b.Name, Region: region, ImageRef: b.ImageRef, FlavorRef: b.FlavorRef, KeyName: b.KeyName}
	if len(b.Personality) > s.opts.MaxPersonality {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("Quota exceeded for injected_files: Requested %d, but already used 0 of %d injected_files", len(b.Personality), s.opts.MaxPersonality))
		return
	}
	for _, f := range b.Personality {
		c, err := base64.StdEncoding.DecodeString(f.Contents)
		if err != nil {
			writeError(w, http.StatusBadRequest, "badRequest", "Personality content for "+f.Path+" cannot be decoded")
			return
		}
		if rec.Personality == nil {
			rec.Personality = map[string][]byte{}
		}
		rec.Personality[f.Path] = c
	}
	if b.UserData != "" {
		ud, err := base64.StdEncoding.DecodeString(b.UserData)
		if err != nil {
			writeError(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute user_data.")
			return
		}
		rec.UserData = ud
	}
	for _, n := range b.Networks {
		rec.Networks = append(rec.Networks, n.UUID)
	}

	s.mu.Lock()
	var key *Keypair
	if b.KeyName != "" {
		i := slices.IndexFunc(s.keypairs[region], func(k Keypair) bool { return k.Name == b.KeyName })
		if i < 0 {
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "badRequest", "Invalid key_name provided.")
			return
		}
		k := s.keypairs[region][i]
		key = &k
	}
	if s.opts.MaxServers > 0 {
		used := 0
		for _, sv := range s.servers {
			if !sv.deleted {
				used++
			}
		}
		if used >= s.opts.MaxServers {
			s.mu.Unlock()
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("Quota exceeded for instances: Requested 1, but already used %d of %d instances", used, s.opts.MaxServers))
			return
		}
	}
	s.ordinal++
	sv := &server{
		id: newUUID(), name: b.Name, region: region, imageRef: b.ImageRef, flavor: b.FlavorRef, keyName: b.KeyName,
		status: "BUILD", ordinal: s.ordinal, created: time.Now().UTC(),
	}
	rec.ID = sv.id
	rec.AdminPassReturned = "fake-admin-" + sv.id[:8]
	s.servers = append(s.servers, sv)
	if s.opts.Backend != nil {
		req := s.backendRequest(rec, key)
		rec.BackendCreateRequest = &req
		sv.backendPending = true
		s.wg.Add(1)
		go s.backendCreate(sv, req)
	}
	s.created = append(s.created, rec)
	s.mu.Unlock()

	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id":                sv.id,
		"adminPass":         rec.AdminPassReturned,
		"OS-DCF:diskConfig": "MANUAL",
		"security_groups":   []map[string]string{{"name": "default"}},
		"links":             []map[string]string{{"rel": "self", "href": base + "/servers/" + sv.id}},
	}})
}

func (s *Server) deleteServer(w http.ResponseWriter, region, id string) {
	s.mu.Lock()
	sv := s.find(region, id)
	if sv == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "itemNotFound", "Instance "+id+" could not be found.")
		return
	}
	backendID := sv.backendID
	sv.deleted = true
	s.mu.Unlock()
	if backendID != "" {
		if err := s.opts.Backend.DestroyNode(s.ctx, backendID); err != nil {
			s.mu.Lock()
			sv.deleted = false
			s.mu.Unlock()
			writeError(w, http.StatusInternalServerError, "computeFault", "backend destroy: "+err.Error())
			return
		}
		s.mu.Lock()
		sv.backendID = ""
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listKeypairs(w http.ResponseWriter, region string) {
	s.mu.Lock()
	out := []map[string]any{}
	for _, k := range s.keypairs[region] {
		out = append(out, map[string]any{"keypair": map[string]any{"name": k.Name, "public_key": k.PublicKey, "fingerprint": k.Fingerprint, "type": "ssh"}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"keypairs": out})
}

func (s *Server) createKeypair(w http.ResponseWriter, r *http.Request, region string) {
	var body struct {
		Keypair struct {
			Name      string `json:"name"`
			PublicKey string `json:"public_key"`
			Type      string `json:"type"`
		} `json:"keypair"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Keypair.Name == "" {
		writeError(w, http.StatusBadRequest, "badRequest", "Invalid input for field/attribute keypair.")
		return
	}
	if body.Keypair.PublicKey == "" {
		// Nova would generate a key pair; toppcloud never asks for that.
		s.notModelled(w, r)
		return
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(body.Keypair.PublicKey))
	if err != nil {
		writeError(w, http.StatusBadRequest, "badRequest", "Keypair data is invalid: failed to generate fingerprint")
		return
	}
	k := Keypair{Name: body.Keypair.Name, PublicKey: string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub))), Fingerprint: ssh.FingerprintLegacyMD5(pub)}
	s.mu.Lock()
	if slices.ContainsFunc(s.keypairs[region], func(x Keypair) bool { return x.Name == k.Name }) {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "conflictingRequest", "Key pair '"+k.Name+"' already exists.")
		return
	}
	s.keypairs[region] = append(s.keypairs[region], k)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"keypair": map[string]any{
		"name": k.Name, "public_key": k.PublicKey, "fingerprint": k.Fingerprint, "user_id": s.opts.UserID, "type": "ssh",
	}})
}
