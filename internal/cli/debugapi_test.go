package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebugTransport_RedactsSecrets(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Subject-Token", secret)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access":{"token":{"id":"`+secret+`","expires":"x"},"user":{"name":"bob"}}}`)
	}))
	defer srv.Close()
	logPath := filepath.Join(t.TempDir(), "api.log")
	c := &http.Client{Transport: &debugTransport{path: logPath, next: http.DefaultTransport, warn: t.Logf}}
	body := `{"auth":{"RAX-KSKEY:apiKeyCredentials":{"username":"bob","apiKey":"` + secret + `"},"passwordCredentials":{"password":"` + secret + `"}}}`
	req, _ := http.NewRequest("POST", srv.URL+"/v2.0/tokens?token="+secret, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("X-Auth-Token", secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(got), secret) {
		t.Fatal("the caller must still get the real response body")
	}
	form, _ := http.NewRequest("POST", srv.URL+"/linode", strings.NewReader("root_pass="+secret+"&label=x"))
	form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := c.Do(form); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), secret) {
		t.Fatalf("secret leaked into the debug log:\n%s", log)
	}
	for _, want := range []string{"POST", "/v2.0/tokens", `"name":"bob"`, "200 OK", "label=x"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("debug log lacks %q:\n%s", want, log)
		}
	}
	if fi, _ := os.Stat(logPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("debug log mode = %v, want 0600", fi.Mode().Perm())
	}
}
