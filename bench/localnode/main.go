//go:build linux

// Command localnode measures the local provider on this machine and prints
// the numbers: creating a node from the cached image until sshd answers
// with its host key, destroying it, and optionally building the image from
// scratch and comparing an overlay root with a full copy of the image.
//
//	sudo go run ./bench/localnode                 # 5 create/destroy rounds
//	sudo go run ./bench/localnode -build -copy    # plus a cold image build and the copy comparison
//
// It needs root and what the local provider needs (systemd-container,
// debootstrap, nftables).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local"
)

func main() {
	cache := flag.String("cache", local.DefaultRoot, "image cache directory (cache_dir) used for the create rounds")
	rounds := flag.Int("n", 5, "create/destroy rounds")
	build := flag.Bool("build", false, "also time a cold image build into an empty temporary cache (downloads about 60 MB)")
	copyCmp := flag.Bool("copy", false, "also compare an overlay root with a full copy of the image")
	verbose := flag.Bool("v", false, "show the driver's log")
	flag.Parse()
	if err := run(*cache, *rounds, *build, *copyCmp, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "localnode:", err)
		os.Exit(1)
	}
}

func run(cache string, rounds int, build, copyCmp, verbose bool) error {
	ctx := context.Background()
	var log io.Writer = io.Discard
	if verbose {
		log = os.Stderr
	}
	if build {
		if err := benchBuild(ctx, log); err != nil {
			return err
		}
	}
	root, err := os.MkdirTemp("/var/tmp", "localnode-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	d, err := local.New(provider.Env{Settings: provider.Settings{"root": root, "cache_dir": cache}, Log: log})
	if err != nil {
		return err
	}
	_, pub, err := newKey()
	if err != nil {
		return err
	}
	images, _ := d.ListImages(ctx)
	if len(images) > 0 && strings.Contains(images[0].Note, "not built") {
		fmt.Printf("image not cached in %s: building it with a first create (not counted) ...\n", cache)
		start := time.Now()
		n, err := d.CreateNode(ctx, provider.CreateRequest{Name: "bench-warmup-" + randHex(3), AuthorizedKeys: []string{pub}})
		if err != nil {
			return err
		}
		fmt.Printf("  first create with image build: %s\n", ms(time.Since(start)))
		if err := d.DestroyNode(ctx, n.ID); err != nil {
			return err
		}
	}

	var creates, readies, destroys []time.Duration
	for i := range rounds {
		name := fmt.Sprintf("bench-%d-%s", i, randHex(3))
		start := time.Now()
		n, err := d.CreateNode(ctx, provider.CreateRequest{Name: name, AuthorizedKeys: []string{pub}, Size: provider.Size{ID: "small"}})
		if err != nil {
			return err
		}
		created := time.Since(start)
		addr := net.JoinHostPort(n.Address(), "22")
		if err := waitHostKey(ctx, addr, time.Minute); err != nil {
			_ = d.DestroyNode(ctx, n.ID)
			return fmt.Errorf("node %s: %w", name, err)
		}
		ready := time.Since(start)
		if i == 0 && copyCmp {
			fmt.Printf("node disk use (own files in the overlay upper layer, after boot): %s\n", mb(ownBytes(filepath.Join(root, "nodes", name, "upper"))))
		}
		start = time.Now()
		if err := d.DestroyNode(ctx, n.ID); err != nil {
			return err
		}
		destroyed := time.Since(start)
		fmt.Printf("round %d: CreateNode returned %6s  sshd host key %6s  destroy %6s\n", i+1, ms(created), ms(ready), ms(destroyed))
		creates = append(creates, created)
		readies = append(readies, ready)
		destroys = append(destroys, destroyed)
	}
	if rounds == 0 {
		return nil
	}
	fmt.Printf("create until sshd answers: %s (target <= 5 s)\n", stats(readies))
	fmt.Printf("CreateNode call alone:     %s\n", stats(creates))
	fmt.Printf("destroy:                   %s (target <= 3 s)\n", stats(destroys))

	if copyCmp {
		return benchCopy(d.ImageRootfs(), root)
	}
	return nil
}

// benchBuild builds the image into an empty temporary cache.
func benchBuild(ctx context.Context, log io.Writer) error {
	tmp, err := os.MkdirTemp("/var/tmp", "localnode-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	d, err := local.New(provider.Env{Settings: provider.Settings{"root": tmp, "cache_dir": tmp}, Log: log})
	if err != nil {
		return err
	}
	fmt.Println("building the image into an empty cache ...")
	start := time.Now()
	if _, err := d.EnsureImage(ctx); err != nil {
		return err
	}
	took := time.Since(start)
	size := ownBytes(d.ImageRootfs())
	pool := ownBytes(filepath.Join(tmp, "apt-cache"))
	fmt.Printf("image build: %s (target <= 2 min), image %s, apt pool seeded with %s\n", took.Round(100*time.Millisecond), mb(size), mb(pool))
	return nil
}

// benchCopy times the alternative to an overlay: a full copy of the image
// per node, and removing it again.
func benchCopy(image, root string) error {
	dst := filepath.Join(root, "copy")
	start := time.Now()
	if out, err := exec.Command("cp", "-a", "--reflink=auto", image, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	syscall.Sync()
	copied := time.Since(start)
	size := ownBytes(dst)
	start = time.Now()
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	syscall.Sync()
	removed := time.Since(start)

	up, work, mnt := filepath.Join(root, "up"), filepath.Join(root, "work"), filepath.Join(root, "mnt")
	for _, p := range []string{up, work, mnt} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	start = time.Now()
	if err := syscall.Mount("overlay", mnt, "overlay", 0, "lowerdir="+image+",upperdir="+up+",workdir="+work); err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	mounted := time.Since(start)
	start = time.Now()
	if err := syscall.Unmount(mnt, 0); err != nil {
		return err
	}
	unmounted := time.Since(start)
	fmt.Printf("full copy of the image: %s, %s per node; removing it: %s\n", ms(copied), mb(size), ms(removed))
	fmt.Printf("overlay instead:        mount %s, unmount %s, 0 MB until the node writes\n", ms(mounted), ms(unmounted))
	return nil
}

// waitHostKey polls sshd until it completes a key exchange.
func waitHostKey(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = probeHostKey(pctx, addr)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("sshd at %s did not answer within %s: %v", addr, timeout, last)
}

var errGotKey = errors.New("got host key")

// probeHostKey runs an SSH handshake up to the host key and stops there.
func probeHostKey(ctx context.Context, addr string) (ssh.PublicKey, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var key ssh.PublicKey
	_, _, _, err = ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User: "probe",
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errGotKey
		},
	})
	if key != nil {
		return key, nil
	}
	return nil, err
}

func newKey() (ssh.Signer, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", err
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), nil
}

// ownBytes sums regular files under dir, counting each inode once and
// skipping files hard-linked from elsewhere (the shared apt pool).
func ownBytes(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && (seen[st.Ino] || (st.Nlink > 1 && strings.HasSuffix(e.Name(), ".deb"))) {
			return nil
		}
		if ok {
			seen[st.Ino] = true
		}
		total += info.Size()
		return nil
	})
	return total
}

func stats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no data"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("min %s  median %s  max %s  (n=%d)", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]), len(s))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func mb(b int64) string { return fmt.Sprintf("%d MB", b>>20) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
