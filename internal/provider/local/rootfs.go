package local

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// A node's root file system is an overlayfs: the cached image as the
// read-only lower layer, the node's own upper directory on top. Measured
// with bench/localnode -copy on the development host: mounting takes under
// 10 ms and a new node costs no disk (8 MB once booted: journal, logs),
// while a full copy of the 199 MB image (cp -a, then sync) took 7 to 9 s
// and 199 MB per node, and removing it again 2 to 3 s: more than the whole
// create-until-sshd-answers time (0.5 s) and destroy time (0.3 s) with the
// overlay. The price is that the image directory must never change while
// a node uses it, which holds: an image is built into a temporary
// directory and renamed into place once, and a new image format gets a
// new directory (see image.go).

// mountRootfs mounts the node's overlay unless it is mounted already.
func mountRootfs(lower string, p nodePaths) error {
	for _, dir := range []string{p.upper, p.work, p.rootfs} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if mounted, err := isMountPoint(p.rootfs); err != nil || mounted {
		return err
	}
	if _, err := os.Stat(lower); err != nil {
		return fmt.Errorf("image %s is missing (%w): nodes made from it cannot start; destroy them", lower, err)
	}
	if err := mountOverlay(lower, p.upper, p.work, p.rootfs); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", p.rootfs, err)
	}
	return nil
}

// unmountRootfs unmounts the node's overlay if it is mounted. A busy mount
// (a shell of the admin's inside it) is detached lazily rather than kept.
func unmountRootfs(p nodePaths) error {
	mounted, err := isMountPoint(p.rootfs)
	if err != nil || !mounted {
		return err
	}
	return unmountTree(p.rootfs)
}

// unmountTree unmounts every mount at or under dir, deepest first.
func unmountTree(dir string) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	var under []string
	for _, m := range mounts {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			under = append(under, m)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(under)))
	var errs []error
	for _, m := range under {
		var err error
		for range 50 {
			if err = unix.Unmount(m, 0); err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if errors.Is(err, unix.EBUSY) {
			err = detachMount(m)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points of this mount namespace.
func mountPoints() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountPoints(b), nil
}

func parseMountPoints(mountinfo []byte) []string {
	var out []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 {
			out = append(out, unescapeMountinfo(f[4]))
		}
	}
	return out
}

func isMountPoint(dir string) (bool, error) {
	mounts, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m == dir {
			return true, nil
		}
	}
	return false, nil
}

// checkFilePath accepts an absolute, clean path to a file in the node.
// The lexical check refuses "..", relative and odd paths before anything
// happens; writing through os.Root then refuses symbolic links in the image
// that would lead out of the node's root.
func checkFilePath(p string) error {
	switch {
	case p == "" || !strings.HasPrefix(p, "/"):
		return fmt.Errorf("file path %q: must be absolute", p)
	case p == "/" || strings.HasSuffix(p, "/"):
		return fmt.Errorf("file path %q: names a directory, not a file", p)
	case path.Clean(p) != p || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return fmt.Errorf("file path %q: not clean (use %q)", p, path.Clean(p))
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("file path %q: contains a NUL byte", p)
	}
	return nil
}

// nodeFile is one file laid into a node's root before its first boot.
type nodeFile struct {
	path string
	data []byte
	mode fs.FileMode
	// symlink, if set, makes path a symbolic link to it instead.
	symlink string
}

// writeNodeFiles writes files into the root file system at rootfs,
// creating parent directories (0755, or 0700 for /root/.ssh). Existing
// files, and symbolic links in the final component, are replaced.
func writeNodeFiles(rootfs string, files []nodeFile) error {
	r, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, f := range files {
		rel := strings.TrimPrefix(f.path, "/")
		dir := path.Dir(rel)
		if dir != "." {
			perm := fs.FileMode(0o755)
			if dir == "root/.ssh" {
				perm = 0o700
			}
			if err := r.MkdirAll(dir, perm); err != nil {
				return fmt.Errorf("write %s in node: %w", f.path, err)
			}
			if dir == "root/.ssh" {
				if err := r.Chmod(dir, 0o700); err != nil {
					return fmt.Errorf("write %s in node: %w", f.path, err)
				}
			}
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s in node: replace: %w", f.path, err)
		}
		if f.symlink != "" {
			if err := r.Symlink(f.symlink, rel); err != nil {
				return fmt.Errorf("write %s in node: %w", f.path, err)
			}
			continue
		}
		w, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("write %s in node: %w", f.path, err)
		}
		_, err = w.Write(f.data)
		if err == nil {
			err = w.Chmod(f.mode) // the umask may have narrowed it
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s in node: %w", f.path, err)
		}
	}
	return nil
}

// identityFiles are the files that make a node itself: hostname, hosts,
// machine id, SSH host keys, apt sources, DNS and root's authorized keys.
// The image has none of them (or generic ones), so no two nodes share a
// machine id or host key.
func identityFiles(name string, keys []string, hostKeys []nodeFile, resolvConf []byte, sources string) []nodeFile {
	short, _, _ := strings.Cut(name, ".")
	hosts := "127.0.0.1\tlocalhost\n" +
		"127.0.1.1\t" + name
	if short != name {
		hosts += " " + short
	}
	hosts += "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	var ak strings.Builder
	for _, k := range keys {
		ak.WriteString(strings.TrimSpace(k))
		ak.WriteByte('\n')
	}
	files := []nodeFile{
		{path: "/etc/hostname", data: []byte(name + "\n"), mode: 0o644},
		{path: "/etc/hosts", data: []byte(hosts), mode: 0o644},
		{path: "/etc/machine-id", data: []byte(newMachineID() + "\n"), mode: 0o444},
		{path: "/etc/resolv.conf", data: resolvConf, mode: 0o644},
		{path: "/etc/apt/sources.list", data: []byte(sources), mode: 0o644},
		{path: "/root/.ssh/authorized_keys", data: []byte(ak.String()), mode: 0o600},
	}
	return append(files, hostKeys...)
}

func newMachineID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// aptSources is a node's /etc/apt/sources.list.
func aptSources(mirror, security string) string {
	s := "deb " + mirror + " bookworm main\n" +
		"deb " + mirror + " bookworm-updates main\n"
	if security != "none" && security != "" {
		s += "deb " + security + " bookworm-security main\n"
	}
	return s
}

// generateHostKeys makes the node's SSH host keys: ed25519 and ECDSA P-256.
// No RSA key: generating a 3072-bit one took 1 to 4 s (Go) and up to 20 s
// (ssh-keygen) on the loaded development host, the largest part of creating
// a node, and every current SSH client takes ed25519.
func generateHostKeys(comment string) ([]nodeFile, error) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var files []nodeFile
	for _, k := range []struct {
		name string
		priv any
	}{{"ed25519", edPriv}, {"ecdsa", ecPriv}} {
		block, err := ssh.MarshalPrivateKey(k.priv, comment)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.NewSignerFromKey(k.priv)
		if err != nil {
			return nil, err
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"
		base := "/etc/ssh/ssh_host_" + k.name + "_key"
		files = append(files,
			nodeFile{path: base, data: pem.EncodeToMemory(block), mode: 0o600},
			nodeFile{path: base + ".pub", data: []byte(pub), mode: 0o644})
	}
	return files, nil
}

// parseDNS reads the dns option: addresses separated by commas or spaces.
func parseDNS(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", f)
		}
		out = append(out, a.String())
	}
	return out, nil
}

// nodeResolvConf makes a node's /etc/resolv.conf: the given servers, or
// else the host's (hostConf, then fallback such as systemd-resolved's
// upstream list) without loopback servers, which from inside the node's
// network namespace would be the node itself.
func nodeResolvConf(servers []string, hostConfs ...[]byte) ([]byte, error) {
	var search []string
	if len(servers) == 0 {
		for _, conf := range hostConfs {
			var found []string
			search = nil
			for _, line := range strings.Split(string(conf), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				switch f[0] {
				case "nameserver":
					a, err := netip.ParseAddr(f[1])
					if err == nil && !a.IsLoopback() && !a.IsUnspecified() {
						found = append(found, a.String())
					}
				case "search", "domain":
					search = f[1:]
				}
			}
			if len(found) > 0 {
				servers = found
				break
			}
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no name server for nodes: the host's resolv.conf lists only loopback servers; set dns = ADDRESS in the provider section")
	}
	var b strings.Builder
	b.WriteString("# written by toppcloud at node creation\n")
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	return []byte(b.String()), nil
}

// readHostResolvConfs reads the host's resolver files, best first.
func readHostResolvConfs() [][]byte {
	var out [][]byte
	for _, p := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, b)
		}
	}
	return out
}
