//go:build linux

// Command deploy measures `toppcloud update` on a real local node and
// compares it with rsync and tar over SSH, the way the original shipped
// applications, on the node as it is and through shaped links (a 50
// Mbit/s uplink 20 ms away, a 10 Mbit/s one 60 ms away: see
// bench/linkshape). It prints numbers; it asserts nothing.
//
//	sudo go run ./bench/deploy [-files 1000] [-mb 20] [-random 0.2] [-runs 3] [-links all] [-bin PATH]
//
// The defaults are issue 16's application: 1,000 files, 20 MB, one fifth
// incompressible. The earlier reference figures were measured on the
// node as it is with -files 2000 -mb 50 -random 0.4 -links unshaped.
//
// It builds toppcloud as a release is built (stripped, -trimpath; -bin
// measures another build), creates and sets up a local node
// (systemd-nspawn, as `toppcloud create-node --setup-node` does),
// installs rsync in it, and for each link profile and each run generates
// a new application (bench/appgen, as bench/transfer: a WSGI app of
// source-like text and incompressible files) and times:
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
// limit; it is removed right after it is timed. After each run the
// copies are removed and the run's app deactivated, so that runs and
// profiles do not fill the node.
//
// Before each run the host's dirty pages are written out (sync), so that
// no measured command pays for writing out the generated tree.
// Wall time is the whole command as a user runs it (for toppcloud: check
// the app, connect, check the agent, upload, start, switch, drain).
// Bytes are what the host sent to the node's port 22, counted by an
// nftables rule on the host: SSH payload plus TCP/IP headers, the same
// measure for every tool (through a shaped link: what crossed it).
// Medians over the runs are printed, one column per link profile, with
// the load average at the start and the end of the profile.
//
// Ctrl-C stops the bench and removes the shaping, the relay, the
// counter and the node.
//
// Needs root, what the local provider needs (systemd-container,
// debootstrap, nftables, iproute2), and rsync and an ssh client on the
// host.
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
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/bench/appgen"
	"github.com/toppcloud/toppcloud/bench/benchuser"
	"github.com/toppcloud/toppcloud/bench/linkshape"
	"github.com/toppcloud/toppcloud/internal/provider/local"
)

func main() {
	files := flag.Int("files", 1000, "files in each generated application")
	mb := flag.Int("mb", 20, "its size in MB")
	random := flag.Float64("random", 0.2, "the share of its bytes in incompressible files")
	runs := flag.Int("runs", 3, "runs per link profile (a new application each); medians are printed")
	links := flag.String("links", "all", "link profiles to measure, comma-separated: "+profileNames()+", or all")
	bin := flag.String("bin", "", "measure this toppcloud binary instead of building one")
	keep := flag.Bool("keep", false, "keep the node and the work directory")
	verbose := flag.Bool("v", false, "show the commands' output")
	cache := flag.String("cache", local.DefaultRoot, "local provider image cache (cache_dir)")
	gen := flag.String("generate", "", "only write a generated application (app name bench) into `DIR`, for profiling by hand")
	seed := flag.Uint64("seed", 1, "the generated application's seed (with -generate)")
	flag.Parse()
	if *gen != "" {
		if _, err := appgen.GenerateMix(*gen, "bench", *files, int64(*mb)<<20, *random, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "deploy bench:", err)
			os.Exit(1)
		}
		return
	}
	profiles, err := linkshape.Select(*links)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{files: *files, size: int64(*mb) << 20, random: *random, verbose: *verbose, cache: *cache, bin: *bin}
	err = b.run(ctx, profiles, *runs, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy bench:", err)
		os.Exit(1)
	}
}

func profileNames() string {
	var names []string
	for _, p := range linkshape.Profiles {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

type bench struct {
	files   int
	size    int64
	random  float64
	verbose bool
	cache   string
	bin     string

	work       string
	user       *benchuser.User
	node, addr string
	counter    *linkshape.Counter
}

// sample is one measured command.
type sample struct {
	wall  time.Duration
	bytes int64
}

// order is the table's rows.
var order = []string{"toppcloud first", "  of which the upload step", "toppcloud unchanged", "toppcloud unchanged --force", "toppcloud one file",
	"rsync -a first", "rsync -a one file", "rsync -az first", "rsync -az one file",
	"tar | ssh first", "tar | ssh+sync first", "tar | ssh tmpfs first"}

// profileResult is one profile's medians.
type profileResult struct {
	profile            linkshape.Profile
	med                map[string]sample
	loadStart, loadEnd string
	changed            int64
}

func (b *bench) run(ctx context.Context, profiles []linkshape.Profile, runs int, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root (local nodes are systemd-nspawn containers)")
	}
	for _, tool := range []string{"rsync", "ssh", "tar", "nft", "tc", "ip"} {
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
	bin := b.bin
	if bin == "" {
		fmt.Println("building toppcloud (stripped, as make build does) ...")
		bin = filepath.Join(b.work, "toppcloud")
		if out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/toppcloud").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/toppcloud (run from the repository's root): %v\n%s", err, out)
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	if b.user, err = benchuser.New(b.work, b.cache, bin); err != nil {
		return err
	}
	b.user.Verbose = b.verbose
	b.user.Ctx = ctx

	b.node = fmt.Sprintf("bench-deploy-%d", os.Getpid())
	fmt.Printf("creating and setting up local node %s ...\n", b.node)
	start := time.Now()
	// Destroyed even when create-node fails half way or the bench is
	// interrupted.
	if !keep {
		defer func() {
			b.user.Ctx = nil
			if _, derr := b.user.Run("destroy-node", "-y", b.node); derr != nil && err == nil {
				err = derr
			}
		}()
	} else {
		defer fmt.Printf("node %s kept: HOME=%s %s destroy-node %s\n", b.node, b.user.Home, b.user.Bin, b.node)
	}
	if _, err := b.user.Run("create-node", b.node, "--setup-node"); err != nil {
		return err
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
	if err := b.ssh(ctx, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsync >/dev/null && mkdir -p "+nodeDir); err != nil {
		return fmt.Errorf("install rsync in the node: %w", err)
	}
	if b.counter, err = linkshape.NewCounter(b.addr); err != nil {
		return err
	}
	defer b.counter.Close()

	var results []profileResult
	for i, p := range profiles {
		r, err := b.profile(ctx, i, p, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		results = append(results, r)
	}
	b.report(results, runs)
	return nil
}

// profile measures every step runs times through link profile p.
// settleScript waits (at most a minute) until no toppcloud-prev-sync
// unit is left on the node.
const settleScript = `for i in $(seq 600); do [ -z "$(systemctl list-units --all --no-legend 'toppcloud-prev-sync-*')" ] && exit 0; sleep 0.1; done; exit 1`

func (b *bench) profile(ctx context.Context, index int, p linkshape.Profile, runs int) (profileResult, error) {
	// Every profile's applications and changes have contents of their
	// own: the node keeps what earlier profiles sent.
	seed := func(n int) uint64 { return uint64(10000*(index+1) + n) }
	res := profileResult{profile: p, loadStart: linkshape.LoadAvg()}
	link, err := linkshape.Apply(b.addr, p)
	if err != nil {
		return res, err
	}
	defer link.Close()
	fmt.Printf("\nlink %s (load average %s)\n", p, res.loadStart)
	results := map[string][]sample{}
	for r := 1; r <= runs; r++ {
		app := fmt.Sprintf("b%s%d", strings.NewReplacer("-", "", "mbit", "m", "ms", "").Replace(p.Name), r)
		if p.Name == linkshape.Unshaped.Name {
			app = fmt.Sprintf("bench%d", r)
		}
		dir := filepath.Join(b.work, app)
		st, err := appgen.GenerateMix(dir, app, b.files, b.size, b.random, seed(r))
		if err != nil {
			return res, err
		}
		syscall.Sync()
		fmt.Printf("run %d: %s, %d files, %.1f MB (%.0f%% incompressible)\n", r, app, st.Files, float64(st.Bytes)/(1<<20), 100*float64(st.RandomBytes)/float64(st.Bytes))
		loc := app + ".test"
		measure := func(name string, fn func() error) error {
			if err := ctx.Err(); err != nil {
				return err
			}
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
				n, err := appgen.ChangeFile(dir, seed(1000+r))
				res.changed = n
				if err != nil {
					return err
				}
				return update()()
			}},
			{"rsync -a first", b.rsync(ctx, dir, nodeDir+"/rsync-a-"+app, "-a")},
			{"rsync -a one file", func() error {
				if _, err := appgen.ChangeFile(dir, seed(2000+r)); err != nil {
					return err
				}
				return b.rsync(ctx, dir, nodeDir+"/rsync-a-"+app, "-a")()
			}},
			{"rsync -az first", b.rsync(ctx, dir, nodeDir+"/rsync-az-"+app, "-az")},
			{"rsync -az one file", func() error {
				if _, err := appgen.ChangeFile(dir, seed(3000+r)); err != nil {
					return err
				}
				return b.rsync(ctx, dir, nodeDir+"/rsync-az-"+app, "-az")()
			}},
			{"tar | ssh first", b.tar(ctx, dir, nodeDir+"/tar-"+app, false)},
			{"tar | ssh+sync first", b.tar(ctx, dir, nodeDir+"/tar-sync-"+app, true)},
			{"tar | ssh tmpfs first", b.tar(ctx, dir, "/tmp/tar-"+app, false)},
		}
		for _, s := range steps {
			if s.name == "  of which the upload step" {
				// Read from the first update's step line, to a tenth of a
				// second.
				results[s.name] = append(results[s.name], sample{wall: uploadStep})
				fmt.Printf("  %-28s %7.2fs\n", s.name, uploadStep.Seconds())
				continue
			}
			// An update leaves the previous instance's prev. host to a
			// unit that runs after it: let that finish first, as a
			// user's next command would usually find it, so that it is
			// not timed as part of the next step.
			if err := b.ssh(ctx, settleScript); err != nil {
				return res, err
			}
			if err := measure(s.name, s.fn); err != nil {
				return res, err
			}
		}
		// Give the node its memory and disk back: the tmpfs copy is RAM,
		// the app's instances run until deactivated.
		if err := b.ssh(ctx, "rm -rf /tmp/tar-"+app+" "+nodeDir+"/*-"+app); err != nil {
			return res, err
		}
		if _, err := b.user.Run("deactivate", loc, "--node", b.node); err != nil {
			return res, err
		}
		if err := os.RemoveAll(dir); err != nil {
			return res, err
		}
	}
	res.med = map[string]sample{}
	for _, name := range order {
		res.med[name] = median(results[name])
	}
	res.loadEnd = linkshape.LoadAvg()
	return res, nil
}

// report prints the medians, one column per profile, and the targets.
func (b *bench) report(results []profileResult, runs int) {
	fmt.Printf("\nmedians over %d runs (%d files, %.1f MB, %.0f%% incompressible; bytes = host to node port 22, TCP/IP headers included)\n",
		runs, b.files, float64(b.size)/(1<<20), 100*b.random)
	fmt.Printf("  %-28s", "")
	for _, r := range results {
		fmt.Printf(" | %-20s", r.profile.Name)
	}
	fmt.Println()
	fmt.Printf("  %-28s", "load average (start, end)")
	for _, r := range results {
		fmt.Printf(" | %-20s", shortLoad(r.loadStart)+", "+shortLoad(r.loadEnd))
	}
	fmt.Println()
	for _, name := range order {
		fmt.Printf("  %-28s", name)
		for _, r := range results {
			s := r.med[name]
			if name == "  of which the upload step" {
				fmt.Printf(" | %7.2fs %12s", s.wall.Seconds(), "")
				continue
			}
			fmt.Printf(" | %7.2fs %11s", s.wall.Seconds(), mbytes(s.bytes))
		}
		fmt.Println()
	}
	for _, r := range results {
		med := r.med
		first, tar, tarSync, tarTmp := med["toppcloud first"], med["tar | ssh first"], med["tar | ssh+sync first"], med["tar | ssh tmpfs first"]
		upStep := med["  of which the upload step"]
		one, unch, rsyncOne := med["toppcloud one file"], med["toppcloud unchanged"], med["rsync -az one file"]
		fmt.Printf("\ntargets, %s\n", r.profile)
		fmt.Printf("  first <= tar|ssh+sync (durable):          %.2fs vs %.2fs = %.2fx (%s)\n", first.wall.Seconds(), tarSync.wall.Seconds(),
			first.wall.Seconds()/tarSync.wall.Seconds(), verdict(first.wall <= tarSync.wall))
		fmt.Printf("  one file <= rsync -az one file + 1s:      %.2fs vs %.2fs + 1s (%s)\n", one.wall.Seconds(), rsyncOne.wall.Seconds(),
			verdict(one.wall <= rsyncOne.wall+time.Second))
		fmt.Printf("  unchanged:                                %.2fs, %s\n", unch.wall.Seconds(), mbytes(unch.bytes))
		manifest := unch.bytes // an unchanged update sends the manifest and requests only
		limit := r.changed + manifest + 64<<10
		fmt.Printf("  one file bytes <= changed+manifest+64KB: %s <= %s (%s)\n", mbytes(one.bytes), mbytes(limit), verdict(one.bytes <= limit))
		fmt.Printf("  (first vs tar|ssh, not durable:           %.2fs vs %.2fs = %.2fx)\n", first.wall.Seconds(), tar.wall.Seconds(), first.wall.Seconds()/tar.wall.Seconds())
		fmt.Printf("  (first vs tar|ssh into tmpfs:             %.2fs vs %.2fs = %.2fx)\n", first.wall.Seconds(), tarTmp.wall.Seconds(), first.wall.Seconds()/tarTmp.wall.Seconds())
		fmt.Printf("  (the upload step alone:                   %.2fs; the rest is connecting, starting the app and switching)\n", upStep.wall.Seconds())
	}
}

// shortLoad is the one-minute load average.
func shortLoad(l string) string {
	f := strings.Fields(l)
	if len(f) == 0 {
		return "?"
	}
	return f[0]
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
	before, err := b.counter.Bytes()
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	err = fn()
	wall := time.Since(start)
	after, cerr := b.counter.Bytes()
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

func (b *bench) ssh(ctx context.Context, script string) error {
	out, err := exec.CommandContext(ctx, "ssh", append(b.sshArgs(), "root@"+b.addr, script)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh %s: %v\n%s", script, err, out)
	}
	return nil
}

func (b *bench) rsync(ctx context.Context, dir, dest, flags string) func() error {
	return func() error {
		e := "ssh " + strings.Join(b.sshArgs(), " ")
		out, err := exec.CommandContext(ctx, "rsync", flags, "-e", e, dir+"/", "root@"+b.addr+":"+dest+"/").CombinedOutput()
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
func (b *bench) tar(ctx context.Context, dir, dest string, sync bool) func() error {
	return func() error {
		remote := "mkdir -p " + dest + " && tar x -C " + dest
		if sync {
			remote += " && sync"
		}
		tarC := exec.CommandContext(ctx, "tar", "c", "-C", dir, ".")
		sshX := exec.CommandContext(ctx, "ssh", append(b.sshArgs(), "root@"+b.addr, remote)...)
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
