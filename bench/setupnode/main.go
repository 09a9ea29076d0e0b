// Command setupnode measures setup-node on a real local node and prints
// the numbers: creating a fresh node, the first setup-node (per step), a
// few re-runs on the set-up node, and the agent upload with and without
// compression.
//
//	sudo go run ./bench/setupnode                  # builds ./cmd/toppcloud first
//	sudo go run ./bench/setupnode -agent ./toppcloud -n 5
//
// It needs root and what the local provider needs (systemd-container,
// debootstrap, nftables), and the network for apt. The first setup-node
// installs packages from Debian's archive; the local provider's shared
// .deb pool (CACHE/apt-cache) makes repeated runs download less.
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
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

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
	agent := flag.String("agent", "", "toppcloud binary to install on the node (default: go build ./cmd/toppcloud)")
	reruns := flag.Int("n", 3, "re-runs of setup-node on the set-up node")
	verbose := flag.Bool("v", false, "print the CLI's output")
	flag.Parse()
	if err := run(*cache, *agent, *reruns, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "setupnode:", err)
		os.Exit(1)
	}
}

type bench struct {
	home, agent string
	signer      ssh.Signer
	verbose     bool
}

func run(cache, agent string, reruns int, verbose bool) error {
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
		fmt.Println("building ./cmd/toppcloud ...")
		cmd := exec.Command("go", "build", "-o", agent, "github.com/toppcloud/toppcloud/cmd/toppcloud")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	b := &bench{home: filepath.Join(tmp, "home"), agent: agent, verbose: verbose}
	if err := b.writeConfig(filepath.Join(tmp, "nodes"), cache); err != nil {
		return err
	}
	name := "bench-" + randHex(3)
	defer func() {
		if _, out, err := b.cli("destroy-node", "-y", name); err != nil {
			fmt.Fprintf(os.Stderr, "destroy-node %s: %v\n%s", name, err, out)
		}
	}()

	d, _, err := b.cli("create-node", name)
	if err != nil {
		return err
	}
	fmt.Printf("create-node (fresh node, until SSH answers):  %6.1fs\n", d.Seconds())

	d, out, err := b.cli("setup-node", name)
	if err != nil {
		return err
	}
	fmt.Printf("setup-node, first run:                         %6.1fs\n", d.Seconds())
	for _, s := range stepTimes(out) {
		fmt.Printf("  %-44s %6.1fs\n", s.name, s.secs)
	}

	var times []float64
	for range reruns {
		d, out, err := b.cli("setup-node", name)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "nothing changed") {
			return fmt.Errorf("a re-run changed the node:\n%s", out)
		}
		times = append(times, d.Seconds())
	}
	if len(times) > 0 {
		fmt.Printf("setup-node, re-run on the set-up node (n=%d): median %.2fs, max %.2fs\n", len(times), median(times), slices.Max(times))
	}

	return b.uploads(name)
}

// uploads times installing the agent over a differing one, raw and gzip.
func (b *bench) uploads(name string) error {
	st, err := state.Open(filepath.Join(b.home, ".toppcloud"))
	if err != nil {
		return err
	}
	rec, _, err := st.Node(name)
	if err != nil {
		return err
	}
	c, err := sshx.Dial(context.Background(), sshx.Config{Addr: rec.SSHAddr(), Auth: sshx.Auth{Signers: []ssh.Signer{b.signer}}, HostKeys: sshx.FixedHostKey(rec.HostKey)})
	if err != nil {
		return err
	}
	defer c.Close()
	fi, err := os.Stat(b.agent)
	if err != nil {
		return err
	}
	bin := remote.LocalBinary(b.agent)
	for _, raw := range []bool{true, false} {
		// Make the installed agent differ, so Open replaces it.
		if err := c.Run(context.Background(), []string{"sh", "-c", "echo >> " + protocol.AgentPath}, sshx.RunOptions{}); err != nil {
			return err
		}
		start := time.Now()
		n, err := remote.Open(context.Background(), c, remote.Options{Binary: bin, NoCompress: raw})
		if err != nil {
			return err
		}
		if !n.Uploaded() {
			return errors.New("the agent was not replaced")
		}
		what := "gzip"
		if raw {
			what = "raw"
		}
		fmt.Printf("agent upload to the local node (%.0f MB, %-4s):   %6.1fs\n", float64(fi.Size())/1e6, what, time.Since(start).Seconds())
	}
	return nil
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
func (b *bench) cli(args ...string) (time.Duration, string, error) {
	var out bytes.Buffer
	env := map[string]string{remote.EnvAgentBinary: b.agent}
	start := time.Now()
	code := cli.Run(context.Background(), args, cli.Env{
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

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
