package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/toppcloud/toppcloud/internal/ini"
	"github.com/toppcloud/toppcloud/internal/location"
)

// SiteSection is a checked [site:NAME] section: one app served by several
// nodes.
//
//	[site:NAME]
//	locations = blog.example.com api.example.com
//	balancer = lb1       ; optional
//	nodes = web1 web2    ; app nodes
//	services = db1       ; optional
type SiteSection struct {
	// Name is NAME in [site:NAME].
	Name string
	// Locations are the site's locations, normalized, in file order.
	Locations []location.Location
	// Balancer is the balancer node's name ("" for none).
	Balancer string
	// Nodes are the app nodes' names, at least one.
	Nodes []string
	// Services is the services node's name ("" for none).
	Services string
	// Line is the section header's line, for messages.
	Line int
}

// siteKeys are the keys a [site:NAME] section may have.
var siteKeys = map[string]bool{"locations": true, "balancer": true, "nodes": true, "services": true}

// siteNameRE is a site's name: it travels to nodes (site.json) and in
// messages, so it stays a plain word.
var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// SiteNames returns the NAMEs of the [site:NAME] sections in file order.
func (f *File) SiteNames() []string {
	var names []string
	for _, s := range f.ini.Sections() {
		if name, ok := strings.CutPrefix(s.Name, "site:"); ok {
			names = append(names, name)
		}
	}
	return names
}

// Sites returns every [site:NAME] section, checked: names are lower-case
// words, every node is one known says the client has (known may be nil to
// skip that check), a node is in at most one site and plays one role in
// it, a location belongs to at most one site, and each site has at least
// one app node. Errors name the file and line.
func (f *File) Sites(known func(node string) (bool, error)) ([]SiteSection, error) {
	var sites []SiteSection
	nodeSite := map[string]string{} // node -> site
	locSite := map[string]string{}  // location key -> site
	for _, s := range f.ini.Sections() {
		name, ok := strings.CutPrefix(s.Name, "site:")
		if !ok {
			continue
		}
		site, err := f.site(s, name, known)
		if err != nil {
			return nil, err
		}
		for _, n := range site.members() {
			if other, dup := nodeSite[n]; dup {
				key := "nodes"
				if n == site.Balancer {
					key = "balancer"
				} else if n == site.Services {
					key = "services"
				}
				return nil, s.Errorf(key, "node %s is already in [site:%s]; a node belongs to one site at most", n, other)
			}
			nodeSite[n] = name
		}
		for _, l := range site.Locations {
			if other, dup := locSite[l.Key()]; dup {
				return nil, s.Errorf("locations", "%s is already a location of [site:%s]; a location belongs to one site at most", l, other)
			}
			locSite[l.Key()] = name
		}
		sites = append(sites, site)
	}
	return sites, nil
}

// Site returns [site:NAME], checked as Sites checks every site (the
// uniqueness checks included).
func (f *File) Site(name string, known func(node string) (bool, error)) (SiteSection, error) {
	sites, err := f.Sites(known)
	if err != nil {
		return SiteSection{}, err
	}
	for _, s := range sites {
		if s.Name == name {
			return s, nil
		}
	}
	avail := f.SiteNames()
	if len(avail) == 0 {
		return SiteSection{}, fmt.Errorf("no [site:%s] section in %s; it has no site sections at all", name, f.Path)
	}
	return SiteSection{}, fmt.Errorf("no [site:%s] section in %s; sites: %s", name, f.Path, strings.Join(avail, ", "))
}

// SiteOf returns the site one of whose locations is loc (compared
// normalized, by host, port and path), if any.
func SiteOf(sites []SiteSection, loc location.Location) (SiteSection, bool) {
	for _, s := range sites {
		for _, l := range s.Locations {
			if l.Key() == loc.Key() {
				return s, true
			}
		}
	}
	return SiteSection{}, false
}

// SiteOfNode returns the site a node belongs to, if any.
func SiteOfNode(sites []SiteSection, node string) (SiteSection, bool) {
	for _, s := range sites {
		for _, n := range s.members() {
			if n == node {
				return s, true
			}
		}
	}
	return SiteSection{}, false
}

// members are the site's nodes, each once: balancer, app nodes, services.
func (s SiteSection) members() []string {
	var out []string
	if s.Balancer != "" {
		out = append(out, s.Balancer)
	}
	out = append(out, s.Nodes...)
	if s.Services != "" {
		out = append(out, s.Services)
	}
	return out
}

func (f *File) site(s *ini.Section, name string, known func(string) (bool, error)) (SiteSection, error) {
	site := SiteSection{Name: name, Line: s.Line}
	if !siteNameRE.MatchString(name) {
		return site, &ini.Error{File: f.Path, Line: s.Line,
			Msg: fmt.Sprintf("[%s]: a site section is named [site:NAME], NAME made of lower-case letters, digits, - and _ (at most 63)", s.Name)}
	}
	for _, k := range s.Keys() {
		if k.Section == ini.DefaultSection {
			continue
		}
		if !siteKeys[k.Name] {
			return site, s.Errorf(k.Name, "unknown key %s in [site:%s] (a site has locations, balancer, nodes and services)", k.Name, name)
		}
	}
	for _, l := range strings.Fields(s.Value("locations")) {
		loc, err := location.Parse(l)
		if err != nil {
			return site, s.Errorf("locations", "%v", err)
		}
		if loc.Wildcard() || loc.CatchAll() {
			return site, s.Errorf("locations", "%s: a site's location names one host", l)
		}
		for _, prev := range site.Locations {
			if prev.Key() == loc.Key() {
				return site, s.Errorf("locations", "%s is given twice", l)
			}
		}
		site.Locations = append(site.Locations, loc)
	}
	if len(site.Locations) == 0 {
		return site, s.Errorf("locations", "[site:%s] needs locations = LOCATION... (the hosts the site serves)", name)
	}
	one := func(key string) (string, error) {
		v := strings.Fields(s.Value(key))
		if len(v) > 1 {
			return "", s.Errorf(key, "%s names one node, not %d", key, len(v))
		}
		if len(v) == 0 {
			return "", nil
		}
		return v[0], nil
	}
	var err error
	if site.Balancer, err = one("balancer"); err != nil {
		return site, err
	}
	if site.Services, err = one("services"); err != nil {
		return site, err
	}
	site.Nodes = strings.Fields(s.Value("nodes"))
	if len(site.Nodes) == 0 {
		return site, s.Errorf("nodes", "[site:%s] needs nodes = NODE... (at least one app node)", name)
	}
	seen := map[string]string{}
	check := func(key, n string) error {
		if prev, dup := seen[n]; dup {
			if prev == key {
				return s.Errorf(key, "node %s is given twice", n)
			}
			return s.Errorf(key, "node %s is both %s and %s; a node has one role in a site", n, prev, key)
		}
		seen[n] = key
		if known == nil {
			return nil
		}
		ok, err := known(n)
		if err != nil {
			return err
		}
		if !ok {
			return s.Errorf(key, "no node named %s (list-nodes shows the nodes; create-node makes or registers one)", n)
		}
		return nil
	}
	if site.Balancer != "" {
		if err := check("balancer", site.Balancer); err != nil {
			return site, err
		}
	}
	for _, n := range site.Nodes {
		if err := check("nodes", n); err != nil {
			return site, err
		}
	}
	if site.Services != "" {
		if err := check("services", site.Services); err != nil {
			return site, err
		}
	}
	return site, nil
}
