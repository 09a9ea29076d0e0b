// Command deploy measures `toppcloud update` on a real local node and
// compares it with rsync and tar over SSH, the way the original shipped
// applications. It prints numbers; it asserts nothing.
//
//	sudo go run ./bench/deploy [-files 2000] [-mb 50] [-runs 3]
//
// It builds toppcloud, creates and sets up a local node (systemd-nspawn,
// as `toppcloud create-node --setup-node` does), installs rsync in it, and
// for each run generates a new application (bench/appgen, as bench/transfer: a
// WSGI app of source-like text and incompressible files) and times:
//
//	first          update of a tree the node has never seen, and the time
//	               of its upload step (the rest is starting the app)
//	unchanged      update again, nothing changed (a no-op that says so)
//	unchanged -f   the same with --force: a new instance is started and switched to
//	one file       update after one 10 KB file changed
//	rsync -a       rsync -a over ssh of the tree into a fresh directory,
//	               then of the one-file change; rsync -az likewise (the
//	               original's flags included --compress)
//	tar | ssh      tar c | ssh tar x into a fresh directory
//	tar | ssh+sync tar c | ssh 'tar x && sync': a durable copy, the fair
//	               comparison for a tool that makes its upload durable
//	               before it serves it (toppcloud syncs before the switch)
//	tar | ssh tmpfs the plain tar into the node's /tmp, for reference
//
// Every copy goes to the node's disk (/var/tmp/toppcloud-bench, the file
// system /var/www and the blob store are on), except the last: a local
// node's /tmp is a tmpfs (systemd-nspawn mounts one), so a copy there
// never touches a disk, and it is RAM charged to the node's 1 GB memory
// limit. Earlier versions of this bench copied there and left the copies:
// by the third run the node was at its limit and its Caddy spent a core
// reclaiming its own pages. The tmpfs copy is now removed right after it
// is timed.
//
// Before each run the host's dirty pages are written out (sync), so that
// no measured command pays for writing out the generated tree.
// Wall time is the whole command as a user runs it (for toppcloud: check
// the app, connect, check the agent, upload, start, switch, drain).
// Bytes are what the host sent to the node's port 22, counted by an
// nftables rule on the host: SSH payload plus TCP/IP headers, the same
// measure for every tool. Medians over the runs are printed.
//
// Needs root, what the local provider needs (systemd-container,
// debootstrap, nftables), and rsync and an ssh client on the host.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/bench/appgen"
	"github.com/toppcloud/toppcloud/bench/benchuser"
	"github.com/toppcloud/toppcloud/internal/provider/local"
)

func main() {
	files := flag.Int("files", 2000, "files in each generated application")
	mb := flag.Int("mb", 50, "its size in MB")
	runs := flag.Int("runs", 3, "runs (a new application each); medians are printed")
	keep := flag.Bool("keep", false, "keep the node and the work directory")
	verbose := flag.Bool("v", false, "show the commands' output")
	cache := flag.String("cache", local.DefaultRoot, "local provider image cache (cache_dir)")
	gen := flag.String("generate", "", "only write a generated application (app name bench) into `DIR`, for profiling by hand")
	seed := flag.Uint64("seed", 1, "the generated application's seed (with -generate)")
	flag.Parse()
	if *gen != "" {
		if _, err := appgen.Generate(*gen, "bench", *files, int64(*mb)<<20, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "deploy bench:", err)
			os.Exit(1)
		}
		return
	}
	b := &bench{files: *files, size: int64(*mb) << 20, verbose: *verbose, cache: *cache}
	err := b.run(*runs, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	files   int
	size    int64
	verbose bool
	cache   string

	work       string
	user       *benchuser.User
	node, addr string
	table      string
}

// sample is one measured command.
type sample struct {
	wall  time.Duration
	bytes int64
}

func (b *bench) run(runs int, keep bool) (err error) {
	ctx := context.Background()
	if os.Geteuid() != 0 {
		return errors.New("run as root (local nodes are systemd-nspawn containers)")
	}
	for _, tool := range []string{"rsync", "ssh", "tar", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed on this machine: %w", tool, err)
		}
	}
	if b.work, err = os.MkdirTemp("/var/tmp", "toppcloud-bench-deploy-"); err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(b.work)
	}
	fmt.Println("building toppcloud ...")
	bin := filepath.Join(b.work, "toppcloud")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/toppcloud").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/toppcloud (run from the repository's root): %v\n%s", err, out)
	}
	if b.user, err = benchuser.New(b.work, b.cache, bin); err != nil {
		return err
	}
	b.user.Verbose = b.verbose

	b.node = fmt.Sprintf("bench-deploy-%d", os.Getpid())
	fmt.Printf("creating and setting up local node %s ...\n", b.node)
	start := time.Now()
	if _, err := b.user.Run("create-node", b.node, "--setup-node"); err != nil {
		return err
	}
	if !keep {
		defer func() {
			if _, derr := b.user.Run("destroy-node", "-y", b.node); derr != nil && err == nil {
				err = derr
			}
		}()
	} else {
		defer fmt.Printf("node %s kept: HOME=%s %s destroy-node %s\n", b.node, b.user.Home, b.user.Bin, b.node)
	}
	out, err := b.user.Run("list-nodes", "--json")
	if err != nil {
		return err
	}
	var nodes []struct {
		Name      string   `json:"name"`
		PublicIPs []string `json:"public_ips"`
	}
	if err := json.Unmarshal(out, &nodes); err != nil {
		return fmt.Errorf("list-nodes --json: %w", err)
	}
	for _, n := range nodes {
		if n.Name == b.node && len(n.PublicIPs) > 0 {
			b.addr = n.PublicIPs[0]
		}
	}
	if b.addr == "" {
		return fmt.Errorf("no address for %s in list-nodes:\n%s", b.node, out)
	}
	fmt.Printf("node %s at %s ready in %.0fs; installing rsync in it ...\n", b.node, b.addr, time.Since(start).Seconds())
	if err := b.ssh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsync >/dev/null && mkdir -p " + nodeDir); err != nil {
		return fmt.Errorf("install rsync in the node: %w", err)
	}
	if err := b.counterOn(); err != nil {
		return err
	}
	defer b.counterOff()

	results := map[string][]sample{}
	order := []string{"toppcloud first", "  of which the upload step", "toppcloud unchanged", "toppcloud unchanged --force", "toppcloud one file",
		"rsync -a first", "rsync -a one file", "rsync -az first", "rsync -az one file",
		"tar | ssh first", "tar | ssh+sync first", "tar | ssh tmpfs first"}
	var content, changed int64
	for r := 1; r <= runs; r++ {
		app := fmt.Sprintf("bench%d", r)
		dir := filepath.Join(b.work, app)
		st, err := appgen.Generate(dir, app, b.files, b.size, uint64(r))
		if err != nil {
			return err
		}
		content = st.Bytes
		syscall.Sync()
		fmt.Printf("run %d: %s, %d files, %.1f MB (%.0f%% incompressible)\n", r, app, st.Files, float64(st.Bytes)/(1<<20), 100*float64(st.RandomBytes)/float64(st.Bytes))
		loc := app + ".test"
		measure := func(name string, fn func() error) error {
			s, err := b.measure(fn)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			results[name] = append(results[name], s)
			fmt.Printf("  %-28s %7.2fs %10s\n", name, s.wall.Seconds(), mbytes(s.bytes))
			return nil
		}
		update := func(args ...string) func() error {
			return func() error {
				_, err := b.user.Run(append([]string{"update", dir, loc, "--node", b.node}, args...)...)
				return err
			}
		}
		var uploadStep time.Duration
		steps := []struct {
			name string
			fn   func() error
		}{
			{"toppcloud first", func() error {
				if err := update()(); err != nil {
					return err
				}
				uploadStep = stepTime(b.user.Stderr, "upload")
				return nil
			}},
			{"  of which the upload step", func() error { return nil }},
			{"toppcloud unchanged", update()},
			{"toppcloud unchanged --force", update("--force")},
			{"toppcloud one file", func() error {
				n, err := appgen.ChangeFile(dir, uint64(1000+r))
				changed = n
				if err != nil {
					return err
				}
				return update()()
			}},
			{"rsync -a first", b.rsync(dir, nodeDir+"/rsync-a-"+app, "-a")},
			{"rsync -a one file", func() error {
				if _, err := appgen.ChangeFile(dir, uint64(2000+r)); err != nil {
					return err
				}
				return b.rsync(dir, nodeDir+"/rsync-a-"+app, "-a")()
			}},
			{"rsync -az first", b.rsync(dir, nodeDir+"/rsync-az-"+app, "-az")},
			{"rsync -az one file", func() error {
				if _, err := appgen.ChangeFile(dir, uint64(3000+r)); err != nil {
					return err
				}
				return b.rsync(dir, nodeDir+"/rsync-az-"+app, "-az")()
			}},
			{"tar | ssh first", b.tar(dir, nodeDir+"/tar-"+app, false)},
			{"tar | ssh+sync first", b.tar(dir, nodeDir+"/tar-sync-"+app, true)},
			{"tar | ssh tmpfs first", b.tar(dir, "/tmp/tar-"+app, false)},
		}
		for _, s := range steps {
			if s.name == "  of which the upload step" {
				// Read from the first update's step line, to a tenth of a
				// second.
				results[s.name] = append(results[s.name], sample{wall: uploadStep})
				fmt.Printf("  %-28s %7.2fs\n", s.name, uploadStep.Seconds())
				continue
			}
			if err := measure(s.name, s.fn); err != nil {
				return err
			}
		}
		// Give the node's memory back (the tmpfs copy is RAM).
		if err := b.ssh("rm -rf /tmp/tar-" + app); err != nil {
			return err
		}
	}

	fmt.Printf("\nmedians over %d runs (%d files, %.1f MB; bytes = host to node port 22, TCP/IP headers included)\n", runs, b.files, float64(content)/(1<<20))
	med := map[string]sample{}
	for _, name := range order {
		med[name] = median(results[name])
		fmt.Printf("  %-28s %7.2fs %10s\n", name, med[name].wall.Seconds(), mbytes(med[name].bytes))
	}
	first, tar, tarSync, tarTmp := med["toppcloud first"], med["tar | ssh first"], med["tar | ssh+sync first"], med["tar | ssh tmpfs first"]
	upStep := med["  of which the upload step"]
	one, unch := med["toppcloud one file"], med["toppcloud unchanged"]
	fmt.Printf("\ntargets\n")
	fmt.Printf("  unchanged <= 1.0s:                        %.2fs (%s)\n", unch.wall.Seconds(), verdict(unch.wall <= time.Second))
	fmt.Printf("  one file <= 1.5s:                         %.2fs (%s)\n", one.wall.Seconds(), verdict(one.wall <= 1500*time.Millisecond))
	manifest := med["toppcloud unchanged"].bytes // an unchanged update sends the manifest and requests only
	limit := changed + manifest + 64<<10
	fmt.Printf("  one file bytes <= changed+manifest+64KB: %s <= %s (%s)\n", mbytes(one.bytes), mbytes(limit), verdict(one.bytes <= limit))
	fmt.Printf("  first <= 1.2 x tar|ssh:                   %.2fs vs %.2fs = %.2fx (%s)\n", first.wall.Seconds(), tar.wall.Seconds(),
		first.wall.Seconds()/tar.wall.Seconds(), verdict(first.wall.Seconds() <= 1.2*tar.wall.Seconds()))
	fmt.Printf("  first <= 1.2 x tar|ssh+sync (durable):    %.2fs vs %.2fs = %.2fx (%s)\n", first.wall.Seconds(), tarSync.wall.Seconds(),
		first.wall.Seconds()/tarSync.wall.Seconds(), verdict(first.wall.Seconds() <= 1.2*tarSync.wall.Seconds()))
	fmt.Printf("  (reference: tar|ssh into tmpfs            %.2fs vs %.2fs = %.2fx)\n", first.wall.Seconds(), tarTmp.wall.Seconds(),
		first.wall.Seconds()/tarTmp.wall.Seconds())
	fmt.Printf("  (the upload step alone:                   %.2fs vs %.2fs = %.2fx; the rest is starting the app and switching)\n", upStep.wall.Seconds(), tar.wall.Seconds(),
		upStep.wall.Seconds()/tar.wall.Seconds())
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func median(s []sample) sample {
	if len(s) == 0 {
		return sample{}
	}
	w := slices.Clone(s)
	slices.SortFunc(w, func(a, b sample) int { return int(a.wall - b.wall) })
	by := slices.Clone(s)
	slices.SortFunc(by, func(a, b sample) int { return int(a.bytes - b.bytes) })
	return sample{wall: w[len(w)/2].wall, bytes: by[len(by)/2].bytes}
}

func mbytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	}
	return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
}

// measure times fn and counts the bytes the host sent to the node's SSH
// port meanwhile.
func (b *bench) measure(fn func() error) (sample, error) {
	before, err := b.counter()
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	err = fn()
	wall := time.Since(start)
	after, cerr := b.counter()
	if err == nil {
		err = cerr
	}
	return sample{wall: wall, bytes: after - before}, err
}

// stepTime reads how long a step took from toppcloud's step lines
// ("[  1.0s] upload: done (...) in 0.8s"); zero if it is not there.
func stepTime(out, step string) time.Duration {
	m := regexp.MustCompile(`(?m)\] ` + regexp.QuoteMeta(step) + `: done .* in ([0-9.]+)s$`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return time.Duration(f * float64(time.Second))
}

// sshArgs log in as root with the bench's key, trusting only the host key
// toppcloud pinned.
func (b *bench) sshArgs() []string {
	return []string{"-i", b.user.Key, "-o", "UserKnownHostsFile=" + filepath.Join(b.user.Home, ".toppcloud", "known_hosts"),
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
}

func (b *bench) ssh(script string) error {
	out, err := exec.Command("ssh", append(b.sshArgs(), "root@"+b.addr, script)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh %s: %v\n%s", script, err, out)
	}
	return nil
}

func (b *bench) rsync(dir, dest, flags string) func() error {
	return func() error {
		e := "ssh " + strings.Join(b.sshArgs(), " ")
		out, err := exec.Command("rsync", flags, "-e", e, dir+"/", "root@"+b.addr+":"+dest+"/").CombinedOutput()
		if err != nil {
			return fmt.Errorf("rsync: %v\n%s", err, out)
		}
		return nil
	}
}

// nodeDir holds the rsync and tar copies on the node's disk.
const nodeDir = "/var/tmp/toppcloud-bench"

// tar copies dir to dest on the node with tar c | ssh tar x, then syncs
// the node's file systems if sync is set.
func (b *bench) tar(dir, dest string, sync bool) func() error {
	return func() error {
		remote := "mkdir -p " + dest + " && tar x -C " + dest
		if sync {
			remote += " && sync"
		}
		tarC := exec.Command("tar", "c", "-C", dir, ".")
		sshX := exec.Command("ssh", append(b.sshArgs(), "root@"+b.addr, remote)...)
		pipe, err := tarC.StdoutPipe()
		if err != nil {
			return err
		}
		sshX.Stdin = pipe
		var errOut bytes.Buffer
		sshX.Stderr = &errOut
		if err := tarC.Start(); err != nil {
			return err
		}
		if err := sshX.Run(); err != nil {
			return fmt.Errorf("tar | ssh: %v %s", err, errOut.String())
		}
		return tarC.Wait()
	}
}

// counterOn adds an nftables table of the bench's own that counts what
// the host sends to the node's SSH port.
func (b *bench) counterOn() error {
	b.table = fmt.Sprintf("tcbench%d", os.Getpid())
	rules := fmt.Sprintf("table inet %s {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ip daddr %s tcp dport 22 counter\n  }\n}\n", b.table, b.addr)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v\n%s", err, out)
	}
	return nil
}

func (b *bench) counterOff() {
	if b.table != "" {
		_ = exec.Command("nft", "delete", "table", "inet", b.table).Run()
	}
}

var counterRE = regexp.MustCompile(`counter packets \d+ bytes (\d+)`)

func (b *bench) counter() (int64, error) {
	out, err := exec.Command("nft", "list", "chain", "inet", b.table, "out").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("nft list: %v\n%s", err, out)
	}
	m := counterRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no counter in:\n%s", out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}
