package fake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// backendRequest turns a received create request into the backend's:
// personality files become Files; the keypair's key, and the keys and
// files of cloud-init user data written the way the openstack driver
// writes it (JSON after "#cloud-config"), become AuthorizedKeys and Files.
func (s *Server) backendRequest(rec Created, key *Keypair) provider.CreateRequest {
	req := provider.CreateRequest{Name: rec.Name, Image: s.opts.BackendImage, Size: s.opts.BackendSize}
	addKey := func(k string) {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(req.AuthorizedKeys, k) {
			req.AuthorizedKeys = append(req.AuthorizedKeys, k)
		}
	}
	addFile := func(path string, content []byte) {
		if req.Files == nil {
			req.Files = map[string][]byte{}
		}
		req.Files[path] = content
	}
	for p, c := range rec.Personality {
		addFile(p, c)
		if s.opts.BackendKeysFromPersonality && p == "/root/.ssh/authorized_keys" {
			for _, line := range strings.Split(string(c), "\n") {
				addKey(line)
			}
		}
	}
	if key != nil {
		addKey(key.PublicKey)
	}
	if cfg, ok := bytes.CutPrefix(rec.UserData, []byte("#cloud-config\n")); ok {
		var cc struct {
			Keys       []string `json:"ssh_authorized_keys"`
			WriteFiles []struct {
				Path     string `json:"path"`
				Encoding string `json:"encoding"`
				Content  string `json:"content"`
			} `json:"write_files"`
		}
		if json.Unmarshal(cfg, &cc) == nil {
			for _, k := range cc.Keys {
				addKey(k)
			}
			for _, f := range cc.WriteFiles {
				c := []byte(f.Content)
				if f.Encoding == "b64" || f.Encoding == "base64" {
					if d, err := base64.StdEncoding.DecodeString(f.Content); err == nil {
						c = d
					}
				}
				addFile(f.Path, c)
			}
		}
	}
	return req
}

// backendCreate runs Backend.CreateNode for sv, as Nova builds a server
// after answering the create request. A failure puts sv in ERROR with the
// backend's message as its fault.
func (s *Server) backendCreate(sv *server, req provider.CreateRequest) {
	defer s.wg.Done()
	n, err := s.opts.Backend.CreateNode(s.ctx, req)
	s.mu.Lock()
	sv.backendPending = false
	if err != nil {
		sv.status = "ERROR"
		sv.fault = err.Error()
		s.mu.Unlock()
		return
	}
	sv.backendID = n.ID
	deleted := sv.deleted
	s.mu.Unlock()
	if deleted {
		if s.opts.Backend.DestroyNode(s.ctx, n.ID) == nil {
			s.mu.Lock()
			sv.backendID = ""
			s.mu.Unlock()
		}
	}
}

// refreshFromBackend copies the backend node's state and addresses into
// sv. Without a backend, or before the backend node exists, it does
// nothing.
func (s *Server) refreshFromBackend(sv *server) {
	if s.opts.Backend == nil {
		return
	}
	s.mu.Lock()
	id := sv.backendID
	s.mu.Unlock()
	if id == "" {
		return
	}
	n, err := s.opts.Backend.GetNode(s.ctx, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			sv.status = "DELETED"
			return
		}
		sv.status = "ERROR"
		sv.fault = err.Error()
		return
	}
	sv.status = novaStatus(n.State)
	sv.addresses = nil
	sv.accessV4, sv.accessV6 = "", ""
	add := func(network string, ips []string) {
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				continue
			}
			v := 4
			if a.Is6() && !a.Is4In6() {
				v = 6
			}
			sv.addresses = append(sv.addresses, Address{Network: network, Addr: ip, Version: v})
			if network == "public" && v == 4 && sv.accessV4 == "" {
				sv.accessV4 = ip
			}
			if network == "public" && v == 6 && sv.accessV6 == "" {
				sv.accessV6 = ip
			}
		}
	}
	add("public", n.PublicIPs)
	add("private", n.PrivateIPs)
}

// novaStatus is the Nova status reported for a backend node's state.
func novaStatus(st provider.State) string {
	switch st {
	case provider.StatePending:
		return "BUILD"
	case provider.StateRunning:
		return "ACTIVE"
	case provider.StateStopped:
		return "SHUTOFF"
	case provider.StateTerminated:
		return "DELETED"
	case provider.StateError:
		return "ERROR"
	}
	return "UNKNOWN"
}
