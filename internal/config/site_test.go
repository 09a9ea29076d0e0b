package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func knownNodes(names ...string) func(string) (bool, error) {
	return func(n string) (bool, error) {
		for _, k := range names {
			if k == n {
				return true, nil
			}
		}
		return false, nil
	}
}

func TestSites(t *testing.T) {
	f := load(t, `[site:blog]
locations = blog.example.com https://api.example.com/v1
balancer = lb
nodes = web1 web2
services = db

[site:small]
locations = small.example.com
nodes = one
`)
	sites, err := f.Sites(knownNodes("lb", "web1", "web2", "db", "one"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 2 {
		t.Fatalf("sites = %+v", sites)
	}
	b := sites[0]
	var locs []string
	for _, l := range b.Locations {
		locs = append(locs, l.String())
	}
	if b.Name != "blog" || b.Balancer != "lb" || b.Services != "db" || !reflect.DeepEqual(b.Nodes, []string{"web1", "web2"}) ||
		!reflect.DeepEqual(locs, []string{"blog.example.com", "https://api.example.com/v1/"}) {
		t.Errorf("site = %+v, locations %v", b, locs)
	}
	if s := sites[1]; s.Balancer != "" || s.Services != "" || !reflect.DeepEqual(s.Nodes, []string{"one"}) {
		t.Errorf("small = %+v", s)
	}
	if got, ok := SiteOf(sites, b.Locations[1]); !ok || got.Name != "blog" {
		t.Errorf("SiteOf = %v %v", got.Name, ok)
	}
	if got, ok := SiteOfNode(sites, "db"); !ok || got.Name != "blog" {
		t.Errorf("SiteOfNode(db) = %v %v", got.Name, ok)
	}
	if _, ok := SiteOfNode(sites, "other"); ok {
		t.Error("SiteOfNode(other) found a site")
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings: %v", f.Warnings)
	}
	if _, err := f.Site("nope", nil); err == nil || !strings.Contains(err.Error(), "sites: blog, small") {
		t.Errorf("Site(nope) = %v", err)
	}
}

func TestSites_Errors(t *testing.T) {
	all := knownNodes("lb", "web1", "web2", "db", "x")
	tests := []struct {
		name, text, want string
	}{
		{"bad name", "[site:Bad.Name]\nlocations = a.example\nnodes = web1\n", "[site:Bad.Name]: a site section is named"},
		{"no locations", "[site:a]\nnodes = web1\n", "needs locations"},
		{"bad location", "[site:a]\nlocations = a.example/../x\nnodes = web1\n", `location "a.example/../x"`},
		{"wildcard", "[site:a]\nlocations = .example.com\nnodes = web1\n", "names one host"},
		{"no app node", "[site:a]\nlocations = a.example\nbalancer = lb\n", "at least one app node"},
		{"unknown node", "[site:a]\nlocations = a.example\nnodes = web1 web9\n", "no node named web9"},
		{"two balancers", "[site:a]\nlocations = a.example\nbalancer = lb x\nnodes = web1\n", "balancer names one node"},
		{"two roles", "[site:a]\nlocations = a.example\nnodes = web1\nservices = web1\n", "both nodes and services"},
		{"node twice", "[site:a]\nlocations = a.example\nnodes = web1 web1\n", "web1 is given twice"},
		{"unknown key", "[site:a]\nlocations = a.example\nnodes = web1\nnode = web2\n", "unknown key node"},
		{"node in two sites", "[site:a]\nlocations = a.example\nnodes = web1\n[site:b]\nlocations = b.example\nnodes = web2\nservices = web1\n",
			"node web1 is already in [site:a]"},
		{"location in two sites", "[site:a]\nlocations = a.example\nnodes = web1\n[site:b]\nlocations = http://A.example:80/\nnodes = web2\n",
			"a.example is already a location of [site:a]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := load(t, tt.text)
			_, err := f.Sites(all)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sites = %v, want an error containing %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), f.Path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestSites_KnownError(t *testing.T) {
	f := load(t, "[site:a]\nlocations = a.example\nnodes = web1\n")
	boom := errors.New("state unreadable")
	if _, err := f.Sites(func(string) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("Sites = %v, want %v", err, boom)
	}
}
