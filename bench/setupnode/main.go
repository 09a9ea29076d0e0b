//go:build linux

// Command setupnode measures setup-node on a real local node and prints
// the numbers: creating a fresh node, the first setup-node (per step), a
// few re-runs on the set-up node, and an agent upgrade (the node's agent
// replaced by the client's), each with the bytes sent over SSH, per link
// profile (the node as it is, a 50 Mbit/s uplink 20 ms away, a 10 Mbit/s
// one 60 ms away: see bench/linkshape). On the node as it is, the agent
// upload is also timed raw and compressed.
//
//	sudo go run ./bench/setupnode                  # builds ./cmd/toppcloud as make build does
//	sudo go run ./bench/setupnode -agent ./toppcloud -n 5 -links 50mbit-20ms
//
// Each profile gets a fresh node (created unshaped: creating is not
// over the user's link), which is destroyed after it. Bytes are what
// this machine sent to the node's port 22 (bench/linkshape.Counter); the
// node's apt downloads are not shaped or counted (on a real server they
// come from its data centre).
//
// It needs root and what the local provider needs (systemd-container,
// debootstrap, nftables, iproute2), and the network for apt. The first
// setup-node installs packages from Debian's archive; the local
// provider's shared .deb pool (CACHE/apt-cache) makes repeated runs
// download less.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/bench/linkshape"
	"github.com/toppcloud/toppcloud/internal/cli"
	"github.com/toppcloud/toppcloud/internal/protocol"
	_ "github.com/toppcloud/toppcloud/internal/provider/all"
	"github.com/toppcloud/toppcloud/internal/provider/local"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
)

func main() {
	cache := flag.String("cache", local.DefaultRoot, "local provider cache_dir (image, shared apt pool)")
	agent := flag.String("agent", "", "toppcloud binary to install on the node (default: go build ./cmd/toppcloud, stripped, as make build does)")
	reruns := flag.Int("n", 3, "re-runs of setup-node on the set-up node")
	links := flag.String("links", "all", "link profiles to measure, comma-separated, or all")
	verbose := flag.Bool("v", false, "print the CLI's output")
	flag.Parse()
	profiles, err := linkshape.Select(*links)
	if err == nil {
		err = run(*cache, *agent, *reruns, profiles, *verbose)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setupnode:", err)
		os.Exit(1)
	}
}

type bench struct {
	home, agent string
	signer      ssh.Signer
	verbose     bool
}

// result is one profile's numbers.
type result struct {
	profile            linkshape.Profile
	create             time.Duration
	first              sample
	steps              []stepTime
	rerun              sample
	upgrade            sample
	loadStart, loadEnd string
}

type sample struct {
	wall  time.Duration
	bytes int64
}

func run(cache, agent string, reruns int, profiles []linkshape.Profile, verbose bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (local nodes are systemd-nspawn containers)")
	}
	tmp, err := os.MkdirTemp("/var/tmp", "setupnode-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if agent == "" {
		agent = filepath.Join(tmp, "toppcloud")
		fmt.Println("building ./cmd/toppcloud (stripped, as make build does) ...")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", agent, "github.com/toppcloud/toppcloud/cmd/toppcloud")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	fi, err := os.Stat(agent)
	if err != nil {
		return err
	}
	fmt.Printf("agent binary: %.1f MB\n", float64(fi.Size())/1e6)
	b := &bench{home: filepath.Join(tmp, "home"), agent: agent, verbose: verbose}
	if err := b.writeConfig(filepath.Join(tmp, "nodes"), cache); err != nil {
		return err
	}
	// Ctrl-C ends the current command; the deferred clean-up still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []result
	for _, p := range profiles {
		r, err := b.profile(ctx, p, reruns)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		results = append(results, r)
	}
	report(results, reruns)
	return nil
}

// profile measures setup-node on a fresh node through link p.
func (b *bench) profile(ctx context.Context, p linkshape.Profile, reruns int) (res result, err error) {
	res.profile = p
	res.loadStart = linkshape.LoadAvg()
	fmt.Printf("\nlink %s (load average %s)\n", p, res.loadStart)
	name := "bench-" + randHex(3)
	defer func() {
		if _, out, derr := b.cli(context.Background(), "destroy-node", "-y", name); derr != nil {
			fmt.Fprintf(os.Stderr, "destroy-node %s: %v\n%s", name, derr, out)
		}
	}()
	if res.create, _, err = b.cli(ctx, "create-node", name); err != nil {
		return res, err
	}
	fmt.Printf("  create-node (fresh node, until SSH answers):  %6.1fs\n", res.create.Seconds())
	rec, err := b.record(name)
	if err != nil {
		return res, err
	}
	link, err := linkshape.Apply(rec.Address(), p)
	if err != nil {
		return res, err
	}
	defer link.Close()
	counter, err := linkshape.NewCounter(rec.Address())
	if err != nil {
		return res, err
	}
	defer counter.Close()
	measure := func(fn func() error) (sample, error) {
		before, err := counter.Bytes()
		if err != nil {
			return sample{}, err
		}
		start := time.Now()
		err = fn()
		s := sample{wall: time.Since(start)}
		after, cerr := counter.Bytes()
		if err == nil {
			err = cerr
		}
		s.bytes = after - before
		return s, err
	}

	var out string
	res.first, err = measure(func() (err error) {
		_, out, err = b.cli(ctx, "setup-node", name)
		return err
	})
	if err != nil {
		return res, err
	}
	res.steps = stepTimes(out)
	fmt.Printf("  setup-node, first run:                        %6.1fs, %s sent\n", res.first.wall.Seconds(), mbytes(res.first.bytes))
	for _, s := range res.steps {
		fmt.Printf("    %-42s %6.1fs\n", s.name, s.secs)
	}

	var times []sample
	for range reruns {
		s, err := measure(func() error {
			_, out, err := b.cli(ctx, "setup-node", name)
			if err == nil && !strings.Contains(out, "nothing changed") {
				err = fmt.Errorf("a re-run changed the node:\n%s", out)
			}
			return err
		})
		if err != nil {
			return res, err
		}
		times = append(times, s)
	}
	if len(times) > 0 {
		res.rerun = median(times)
		fmt.Printf("  setup-node, re-run (median of %d):            %6.2fs, %s sent\n", len(times), res.rerun.wall.Seconds(), mbytes(res.rerun.bytes))
	}

	c, err := sshx.Dial(ctx, sshx.Config{Addr: rec.SSHAddr(), Auth: sshx.Auth{Signers: []ssh.Signer{b.signer}}, HostKeys: sshx.FixedHostKey(rec.HostKey)})
	if err != nil {
		return res, err
	}
	defer c.Close()
	bin := remote.LocalBinary(b.agent)
	uploads := []struct {
		what string
		raw  bool
	}{{"compressed", false}}
	if p.Name == linkshape.Unshaped.Name {
		uploads = append(uploads, struct {
			what string
			raw  bool
		}{"raw", true})
	}
	for _, u := range uploads {
		// Make the installed agent differ, so Open replaces it through
		// the agent (an upgrade).
		if err := c.Run(ctx, []string{"sh", "-c", "echo >> " + protocol.AgentPath}, sshx.RunOptions{}); err != nil {
			return res, err
		}
		var progress []string
		s, err := measure(func() error {
			n, err := remote.Open(ctx, c, remote.Options{Binary: bin, NoCompress: u.raw, Progress: func(p string) { progress = append(progress, p) }})
			if err == nil && !n.Uploaded() {
				err = errors.New("the agent was not replaced")
			}
			return err
		})
		if err != nil {
			return res, err
		}
		if !u.raw {
			res.upgrade = s
		}
		detail := ""
		if len(progress) > 0 && strings.HasPrefix(progress[len(progress)-1], "sent ") {
			detail = " (" + progress[len(progress)-1] + ")"
		}
		fmt.Printf("  agent upgrade, %-10s                     %6.1fs, %s sent%s\n", u.what, s.wall.Seconds(), mbytes(s.bytes), detail)
	}
	res.loadEnd = linkshape.LoadAvg()
	return res, nil
}

func (b *bench) record(name string) (state.NodeRecord, error) {
	st, err := state.Open(filepath.Join(b.home, ".toppcloud"))
	if err != nil {
		return state.NodeRecord{}, err
	}
	rec, _, err := st.Node(name)
	return rec, err
}

// report prints one column per profile.
func report(results []result, reruns int) {
	fmt.Printf("\nsetup-node (wall time, bytes sent over SSH); goal: at most 25 MB on the 50 Mbit/s link\n")
	fmt.Printf("  %-26s", "")
	for _, r := range results {
		fmt.Printf(" | %-22s", r.profile.Name)
	}
	fmt.Println()
	row := func(name string, get func(result) string) {
		fmt.Printf("  %-26s", name)
		for _, r := range results {
			fmt.Printf(" | %-22s", get(r))
		}
		fmt.Println()
	}
	cell := func(s sample) string { return fmt.Sprintf("%6.1fs %10s", s.wall.Seconds(), mbytes(s.bytes)) }
	row("create-node (unshaped)", func(r result) string { return fmt.Sprintf("%6.1fs", r.create.Seconds()) })
	row("setup-node, first run", func(r result) string { return cell(r.first) })
	row(fmt.Sprintf("setup-node, re-run (n=%d)", reruns), func(r result) string { return cell(r.rerun) })
	row("agent upgrade", func(r result) string { return cell(r.upgrade) })
	row("load average (start, end)", func(r result) string { return shortLoad(r.loadStart) + ", " + shortLoad(r.loadEnd) })
	for _, r := range results {
		if r.profile.Name == "50mbit-20ms" {
			fmt.Printf("  first setup-node on 50 Mbit/s sent %s: goal <= 25 MB %s\n", mbytes(r.first.bytes), map[bool]string{true: "met", false: "NOT met"}[r.first.bytes <= 25e6])
		}
	}
}

func shortLoad(l string) string {
	f := strings.Fields(l)
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func mbytes(n int64) string {
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}

func (b *bench) writeConfig(root, cache string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if b.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(b.home, ".ssh"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.home, ".ssh", "id_ed25519"), pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(b.signer.PublicKey())))
	conf := fmt.Sprintf("[provider:default]\nprovider = local\nroot = %s\ncache_dir = %s\nroot_authorized_keys = %s\n", root, cache, pub)
	return os.WriteFile(filepath.Join(b.home, ".toppcloud.conf"), []byte(conf), 0o600)
}

// cli runs a toppcloud command in-process and times it.
func (b *bench) cli(ctx context.Context, args ...string) (time.Duration, string, error) {
	var out bytes.Buffer
	env := map[string]string{remote.EnvAgentBinary: b.agent}
	start := time.Now()
	code := cli.Run(ctx, args, cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out,
		Getenv: func(k string) string { return env[k] }, Home: b.home, EtcHosts: filepath.Join(b.home, "hosts"),
	})
	d := time.Since(start)
	if b.verbose {
		fmt.Print(out.String())
	}
	if code != 0 {
		return d, out.String(), fmt.Errorf("toppcloud %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
	return d, out.String(), nil
}

type stepTime struct {
	name string
	secs float64
}

var stepLine = regexp.MustCompile(`^\[\s*[0-9.]+s\] (.+?): (?:done|failed)(?: \(.*\))? in ([0-9.]+)s$`)

// stepTimes reads the step lines the CLI printed.
func stepTimes(out string) []stepTime {
	var st []stepTime
	for _, line := range strings.Split(out, "\n") {
		m := stepLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var secs float64
		fmt.Sscanf(m[2], "%g", &secs)
		st = append(st, stepTime{m[1], secs})
	}
	return st
}

// median is the sample of median wall time, with the median bytes.
func median(s []sample) sample {
	w := slices.Clone(s)
	slices.SortFunc(w, func(a, b sample) int { return int(a.wall - b.wall) })
	by := slices.Clone(s)
	slices.SortFunc(by, func(a, b sample) int { return int(a.bytes - b.bytes) })
	return sample{wall: w[len(w)/2].wall, bytes: by[len(by)/2].bytes}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
