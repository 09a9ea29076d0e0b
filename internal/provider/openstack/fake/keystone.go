package fake

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// serveIdentity handles POST /identity/v2.0/tokens and
// POST /identity/v3/auth/tokens.
func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request, parts []string) {
	version := parts[0]
	rest := parts[1:]
	switch {
	case !slices.Contains(s.opts.IdentityVersions, version):
		s.notModelled(w, r)
	case version == "v2.0" && r.Method == http.MethodPost && len(rest) == 1 && rest[0] == "tokens":
		s.tokensV2(w, r)
	case version == "v3" && r.Method == http.MethodPost && len(rest) == 2 && rest[0] == "auth" && rest[1] == "tokens":
		s.tokensV3(w, r)
	default:
		s.notModelled(w, r)
	}
}

func (s *Server) authFail(w http.ResponseWriter, v3 bool) {
	msg := "The request you have made requires authentication."
	if s.opts.AuthFailMessage != "" {
		msg = s.opts.AuthFailMessage
	}
	if v3 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "message": msg, "title": "Unauthorized"}})
		return
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// tokensV2 implements Keystone v2.0 token creation with password
// credentials and Rackspace's API key credentials.
func (s *Server) tokensV2(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Auth struct {
			Password *struct {
				Username string `json:"username"`
				Password string `json:"password"`
			} `json:"passwordCredentials"`
			APIKey *struct {
				Username string `json:"username"`
				APIKey   string `json:"apiKey"`
			} `json:"RAX-KSKEY:apiKeyCredentials"`
			TenantName string `json:"tenantName"`
			TenantID   string `json:"tenantId"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "badRequest", "Malformed request body.")
		return
	}
	a := body.Auth
	o := s.opts
	ok := false
	switch {
	case a.Password != nil && a.APIKey != nil:
		writeError(w, http.StatusBadRequest, "badRequest", "Only one kind of credentials is allowed.")
		return
	case a.Password != nil:
		ok = !o.NoPassword && a.Password.Username == o.Username && a.Password.Password == o.Password
	case a.APIKey != nil:
		ok = o.APIKey != "" && a.APIKey.Username == o.Username && a.APIKey.APIKey == o.APIKey
	default:
		writeError(w, http.StatusBadRequest, "badRequest", "Expecting passwordCredentials or RAX-KSKEY:apiKeyCredentials.")
		return
	}
	if (a.TenantName != "" && a.TenantName != o.ProjectName) || (a.TenantID != "" && a.TenantID != o.ProjectID) {
		ok = false
	}
	if !ok {
		s.authFail(w, false)
		return
	}
	tok := newToken()
	s.mu.Lock()
	s.tokens[tok] = o.ProjectID
	s.mu.Unlock()

	var catalog []map[string]any
	if o.DecoyCompute {
		catalog = append(catalog, map[string]any{
			"name": "cloudServers", "type": "compute",
			"endpoints": []map[string]any{{"tenantId": o.ProjectID, "publicURL": s.ts.URL + "/decoy/v1.0/" + o.ProjectID, "versionId": "1.0"}},
		})
	}
	var eps []map[string]any
	for _, region := range o.Regions {
		eps = append(eps, map[string]any{"region": region, "tenantId": o.ProjectID, "publicURL": s.ComputeURL(region), "versionId": "2"})
	}
	catalog = append(catalog,
		map[string]any{"name": o.ComputeName, "type": "compute", "endpoints": eps},
		map[string]any{"name": "keystone", "type": "identity", "endpoints": []map[string]any{{"region": o.Regions[0], "publicURL": s.IdentityV2()}}},
	)
	user := map[string]any{"id": o.UserID, "name": o.Username, "roles": []map[string]any{{"name": "compute:default"}}}
	if o.RaxDefaultRegion != "" {
		user["RAX-AUTH:defaultRegion"] = o.RaxDefaultRegion
	}
	writeJSON(w, http.StatusOK, map[string]any{"access": map[string]any{
		"token": map[string]any{
			"id":      tok,
			"expires": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
			"tenant":  map[string]any{"id": o.ProjectID, "name": o.ProjectName},
		},
		"serviceCatalog": catalog,
		"user":           user,
	}})
}

type v3Domain struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// tokensV3 implements Keystone v3 token creation with the password and
// application_credential methods.
func (s *Server) tokensV3(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password *struct {
					User struct {
						ID       string    `json:"id"`
						Name     string    `json:"name"`
						Password string    `json:"password"`
						Domain   *v3Domain `json:"domain"`
					} `json:"user"`
				} `json:"password"`
				AppCred *struct {
					ID     string `json:"id"`
					Secret string `json:"secret"`
				} `json:"application_credential"`
			} `json:"identity"`
			Scope *struct {
				Project *struct {
					ID     string    `json:"id"`
					Name   string    `json:"name"`
					Domain *v3Domain `json:"domain"`
				} `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"code": 400, "message": "Malformed request body.", "title": "Bad Request"}})
		return
	}
	o := s.opts
	id := body.Auth.Identity
	ok := false
	appCred := false
	switch {
	case slices.Equal(id.Methods, []string{"password"}) && id.Password != nil:
		u := id.Password.User
		userOK := (u.ID != "" && u.ID == o.UserID) ||
			(u.ID == "" && u.Name == o.Username && u.Domain != nil && domainMatches(*u.Domain, o.UserDomainID, o.UserDomainName))
		ok = !o.NoPassword && userOK && u.Password == o.Password
	case slices.Equal(id.Methods, []string{"application_credential"}) && id.AppCred != nil:
		appCred = true
		ok = o.AppCredID != "" && id.AppCred.ID == o.AppCredID && id.AppCred.Secret == o.AppCredSecret
		if body.Auth.Scope != nil {
			ok = false // Keystone: application credentials cannot request a scope
		}
	default:
		s.notModelled(w, r)
		return
	}
	scoped := appCred
	if sc := body.Auth.Scope; sc != nil && sc.Project != nil {
		p := sc.Project
		projOK := (p.ID != "" && p.ID == o.ProjectID) ||
			(p.ID == "" && p.Name == o.ProjectName && p.Domain != nil && domainMatches(*p.Domain, o.ProjectDomainID, o.ProjectDomainName))
		if !projOK {
			ok = false
		}
		scoped = true
	}
	if !ok {
		s.authFail(w, true)
		return
	}
	tok := newToken()
	project := ""
	if scoped {
		project = o.ProjectID
	}
	s.mu.Lock()
	s.tokens[tok] = project
	s.mu.Unlock()

	method := "password"
	if appCred {
		method = "application_credential"
	}
	token := map[string]any{
		"methods":    []string{method},
		"expires_at": time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": o.UserID, "name": o.Username, "domain": map[string]any{"id": o.UserDomainID, "name": o.UserDomainName}},
	}
	if scoped {
		var eps []map[string]any
		for _, region := range o.Regions {
			// An internal endpoint listed before the public one proves the
			// client picks the public interface.
			eps = append(eps,
				map[string]any{"id": "ep-int-" + region, "interface": "internal", "region": region, "region_id": region, "url": s.ts.URL + "/internal/" + region},
				map[string]any{"id": "ep-" + region, "interface": "public", "region": region, "region_id": region, "url": s.ComputeURL(region)},
			)
		}
		var catalog []map[string]any
		if o.DecoyCompute {
			catalog = append(catalog, map[string]any{"id": "svc-decoy", "type": "compute", "name": "cloudServers",
				"endpoints": []map[string]any{{"id": "ep-decoy", "interface": "public", "url": s.ts.URL + "/decoy/v1.0/" + o.ProjectID}}})
		}
		catalog = append(catalog,
			map[string]any{"id": "svc-compute", "type": "compute", "name": o.ComputeName, "endpoints": eps},
			map[string]any{"id": "svc-identity", "type": "identity", "name": "keystone", "endpoints": []map[string]any{
				{"id": "ep-identity", "interface": "public", "region": o.Regions[0], "region_id": o.Regions[0], "url": s.IdentityV3()},
			}},
		)
		token["catalog"] = catalog
		token["project"] = map[string]any{"id": o.ProjectID, "name": o.ProjectName, "domain": map[string]any{"id": o.ProjectDomainID, "name": o.ProjectDomainName}}
	}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, map[string]any{"token": token})
}

func domainMatches(d v3Domain, id, name string) bool {
	if d.ID != "" {
		return d.ID == id
	}
	return d.Name != "" && d.Name == name
}
