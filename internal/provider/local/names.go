package local

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Host-wide objects of a node are named from its short id, 8 random hex
// digits chosen at creation and kept in node.json. Node names cannot be
// used: an interface name has at most 15 bytes (IFNAMSIZ-1), and names
// repeat across roots (two test runs may both create "web1"), while these
// objects share one namespace per host.
const (
	shortIDLen     = 8
	hostIfPrefix   = "tcl-"       // host end of the veth pair
	netnsPrefix    = "toppcloud-" // /run/netns/NAME
	machinePrefix  = "tcl-"       // nspawn's -M, also unique per host
	cgroupPrefix   = "toppcloud-local-"
	nodeIfName     = "eth0" // the node's end, inside its own namespace
	ifNameMaxBytes = 15
)

func newShortID() string {
	b := make([]byte, shortIDLen/2)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b)
}

func validShortID(id string) bool {
	if len(id) != shortIDLen {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func hostIfName(id string) string  { return hostIfPrefix + id }
func netnsName(id string) string   { return netnsPrefix + id }
func machineName(id string) string { return machinePrefix + id }
func netnsPath(id string) string   { return "/run/netns/" + netnsName(id) }
func cgroupName(id string) string  { return cgroupPrefix + id }

// natComment marks a node's masquerade rule so it can be found and
// removed alone.
func natComment(id string) string { return "toppcloud-local " + id }
