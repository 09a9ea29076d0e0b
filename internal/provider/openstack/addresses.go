package openstack

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// novaAddress is one entry of a server's "addresses" map, keyed there by
// network name.
type novaAddress struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"` // "fixed" or "floating"
}

// splitAddresses sorts a server's addresses into public and private, each
// with IPv4 before IPv6. The heuristic, since Nova only reports addresses
// per network and clouds name networks as they like:
//
//  1. accessIPv4/accessIPv6 (Rackspace fills them) are public.
//  2. With publicNetwork set (the public_network option), addresses in the
//     network of that name are public, the others private.
//  3. Otherwise a network whose name says so ("public", "external",
//     "ext-net", "internet" in it) holds public addresses.
//  4. Otherwise a floating IP is public, and so is any address outside the
//     private ranges (RFC 1918, CGNAT 100.64/10, ULA fc00::/7, link-local,
//     loopback); the rest are private.
//
// A node whose addresses are all private still has one to connect to:
// provider.Node.Address falls back to the first private IPv4.
func splitAddresses(s *servers.Server, publicNetwork string) (public, private []string) {
	var pub4, pub6, priv4, priv6 []string
	add := func(addr string, isPublic bool) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		a = a.Unmap()
		text := a.String()
		if slices.Contains(pub4, text) || slices.Contains(pub6, text) || slices.Contains(priv4, text) || slices.Contains(priv6, text) {
			return
		}
		switch {
		case isPublic && a.Is4():
			pub4 = append(pub4, text)
		case isPublic:
			pub6 = append(pub6, text)
		case a.Is4():
			priv4 = append(priv4, text)
		default:
			priv6 = append(priv6, text)
		}
	}
	add(s.AccessIPv4, true)
	add(s.AccessIPv6, true)

	networks := decodeAddresses(s.Addresses)
	names := make([]string, 0, len(networks))
	for name := range networks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, a := range networks[name] {
			var isPublic bool
			switch {
			case publicNetwork != "":
				isPublic = name == publicNetwork || a.Type == "floating"
			case publicNetworkName(name):
				isPublic = true
			default:
				isPublic = a.Type == "floating" || globalAddress(a.Addr)
			}
			add(a.Addr, isPublic)
		}
	}
	return append(pub4, pub6...), append(priv4, priv6...)
}

// decodeAddresses turns gophercloud's loosely typed addresses map into
// typed entries; entries that do not decode are skipped.
func decodeAddresses(raw map[string]any) map[string][]novaAddress {
	out := make(map[string][]novaAddress, len(raw))
	for name, v := range raw {
		b, err := json.Marshal(v)
		if err != nil {
			continue
		}
		var list []novaAddress
		if json.Unmarshal(b, &list) == nil {
			out[name] = list
		}
	}
	return out
}

func publicNetworkName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"public", "external", "ext-net", "ext_net", "internet"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func globalAddress(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}
