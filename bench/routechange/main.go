// Command routechange counts the requests a node fails while its routes
// change: clients send requests to one app without pause (GET and POST,
// on new and on kept-alive connections) while another app's location is
// added and removed and the app disabled and enabled, with toppcloud's
// own commands. It prints the counts; it asserts nothing.
//
//	sudo go run ./bench/routechange [-cycles 5] [-bin PATH]
//
// It builds toppcloud (or takes -bin, to measure another version: build
// an older commit with `git archive COMMIT | tar -x -C DIR` and go build
// there), creates and sets up a local node, deploys examples/python twice
// (as "steady" at steady.test, which gets the load, and as "mover"), then
// runs a quiet phase of the same length as the changes, for a baseline,
// and the changes: per cycle `update mover mover-N.test`, `deactivate
// mover-N.test`, `disable --by-name mover`, `enable --by-name mover`.
// The app does not read POST bodies, as many handlers do not. A request
// fails when it gets a transport error or any status but 200.
//
// Needs root and what the local provider needs (systemd-container,
// debootstrap, nftables).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toppcloud/toppcloud/bench/benchuser"
	"github.com/toppcloud/toppcloud/internal/provider/local"
)

func main() {
	cycles := flag.Int("cycles", 5, "add/remove/disable/enable cycles")
	bin := flag.String("bin", "", "toppcloud binary to measure (default: build this checkout)")
	keep := flag.Bool("keep", false, "keep the node and the work directory")
	verbose := flag.Bool("v", false, "show toppcloud's output")
	cache := flag.String("cache", local.DefaultRoot, "local provider image cache (cache_dir)")
	flag.Parse()
	b := &bench{bin: *bin, verbose: *verbose, cache: *cache}
	if err := b.run(*cycles, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "routechange bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin     string
	verbose bool
	cache   string

	work       string
	user       *benchuser.User
	node, addr string
}

// mode is one kind of client; each runs its own goroutines.
type mode struct {
	name      string
	post      bool
	keepAlive bool
}

var modes = []mode{
	{"GET, new connections", false, false},
	{"GET, kept-alive connections", false, true},
	{"POST, new connections", true, false},
	{"POST, kept-alive connections", true, true},
}

// counts are one phase's results per mode.
type counts struct {
	mu     sync.Mutex
	ok     map[string]int
	failed map[string]int
	errs   map[string]map[string]int // mode -> error -> times
	times  []time.Duration           // of the successful requests
}

func newCounts() *counts {
	return &counts{ok: map[string]int{}, failed: map[string]int{}, errs: map[string]map[string]int{}}
}

func (c *counts) add(m string, took time.Duration, err string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == "" {
		c.ok[m]++
		c.times = append(c.times, took)
		return
	}
	c.failed[m]++
	if c.errs[m] == nil {
		c.errs[m] = map[string]int{}
	}
	c.errs[m][err]++
}

func (b *bench) run(cycles int, keep bool) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root (local nodes are systemd-nspawn containers)")
	}
	if b.work, err = os.MkdirTemp("/var/tmp", "toppcloud-bench-routechange-"); err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(b.work)
	}
	if b.bin == "" {
		fmt.Println("building toppcloud ...")
		b.bin = filepath.Join(b.work, "toppcloud")
		if out, err := exec.Command("go", "build", "-o", b.bin, "./cmd/toppcloud").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/toppcloud (run from the repository's root): %v\n%s", err, out)
		}
	}
	if b.user, err = benchuser.New(b.work, b.cache, b.bin); err != nil {
		return err
	}
	b.user.Verbose = b.verbose
	version, _ := b.user.Run("version")
	fmt.Printf("toppcloud: %s", version)

	b.node = fmt.Sprintf("bench-routes-%d", os.Getpid())
	fmt.Printf("creating and setting up local node %s ...\n", b.node)
	if _, err := b.user.Run("create-node", b.node, "--setup-node"); err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("node %s kept: HOME=%s %s destroy-node %s\n", b.node, b.user.Home, b.bin, b.node)
	} else {
		defer func() {
			if _, derr := b.user.Run("destroy-node", "-y", b.node); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	if b.addr, err = b.nodeAddr(); err != nil {
		return err
	}

	apps := map[string]string{}
	for _, app := range []string{"steady", "mover"} {
		dir := filepath.Join(b.work, app)
		if err := os.CopyFS(dir, os.DirFS("examples/python")); err != nil {
			return fmt.Errorf("copy examples/python (run from the repository's root): %w", err)
		}
		ini := filepath.Join(dir, "app.ini")
		data, err := os.ReadFile(ini)
		if err != nil {
			return err
		}
		if err := os.WriteFile(ini, bytes.Replace(data, []byte("app_name = hello"), []byte("app_name = "+app), 1), 0o644); err != nil {
			return err
		}
		apps[app] = dir
	}
	fmt.Println("deploying steady.test and mover.test ...")
	if _, err := b.user.Run("update", apps["steady"], "steady.test", "--node", b.node); err != nil {
		return err
	}
	if _, err := b.user.Run("update", apps["mover"], "mover.test", "--node", b.node); err != nil {
		return err
	}

	// The changes first (their length sets the baseline's), then as long
	// again without changes.
	changes := newCounts()
	stop := b.load(changes)
	start := time.Now()
	var steps []string
	for i := 1; i <= cycles; i++ {
		loc := fmt.Sprintf("mover-%d.test", i)
		for _, args := range [][]string{
			{"update", apps["mover"], loc, "--node", b.node},
			{"deactivate", loc, "--node", b.node},
			{"disable", "--by-name", "mover", "--node", b.node},
			{"enable", "--by-name", "mover", "--node", b.node},
		} {
			if _, err := b.user.Run(args...); err != nil {
				stop()
				return err
			}
			steps = append(steps, args[0])
		}
		fmt.Printf("  cycle %d done (%.0fs)\n", i, time.Since(start).Seconds())
	}
	stop()
	during := time.Since(start)

	quiet := newCounts()
	stop = b.load(quiet)
	time.Sleep(during)
	stop()

	fmt.Printf("\n%d route changes in %.0fs (%d cycles of update to a new location, deactivate, disable, enable)\n",
		len(steps), during.Seconds(), cycles)
	fmt.Printf("%-30s %22s %22s\n", "requests to steady.test", "during changes", "without changes")
	total := 0
	for _, m := range modes {
		fmt.Printf("%-30s %10d, %4d failed %10d, %4d failed\n", m.name,
			changes.ok[m.name]+changes.failed[m.name], changes.failed[m.name],
			quiet.ok[m.name]+quiet.failed[m.name], quiet.failed[m.name])
		total += changes.failed[m.name]
	}
	for _, phase := range []struct {
		name string
		c    *counts
	}{{"during changes", changes}, {"without changes", quiet}} {
		for _, m := range modes {
			errs := phase.c.errs[m.name]
			keys := make([]string, 0, len(errs))
			for e := range errs {
				keys = append(keys, e)
			}
			slices.Sort(keys)
			for _, e := range keys {
				fmt.Printf("  %s, %s: %dx %s\n", phase.name, m.name, errs[e], e)
			}
		}
	}
	fmt.Printf("latency of successful requests without changes (all modes): p50 %s, p99 %s\n",
		percentile(quiet.times, 50), percentile(quiet.times, 99))
	fmt.Printf("failed during route changes: %d\n", total)
	return nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(10 * time.Microsecond)
}

// load starts 2 clients per mode against steady.test and returns the
// function that stops them.
func (b *bench) load(c *counts) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, m := range modes {
		for range 2 {
			wg.Go(func() {
				client := &http.Client{
					Timeout:       30 * time.Second,
					Transport:     &http.Transport{DisableKeepAlives: !m.keepAlive},
					CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
				}
				defer client.CloseIdleConnections()
				for {
					select {
					case <-done:
						return
					default:
					}
					method, body := http.MethodGet, io.Reader(nil)
					if m.post {
						method, body = http.MethodPost, strings.NewReader("name=value&other=thing")
					}
					req, _ := http.NewRequest(method, "http://"+b.addr+"/", body)
					req.Host = "steady.test"
					if m.post {
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					}
					start := time.Now()
					resp, err := client.Do(req)
					if resp != nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					took := time.Since(start)
					switch {
					case err != nil:
						c.add(m.name, took, err.Error())
					case resp.StatusCode != http.StatusOK:
						c.add(m.name, took, resp.Status)
					default:
						c.add(m.name, took, "")
					}
					// About 50 requests a second per client: a busy site,
					// not a saturated node.
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	return func() { close(done); wg.Wait() }
}

func (b *bench) nodeAddr() (string, error) {
	out, err := b.user.Run("list-nodes", "--json")
	if err != nil {
		return "", err
	}
	var nodes []struct {
		Name      string   `json:"name"`
		PublicIPs []string `json:"public_ips"`
	}
	if err := json.Unmarshal(out, &nodes); err != nil {
		return "", fmt.Errorf("list-nodes --json: %w", err)
	}
	for _, n := range nodes {
		if n.Name == b.node && len(n.PublicIPs) > 0 {
			return n.PublicIPs[0], nil
		}
	}
	return "", fmt.Errorf("no address for %s in list-nodes:\n%s", b.node, out)
}
