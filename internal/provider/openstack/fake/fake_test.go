package fake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

// call makes one request and decodes a JSON answer into out (if not nil).
func call(t *testing.T, method, url, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func token(t *testing.T, s *Server) string {
	t.Helper()
	var out struct {
		Access struct {
			Token struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"access"`
	}
	body := fmt.Sprintf(`{"auth": {"passwordCredentials": {"username": %q, "password": %q}}}`, DefaultUsername, DefaultPassword)
	if code := call(t, "POST", s.IdentityV2()+"/tokens", "", body, &out); code != 200 {
		t.Fatalf("token: HTTP %d", code)
	}
	return out.Access.Token.ID
}

func TestServer_NotModelledFailsLoudly(t *testing.T) {
	var reported []string
	s := New(Options{Errorf: func(f string, a ...any) { reported = append(reported, fmt.Sprintf(f, a...)) }})
	defer s.Close()
	tok := token(t, s)
	for _, path := range []string{s.ComputeURL(DefaultRegion) + "/os-hypervisors", s.URL() + "/elsewhere", s.URL() + "/identity/v2.0/tenants"} {
		var body map[string]map[string]any
		if code := call(t, "GET", path, tok, "", &body); code != http.StatusNotImplemented {
			t.Errorf("GET %s: HTTP %d, want 501", path, code)
		}
		if body["notImplemented"]["message"] == nil {
			t.Errorf("GET %s: body %v not in Nova's error format", path, body)
		}
	}
	if len(reported) != 3 || len(s.Unexpected()) != 3 || !strings.Contains(reported[0], "GET /compute/RegionOne/v2.1/p0001/os-hypervisors") {
		t.Errorf("reported %q", reported)
	}
}

func TestServer_RequiresToken(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	var body map[string]map[string]any
	if code := call(t, "GET", s.ComputeURL(DefaultRegion)+"/servers/detail", "tok-made-up", "", &body); code != 401 || body["unauthorized"] == nil {
		t.Errorf("made-up token: HTTP %d %v", code, body)
	}
}

func TestServer_APIKeyCredentials(t *testing.T) {
	s := New(Options{NoPassword: true, APIKey: "the-key"})
	defer s.Close()
	good := fmt.Sprintf(`{"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": %q, "apiKey": "the-key"}}}`, DefaultUsername)
	if code := call(t, "POST", s.IdentityV2()+"/tokens", "", good, nil); code != 200 {
		t.Errorf("api key: HTTP %d", code)
	}
	pw := fmt.Sprintf(`{"auth": {"passwordCredentials": {"username": %q, "password": %q}}}`, DefaultUsername, DefaultPassword)
	if code := call(t, "POST", s.IdentityV2()+"/tokens", "", pw, nil); code != 401 {
		t.Errorf("password with NoPassword: HTTP %d, want 401", code)
	}
}

func TestServer_BackendFailureIsError(t *testing.T) {
	mem := providertest.NewMemory()
	mem.FailCreate = errors.New("no room at the inn")
	s := New(Options{Backend: mem})
	defer s.Close()
	tok := token(t, s)
	body := `{"server": {"name": "b1", "imageRef": "11111111-0000-4000-8000-000000000001", "flavorRef": "1"}}`
	var created struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	if code := call(t, "POST", s.ComputeURL(DefaultRegion)+"/servers", tok, body, &created); code != 202 {
		t.Fatalf("create: HTTP %d", code)
	}
	s.wg.Wait() // the backend create has run
	var got struct {
		Server struct {
			Status string `json:"status"`
			Fault  struct {
				Message string `json:"message"`
			} `json:"fault"`
		} `json:"server"`
	}
	call(t, "GET", s.ComputeURL(DefaultRegion)+"/servers/"+created.Server.ID, tok, "", &got)
	if got.Server.Status != "ERROR" || got.Server.Fault.Message != "no room at the inn" {
		t.Errorf("server = %+v, want ERROR with the backend's message", got.Server)
	}
}

func TestServer_CloseDestroysBackendNodes(t *testing.T) {
	mem := providertest.NewMemory()
	s := New(Options{Backend: mem, BackendImage: provider.Image{ID: "img-1"}})
	tok := token(t, s)
	body := `{"server": {"name": "c1", "imageRef": "11111111-0000-4000-8000-000000000001", "flavorRef": "1",
		"personality": [{"path": "/root/.ssh/authorized_keys", "contents": "c3NoLWVkMjU1MTkgQUFBQSB4Cg=="}]}}`
	if code := call(t, "POST", s.ComputeURL(DefaultRegion)+"/servers", tok, body, nil); code != 202 {
		t.Fatalf("create: HTTP %d", code)
	}
	s.Close()
	if len(mem.Created) != 1 || string(mem.Created[0].Files["/root/.ssh/authorized_keys"]) != "ssh-ed25519 AAAA x\n" {
		t.Fatalf("backend creates: %+v", mem.Created)
	}
	if nodes, _ := mem.ListNodes(t.Context()); len(nodes) != 0 {
		t.Errorf("backend still has %d nodes after Close", len(nodes))
	}
}

func TestServer_UnknownFieldsRefused(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tok := token(t, s)
	body := `{"server": {"name": "u", "imageRef": "11111111-0000-4000-8000-000000000001", "flavorRef": "1", "invented": true}}`
	if code := call(t, "POST", s.ComputeURL(DefaultRegion)+"/servers", tok, body, nil); code != 400 {
		t.Errorf("unknown field: HTTP %d, want 400", code)
	}
}
