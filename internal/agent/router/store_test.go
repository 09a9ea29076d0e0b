package router

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestStore_RoundTrip(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "example.com", "site", "site.1")
	mustSet(t, tb, "example.com", "site", "site.2")
	mustSet(t, tb, "https://secure.example.com:8443/app", "app", "app.2024-01-02_001")
	mustSet(t, tb, ".example.com/", "any", "any.1")
	mustSet(t, tb, "[::1]/", "v6", "v6.1")
	mustSet(t, tb, "*/blog", "blog", "blog.1")
	mustSet(t, tb, "*/blog", "blog", "blog.2")
	tb.Remove(pats(t, "*/blog"), true)
	if _, err := tb.Disable("any"); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "routes.json")
	if err := SaveTable(path, tb); err != nil {
		t.Fatal(err)
	}
	got, problems, err := LoadTable(path)
	if err != nil || len(problems) != 0 {
		t.Fatalf("LoadTable: %v, %v", problems, err)
	}
	if !reflect.DeepEqual(got, tb) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, tb)
	}

	// Encoding is stable, and the saved shape is what we document.
	a, _ := EncodeTable(tb)
	b, _ := EncodeTable(got)
	if string(a) != string(b) {
		t.Fatal("encoding not stable")
	}
	for _, want := range []string{`"version": 1`, `"location": "https://secure.example.com:8443/app/"`, `"prev": "blog.1"`, `"disabled": [`} {
		if !strings.Contains(string(a), want) {
			t.Errorf("saved table lacks %s:\n%s", want, a)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temp files left beside routes.json: %v", entries)
	}
}

func TestStore_MissingFileIsEmpty(t *testing.T) {
	tb, problems, err := LoadTable(filepath.Join(t.TempDir(), "routes.json"))
	if err != nil || len(problems) != 0 || len(tb.Routes) != 0 {
		t.Fatalf("LoadTable(missing) = %+v, %v, %v", tb, problems, err)
	}
}

func TestStore_RefusesWholeFile(t *testing.T) {
	tests := []struct {
		name, data string
		is         error
		msg        string
	}{
		{"future version", `{"version": 2, "routes": []}`, ErrNewerVersion, "upgrade toppcloud"},
		{"no version", `{"routes": []}`, nil, "version"},
		{"not json", `routes`, nil, "decode route table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "routes.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadTable(path)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to name the file and say %q", err, tt.msg)
			}
		})
	}
}

func TestStore_BrokenEntriesSkippedOneByOne(t *testing.T) {
	data := `{
  "version": 1,
  "routes": [
    {"location": "good.example.com", "app": "good", "live": "good.1"},
    {"location": "x/../y", "app": "badloc", "live": "badloc.1"},
    {"location": "bad-app.example.com", "app": "bad.app", "live": "x.1"},
    {"location": "bad-inst.example.com", "app": "badinst", "live": "../etc"},
    {"location": "empty.example.com", "app": "empty"},
    {"location": "typed.example.com", "app": "typed", "live": 42},
    {"location": "good.example.com/", "app": "dup", "live": "dup.1"},
    "not an object",
    {"location": "also-good.example.com/blog", "app": "alsogood", "live": "alsogood.2", "prev": "alsogood.1"}
  ],
  "disabled": ["good", "../x"]
}`
	tb, problems, err := DecodeTable([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := briefs(tb.Routes); !reflect.DeepEqual(got, []brief{
		{"also-good.example.com/blog/", "alsogood", "alsogood.2", "alsogood.1"},
		{"good.example.com", "good", "good.1", ""},
	}) {
		t.Fatalf("restored %+v", got)
	}
	if !reflect.DeepEqual(tb.Disabled, []string{"good"}) {
		t.Fatalf("disabled = %q", tb.Disabled)
	}
	wantApps := []string{"badloc", "bad.app", "badinst", "empty", "typed", "dup", ""}
	var entryErrs []*EntryError
	for _, p := range problems {
		var ee *EntryError
		if errors.As(p, &ee) {
			entryErrs = append(entryErrs, ee)
		}
	}
	if len(entryErrs) != len(wantApps) || len(problems) != len(wantApps)+1 {
		t.Fatalf("problems = %v", problems)
	}
	for i, ee := range entryErrs {
		if ee.App != wantApps[i] {
			t.Errorf("problem %d names app %q, want %q (%v)", i, ee.App, wantApps[i], ee)
		}
		if wantApps[i] != "" && !strings.Contains(ee.Error(), `app "`+wantApps[i]+`"`) {
			t.Errorf("message %q does not name the app", ee)
		}
	}
	if entryErrs[0].Location != "x/../y" || !strings.Contains(entryErrs[0].Error(), "'..'") {
		t.Errorf("bad location problem: %v", entryErrs[0])
	}
	if !strings.Contains(entryErrs[5].Error(), "same location as route 0") {
		t.Errorf("duplicate problem: %v", entryErrs[5])
	}
	if entryErrs[4].Location != "typed.example.com" {
		t.Errorf("a type error still names the location: %+v", entryErrs[4])
	}
}
