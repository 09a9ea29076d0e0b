package provider

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseMatcher(t *testing.T) {
	tests := []struct {
		in      string
		want    Matcher
		wantErr string
	}{
		{"id 42", Matcher{Kind: "id", Value: "42"}, ""},
		{"name *lucid*", Matcher{Kind: "name", Value: "*lucid*"}, ""},
		{"NAME Debian 12", Matcher{Kind: "name", Value: "Debian 12"}, ""},
		{"ram 256", Matcher{Kind: "ram", Value: "256"}, ""},
		{"ram 256MB", Matcher{Kind: "ram", Value: "256MB"}, ""},
		{"ram first 1024", Matcher{Kind: "ram", First: true, Value: "1024"}, ""},
		{"name first debian-12-*", Matcher{Kind: "name", First: true, Value: "debian-12-*"}, ""},
		{"debian-12", Matcher{Kind: "name", Value: "debian-12"}, ""},
		{"Ubuntu 24.04", Matcher{Kind: "name", Value: "Ubuntu 24.04"}, ""},
		// "first" alone is a value, not a keyword.
		{"name first", Matcher{Kind: "name", Value: "first"}, ""},
		{"", Matcher{}, "empty"},
		{"id", Matcher{}, "no value"},
		{"ram lots", Matcher{}, "not a number"},
		{"ram 1GB", Matcher{}, "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMatcher(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMatchImage(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	images := []Image{
		{ID: "1", Name: "Debian 12 (Bookworm)"},
		{ID: "2", Name: "Ubuntu 24.04 LTS"},
		{ID: "3", Name: "debian-12-amd64-20260101", Created: day(1)},
		{ID: "4", Name: "debian-12-amd64-20260110", Created: day(10)},
		{ID: "5", Name: "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-20260101"},
	}
	tests := []struct {
		matcher, wantID string
		wantErr         any
	}{
		{"id 2", "2", nil},
		{"name debian 12 (bookworm)", "1", nil},
		{"name *bookworm*", "1", nil},
		{"name first debian-12-amd64-*", "4", nil}, // newest wins
		{"name debian-12-amd64-*", "", &AmbiguousMatchError{}},
		{"name *noble*", "5", nil}, // * crosses "/" as in fnmatch
		{"name centos*", "", &NoMatchError{}},
		{"id 99", "", &NoMatchError{}},
		{"name [Dd]ebian 12*", "1", nil},
		{"name [!u]ebian 12*", "1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.matcher, func(t *testing.T) {
			m, err := ParseMatcher(tt.matcher)
			if err != nil {
				t.Fatal(err)
			}
			got, err := MatchImage(images, m)
			switch want := tt.wantErr.(type) {
			case *AmbiguousMatchError:
				if !errors.As(err, &want) || len(want.Matches) != 2 || !strings.Contains(err.Error(), "first") {
					t.Fatalf("err = %v, want an ambiguous match listing both and suggesting first", err)
				}
				return
			case *NoMatchError:
				if !errors.As(err, &want) || len(want.Candidates) != len(images) {
					t.Fatalf("err = %v, want no match listing the candidates", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.wantID {
				t.Errorf("got %s (%s), want id %s", got.ID, got.Name, tt.wantID)
			}
		})
	}
	if _, err := MatchImage(images, Matcher{Kind: "ram", Value: "512"}); err == nil {
		t.Error("images matched by ram: want an error")
	}
}

func TestMatchSize(t *testing.T) {
	sizes := []Size{
		{ID: "a", Name: "small", RAMMB: 512},
		{ID: "b", Name: "medium", RAMMB: 1024},
		{ID: "c", Name: "medium-cpu", RAMMB: 1024},
		{ID: "d", Name: "large", RAMMB: 2048},
	}
	tests := []struct{ matcher, wantID, wantErr string }{
		{"ram 512", "a", ""},
		{"ram 512MB", "a", ""},
		{"ram 1024", "", "2 sizes match"},
		{"ram first 1024", "b", ""},
		{"name large", "d", ""},
		{"name LARGE", "d", ""},
		{"id c", "c", ""},
		{"ram 4096", "", "no size matches"},
		{"name medium*", "", "2 sizes match"},
	}
	for _, tt := range tests {
		t.Run(tt.matcher, func(t *testing.T) {
			m, err := ParseMatcher(tt.matcher)
			if err != nil {
				t.Fatal(err)
			}
			got, err := MatchSize(sizes, m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.wantID {
				t.Errorf("got %s, want %s", got.ID, tt.wantID)
			}
		})
	}
}

func TestDefaultMatchers(t *testing.T) {
	info := Info{DefaultImage: "name debian-12", DefaultSize: "ram 512"}
	tests := []struct {
		settings        Settings
		wantImg, wantSz string
	}{
		{Settings{}, "name debian-12", "ram 512"},
		{Settings{"image": "name first ubuntu*", "size": "ram first 1024"}, "name first ubuntu*", "ram first 1024"},
		{Settings{"image_name": "*lucid*", "image": "id 9", "size_id": "3", "size": "ram 1"}, "name *lucid*", "id 3"},
		{Settings{"image_id": "112"}, "id 112", "ram 512"},
	}
	for _, tt := range tests {
		img, sz := DefaultMatchers(tt.settings, info)
		if img != tt.wantImg || sz != tt.wantSz {
			t.Errorf("DefaultMatchers(%v) = %q, %q; want %q, %q", tt.settings, img, sz, tt.wantImg, tt.wantSz)
		}
	}
}
