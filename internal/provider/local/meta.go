package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// metaVersion is the version of node.json; readMeta refuses others so an
// older binary never misreads a newer record.
const metaVersion = 1

// Phases of a node record.
const (
	phaseCreating = "creating"
	phaseReady    = "ready"
)

// nodeMeta is what a node's node.json holds: everything needed to find,
// restart and tear down the node from any process, even after a reboot.
type nodeMeta struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// ShortID names the node's host-wide objects (netns, veth, machine,
	// cgroups, nft rule); see names.go.
	ShortID string `json:"short_id,omitempty"`
	Phase   string `json:"phase"`
	// Creator is the process running CreateNode while Phase is creating.
	Creator procRef `json:"creator"`
	IP      string  `json:"ip,omitempty"`
	Gateway string  `json:"gateway,omitempty"`
	MTU     int     `json:"mtu,omitempty"`
	Image   string  `json:"image"`
	// ImageDir is the overlay's lower directory: the image rootfs.
	ImageDir string    `json:"image_dir,omitempty"`
	Size     string    `json:"size"`
	RAMMB    int       `json:"ram_mb"`
	VCPUs    int       `json:"vcpus"`
	Created  time.Time `json:"created"`
	// Proc is the running nspawn (zero when stopped) and BootID the host
	// boot it was started in: after a reboot a recorded pid means nothing.
	Proc   procRef `json:"proc"`
	BootID string  `json:"boot_id,omitempty"`
	// Cgroups are the cgroup directories made for the current run.
	Cgroups []string `json:"cgroups,omitempty"`
}

// nodePaths are the files of one node under the root.
type nodePaths struct {
	dir, meta, lock, upper, work, rootfs, console string
}

func (d *Driver) nodesDir() string { return filepath.Join(d.opts.Root, "nodes") }

func (d *Driver) nodePaths(name string) nodePaths {
	dir := filepath.Join(d.nodesDir(), name)
	return nodePaths{
		dir:     dir,
		meta:    filepath.Join(dir, "node.json"),
		lock:    filepath.Join(dir, "lock"),
		upper:   filepath.Join(dir, "upper"),
		work:    filepath.Join(dir, "work"),
		rootfs:  filepath.Join(dir, "rootfs"),
		console: filepath.Join(dir, "console.log"),
	}
}

func readMeta(path string) (nodeMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nodeMeta{}, err
	}
	var m nodeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nodeMeta{}, fmt.Errorf("read %s: %w", path, err)
	}
	if m.Version != metaVersion {
		return nodeMeta{}, fmt.Errorf("read %s: record version %d, this toppcloud reads version %d", path, m.Version, metaVersion)
	}
	return m, nil
}

func writeMeta(path string, m nodeMeta) error {
	m.Version = metaVersion
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
