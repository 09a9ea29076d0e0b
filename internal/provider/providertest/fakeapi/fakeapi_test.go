package fakeapi

import (
	"fmt"
	"net/http"
	"testing"
)

func TestPageOf(t *testing.T) {
	tests := []struct {
		page, per, max, total int
		want                  Page
	}{
		{1, 0, 2, 5, Page{Number: 1, PerPage: 2, Pages: 3, Start: 0, End: 2}},
		{3, 200, 2, 5, Page{Number: 3, PerPage: 2, Pages: 3, Start: 4, End: 5}},
		{9, 2, 2, 5, Page{Number: 9, PerPage: 2, Pages: 3, Start: 5, End: 5}},
		{0, 1, 2, 0, Page{Number: 1, PerPage: 1, Pages: 1, Start: 0, End: 0}},
	}
	for _, tt := range tests {
		if got := PageOf(tt.page, tt.per, tt.max, tt.total); got != tt.want {
			t.Errorf("PageOf(%d, %d, %d, %d) = %+v, want %+v", tt.page, tt.per, tt.max, tt.total, got, tt.want)
		}
	}
}

func TestServer_UnmodelledAndAuth(t *testing.T) {
	var reported []string
	var statuses []int
	d := Dialect{Name: "test", WriteError: func(w http.ResponseWriter, status int, kind Kind, msg string) {
		statuses = append(statuses, status)
		WriteJSON(w, status, map[string]string{"kind": string(kind)})
	}}
	s := NewServer(d, Options{Errorf: func(f string, a ...any) { reported = append(reported, fmt.Sprintf(f, a...)) }}, func(mux *http.ServeMux) {
		mux.HandleFunc("GET /v1/ok", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, "ok") })
	})
	defer s.Close()
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/v1/ok", DefaultToken); got != 200 {
		t.Errorf("modelled request: %d", got)
	}
	if got := get("/v1/ok", "wrong"); got != 401 {
		t.Errorf("wrong token: %d, want 401", got)
	}
	if got := get("/v1/other", DefaultToken); got != 501 || len(reported) != 1 {
		t.Errorf("unmodelled request: %d, reported %q; want 501 and one report", got, reported)
	}
	s.FailNext(1, 503)
	s.RateLimitNext(1, "7")
	if a, b, c := get("/v1/ok", DefaultToken), get("/v1/ok", DefaultToken), get("/v1/ok", DefaultToken); a != 503 || b != 429 || c != 200 {
		t.Errorf("injected faults gave %d, %d, %d; want 503, 429, 200", a, b, c)
	}
}
