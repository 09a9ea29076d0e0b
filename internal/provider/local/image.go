package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/provider"
)

const (
	imageID = "debian-12"
	// imageFormat changes whenever the build or customization below
	// changes: a new format builds into a new directory, so nodes using the
	// old one (as their overlay's lower layer) keep working.
	imageFormat = 1
	imageSuite  = "bookworm"
)

// imagePackages is what debootstrap --variant=minbase adds: a booting
// systemd with sshd, and what a cloud image has and setup-node expects
// (python3, sudo, ca-certificates, curl, netbase's /etc/services,
// tzdata, procps).
var imagePackages = []string{
	"systemd", "systemd-sysv", "dbus", "openssh-server", "openssh-sftp-server",
	"iproute2", "ca-certificates", "sudo", "python3",
	"netbase", "tzdata", "procps", "curl", "less",
}

// imageInfo is images/debian-12.vN/image.json.
type imageInfo struct {
	ID       string    `json:"id"`
	Format   int       `json:"format"`
	Suite    string    `json:"suite"`
	Mirror   string    `json:"mirror"`
	Packages []string  `json:"packages"`
	Built    time.Time `json:"built"`
	BuildSec float64   `json:"build_seconds"`
	Bytes    int64     `json:"bytes"`
}

func (d *Driver) imagesDir() string { return filepath.Join(d.cache, "images") }

func (d *Driver) imageDir() string {
	return filepath.Join(d.imagesDir(), fmt.Sprintf("%s.v%d", imageID, imageFormat))
}

// ImageRootfs is the directory of the built image's root file system
// (whether or not it is built yet).
func (d *Driver) ImageRootfs() string { return filepath.Join(d.imageDir(), "rootfs") }

func (d *Driver) readImageInfo() (imageInfo, bool) {
	b, err := os.ReadFile(filepath.Join(d.imageDir(), "image.json"))
	if err != nil {
		return imageInfo{}, false
	}
	var info imageInfo
	if json.Unmarshal(b, &info) != nil {
		return imageInfo{}, false
	}
	return info, true
}

func (d *Driver) imageEntry() provider.Image {
	im := provider.Image{ID: imageID, Name: imageID}
	if info, ok := d.readImageInfo(); ok {
		im.Created = info.Built
		im.Note = fmt.Sprintf("Debian 12 (bookworm), built %s, %d MB", info.Built.Local().Format("2006-01-02 15:04"), info.Bytes>>20)
	} else {
		im.Note = "Debian 12 (bookworm), not built yet: the first create-node builds it (debootstrap, 1 to 2 minutes)"
	}
	return im
}

// EnsureImage returns the image's root file system directory, building
// the image first if it is not cached (CreateNode calls it; bench/localnode
// times it on an empty cache). Builds are serialized by a lock file, so
// concurrent callers wait for one build instead of making two.
func (d *Driver) EnsureImage(ctx context.Context) (string, error) {
	if _, ok := d.readImageInfo(); ok {
		return d.ImageRootfs(), nil
	}
	if err := d.prereqs(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(d.imagesDir(), 0o755); err != nil {
		return "", err
	}
	l, err := lockFile(ctx, filepath.Join(d.imagesDir(), imageID+".lock"))
	if err != nil {
		return "", err
	}
	defer l.unlock()
	if _, ok := d.readImageInfo(); ok {
		return d.ImageRootfs(), nil // built while we waited
	}
	if err := d.buildImage(ctx); err != nil {
		return "", err
	}
	return d.ImageRootfs(), nil
}

// buildImage builds the image into a temporary directory and renames it
// into place, so an interrupted build never leaves a "built" image. The
// caller holds the image lock.
func (d *Driver) buildImage(ctx context.Context) (err error) {
	if err := d.prereqs(); err != nil {
		return err
	}
	started := time.Now()
	prefix := "." + filepath.Base(d.imageDir()) + ".tmp-"
	// Leftovers of interrupted builds: we hold the lock, so none of them
	// is in progress.
	if old, _ := filepath.Glob(filepath.Join(d.imagesDir(), prefix+"*")); len(old) > 0 {
		for _, dir := range old {
			_ = removeBuildDir(dir)
		}
	}
	tmp, err := os.MkdirTemp(d.imagesDir(), prefix)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := removeBuildDir(tmp); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rootfs := filepath.Join(tmp, "rootfs")
	fmt.Fprintf(d.log, "local: building image %s (debootstrap %s from %s; 1 to 2 minutes, once)\n", imageID, imageSuite, d.opts.Mirror)
	if err := d.debootstrap(ctx, rootfs); err != nil {
		return fmt.Errorf("build image %s: %w", imageID, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.customizeImage(rootfs); err != nil {
		return fmt.Errorf("build image %s: customize: %w", imageID, err)
	}
	size, _ := dirSize(rootfs)
	info := imageInfo{
		ID: imageID, Format: imageFormat, Suite: imageSuite, Mirror: d.opts.Mirror,
		Packages: imagePackages, Built: time.Now().UTC(), BuildSec: time.Since(started).Seconds(), Bytes: size,
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(tmp, "image.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	// Everything written (with dpkg's unsafe I/O) reaches the disk
	// before the rename makes the image count as built.
	if err := syncFS(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.imageDir()); err != nil {
		return fmt.Errorf("build image %s: %w", imageID, err)
	}
	if err := atomicfile.SyncDir(d.imagesDir()); err != nil {
		return err
	}
	fmt.Fprintf(d.log, "local: image %s built in %s (%d MB)\n", imageID, time.Since(started).Round(time.Second), size>>20)
	return nil
}

// debootstrap builds the tree in two stages, the supported way to change
// the target between them: after the first stage (download and unpack)
// dpkg in the target is told not to fsync each file (force-unsafe-io),
// then the second stage configures the packages. On the development host
// that cut the second stage from 69 s to 52 s. It is safe here because an
// interrupted build is thrown away, and buildImage syncs the file system
// before the image counts as built; the setting is removed again so
// nodes' dpkg is safe.
func (d *Driver) debootstrap(ctx context.Context, rootfs string) error {
	stage1 := []string{"debootstrap", "--foreign", "--variant=minbase",
		"--include=" + strings.Join(imagePackages, ","),
		"--components=main", imageSuite, rootfs, d.opts.Mirror}
	start := time.Now()
	if err := d.runLogged(ctx, "debootstrap", stage1); err != nil {
		return err
	}
	fmt.Fprintf(d.log, "local: debootstrap first stage (download, unpack) took %s\n", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	unsafeIO := filepath.Join(rootfs, "etc/dpkg/dpkg.cfg.d/toppcloud-unsafe-io")
	if err := os.MkdirAll(filepath.Dir(unsafeIO), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(unsafeIO, []byte("force-unsafe-io\n"), 0o644); err != nil {
		return err
	}
	if err := d.runLogged(ctx, "debootstrap", []string{"chroot", rootfs, "/debootstrap/debootstrap", "--second-stage"}); err != nil {
		return err
	}
	fmt.Fprintf(d.log, "local: debootstrap second stage (configure) took %s\n", time.Since(start).Round(100*time.Millisecond))
	return os.Remove(unsafeIO)
}

// runLogged runs argv in its own process group, so cancelling kills it
// and every process it started (dpkg, maintainer scripts); its output goes
// to the log line by line.
func (d *Driver) runLogged(ctx context.Context, label string, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = hostCommandEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	tail := &tailLines{max: 8}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			fmt.Fprintf(d.log, "local: %s: %s\n", label, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &CommandError{Args: argv, Stderr: tail.String(), Err: err}
	}
	return nil
}

// tailLines keeps the last lines of a stream for error messages.
type tailLines struct {
	max   int
	lines []string
}

func (t *tailLines) add(s string) {
	t.lines = append(t.lines, s)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tailLines) String() string { return strings.Join(t.lines, " | ") }

// customizeImage turns a debootstrap tree into a cloud-like image without
// identity: per-node files (host keys, machine id, hostname, resolv.conf,
// sources.list) are removed here and written for each node at creation.
func (d *Driver) customizeImage(rootfs string) error {
	keys, _ := filepath.Glob(filepath.Join(rootfs, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, p := range []string{"etc/hostname", "etc/resolv.conf", "var/lib/dbus/machine-id"} {
		if err := os.Remove(filepath.Join(rootfs, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// apt-daily would hold apt's lock at random times and make
	// setup-node's apt fail; nodes are updated by setup-node instead.
	for _, t := range []string{"apt-daily.timer", "apt-daily-upgrade.timer"} {
		_ = os.Remove(filepath.Join(rootfs, "etc/systemd/system/timers.target.wants", t))
	}
	files := []nodeFile{
		// Empty machine-id: systemd treats the image as not yet set up;
		// every node gets its own at creation.
		{path: "/etc/machine-id", mode: 0o444},
		{path: "/var/lib/dbus/machine-id", symlink: "/etc/machine-id"},
		{path: "/etc/hosts", data: []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), mode: 0o644},
		{path: "/etc/apt/sources.list", data: []byte(aptSources(d.opts.Mirror, d.opts.SecurityMirror)), mode: 0o644},
		{path: "/etc/apt/apt.conf.d/00toppcloud-keep-debs", mode: 0o644,
			data: []byte("// toppcloud shares downloaded packages between local nodes\nBinary::apt::APT::Keep-Downloaded-Packages \"true\";\nAPT::Keep-Downloaded-Packages \"true\";\n")},
	}
	if err := writeNodeFiles(rootfs, files); err != nil {
		return err
	}
	// debootstrap's downloads seed the shared pool; its package lists
	// would be stale in a week, so nodes start without, like cloud images.
	archives := filepath.Join(rootfs, aptArchivesRel)
	if d.opts.ShareAptCache {
		harvestAptCache(archives, d.aptPoolDir())
	}
	if err := removeMatching(archives, "*.deb"); err != nil {
		return err
	}
	return removeMatching(filepath.Join(rootfs, "var/lib/apt/lists"), "*_*")
}

func removeMatching(dir, pattern string) error {
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			return err
		}
	}
	return nil
}

// removeBuildDir removes a (possibly interrupted) build directory,
// unmounting first what debootstrap may have left mounted in it (/proc,
// /sys of the target).
func removeBuildDir(dir string) error {
	if err := unmountTree(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// dirSize sums the sizes of regular files under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}
