package local

import "strings"

// requiredCommands are the host commands the driver runs and the Debian
// packages that provide them.
var requiredCommands = []struct{ cmd, pkg string }{
	{"systemd-nspawn", "systemd-container"},
	{"debootstrap", "debootstrap"},
	{"nft", "nftables"},
	{"ip", "iproute2"},
}

// PrereqError says the host cannot run local nodes, and how to fix it.
type PrereqError struct {
	// Problems are short statements ("not running as root").
	Problems []string
	// Fix is the command (or commands) that fix them.
	Fix string
}

func (e *PrereqError) Error() string {
	return "local provider: " + strings.Join(e.Problems, "; ") + ". Fix: " + e.Fix
}

// checkPrereqs runs before anything changes the host: Linux, root, then
// the commands. It reports everything missing at once.
func checkPrereqs(h hostEnv) error {
	if h.goos != "linux" {
		// The client builds for macOS (init, serve, deploys to other
		// providers); local nodes cannot exist there at all.
		system := h.goos
		if system == "darwin" {
			system = "macOS"
		}
		return &PrereqError{
			Problems: []string{"its nodes are systemd-nspawn containers, which need Linux; this is " + system},
			Fix:      "on " + system + " use a cloud provider, or provider = existing for a server you already have",
		}
	}
	var problems, fixes []string
	if h.euid != 0 {
		problems = append(problems, "not running as root (nodes need network namespaces, mounts and systemd-nspawn)")
		fixes = append(fixes, "run toppcloud as root, e.g. sudo toppcloud ...")
	}
	var missing, pkgs []string
	for _, c := range requiredCommands {
		if _, err := h.lookPath(c.cmd); err != nil {
			missing = append(missing, c.cmd)
			pkgs = append(pkgs, c.pkg)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
		fixes = append(fixes, "apt-get install -y "+strings.Join(pkgs, " "))
	}
	if len(problems) == 0 {
		return nil
	}
	return &PrereqError{Problems: problems, Fix: strings.Join(fixes, " and ")}
}

// prereqs checks the driver's host.
func (d *Driver) prereqs() error { return checkPrereqs(d.envHost) }
