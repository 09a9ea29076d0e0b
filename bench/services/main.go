// Command services measures backup and restore of an app's services on a
// real local node, against the plain tools over the same SSH connection:
// a PostgreSQL database and a files directory of -mb MB each (1 GB by
// default), with
//
//   - toppcloud's way: service.Backup on the node (pg_dump -Fc, the
//     in-process tar, sha256 manifest), then the backup directory sent to
//     the client as one tar stream; restore sends it back and runs
//     service.Restore (manifest check, pg_restore into a new database,
//     staged tar extraction);
//   - the plain way: `ssh node pg_dump -Fc DB > file` and `ssh node tar c DIR
//     > file`; restore `ssh node pg_restore -d DB < file` into a new
//     database and `ssh node tar x -C DIR < file`.
//
// MB/s is the data's size (pg_database_size, the files' bytes) over the
// wall time the user waits. It prints numbers and asserts nothing.
//
//	sudo go run ./bench/services [-mb 1024] [-runs 1]
//
// It needs root and what the local provider needs, and the network for apt
// on the first run (the provider's shared .deb pool keeps the packages).
// The program copies itself onto the node and runs its node-side half
// there (-node-op), as the agent would run service code.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
	"github.com/toppcloud/toppcloud/internal/provider/local"
	"github.com/toppcloud/toppcloud/internal/provider/local/localtest"
)

func main() {
	mbFlag := flag.Int("mb", 1024, "size of the database and of the files, in MB each")
	runs := flag.Int("runs", 1, "runs of each measurement (the best is printed)")
	cache := flag.String("cache", local.DefaultRoot, "local provider cache_dir (image, shared apt pool)")
	nodeOp := flag.String("node-op", "", "internal: the node-side half (fill, backup, restore)")
	dir := flag.String("dir", "", "internal: node-side directory argument")
	flag.Parse()
	var err error
	if *nodeOp != "" {
		err = onNode(*nodeOp, *dir, *mbFlag)
	} else {
		err = run(*mbFlag, *runs, *cache)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "services:", err)
		os.Exit(1)
	}
}

type bench struct {
	c *ssh.Client
}

// exec runs cmd on the node with stdin and stdout connected to the given
// reader and writer (nil for none) and returns how long it took.
func (b *bench) exec(cmd string, stdin io.Reader, stdout io.Writer) (time.Duration, error) {
	s, err := b.c.NewSession()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var stderr strings.Builder
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, &stderr
	start := time.Now()
	err = s.Run(cmd)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %v\n%s", cmd, err, stderr.String())
	}
	return d, nil
}

func (b *bench) out(cmd string) (string, error) {
	var sb strings.Builder
	_, err := b.exec(cmd, nil, &sb)
	return strings.TrimSpace(sb.String()), err
}

func run(mbs, runs int, cache string) error {
	ctx := context.Background()
	root, err := os.MkdirTemp("", "toppcloud-bench-services-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	d, err := local.New(provider.Env{Section: "bench", Settings: provider.Settings{"root": root, "cache_dir": cache}, Log: io.Discard})
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := localtest.Create(ctx, d, localtest.UniqueName("bench-svc"), provider.CreateRequest{Size: provider.Size{ID: "large"}})
	if n.ID != "" {
		defer d.DestroyNode(context.Background(), n.ID)
	}
	if err != nil {
		return err
	}
	c, err := n.TryDial(10 * time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	b := &bench{c: c}
	fmt.Printf("node %s up in %s\n", n.Name, time.Since(start).Round(time.Millisecond))

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	f, err := os.Open(exe)
	if err != nil {
		return err
	}
	_, err = b.exec("cat > /root/bench && chmod 0700 /root/bench", f, nil)
	f.Close()
	if err != nil {
		return err
	}
	start = time.Now()
	if _, err := b.exec(fmt.Sprintf("/root/bench -node-op fill -mb %d", mbs), nil, os.Stdout); err != nil {
		return err
	}
	fmt.Printf("filled in %s\n", time.Since(start).Round(time.Second))
	pgBytes, err := b.out(`runuser -u postgres -- psql -X -A -t -c "SELECT pg_database_size('bench')"`)
	if err != nil {
		return err
	}
	filesBytes, err := b.out("du -sb --apparent-size /var/lib/toppcloud/apps/bench/files | cut -f1")
	if err != nil {
		return err
	}
	var pg, files int64
	fmt.Sscan(pgBytes, &pg)
	fmt.Sscan(filesBytes, &files)
	fmt.Printf("data: PostgreSQL database %.0f MB, files %.0f MB\n\n", mb(pg), mb(files))

	local := filepath.Join(root, "client")
	if err := os.MkdirAll(local, 0o700); err != nil {
		return err
	}
	type result struct {
		name  string
		bytes int64
		best  time.Duration
	}
	var results []result
	measure := func(name string, bytes int64, fn func() (time.Duration, error)) error {
		best := time.Duration(0)
		for range runs {
			dt, err := fn()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if best == 0 || dt < best {
				best = dt
			}
		}
		results = append(results, result{name, bytes, best})
		fmt.Printf("%-44s %8.1f s %8.1f MB/s\n", name, best.Seconds(), mb(bytes)/best.Seconds())
		return nil
	}
	total := pg + files
	tarPath := filepath.Join(local, "backup.tar")
	// toppcloud: backup on the node, then the directory to the client.
	err = measure("toppcloud backup (pg + files) to the client", total, func() (time.Duration, error) {
		start := time.Now()
		if _, err := b.exec("rm -rf /var/lib/toppcloud/backups/bench-run && /root/bench -node-op backup -dir /var/lib/toppcloud/backups/bench-run", nil, os.Stdout); err != nil {
			return 0, err
		}
		out, err := os.Create(tarPath)
		if err != nil {
			return 0, err
		}
		defer out.Close()
		if _, err := b.exec("tar -C /var/lib/toppcloud/backups/bench-run -cf - .", nil, out); err != nil {
			return 0, err
		}
		if err := out.Sync(); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	})
	if err != nil {
		return err
	}
	err = measure("toppcloud restore (pg + files) from the client", total, func() (time.Duration, error) {
		start := time.Now()
		in, err := os.Open(tarPath)
		if err != nil {
			return 0, err
		}
		defer in.Close()
		if _, err := b.exec("rm -rf /var/lib/toppcloud/backups/bench-up && mkdir -m 0700 /var/lib/toppcloud/backups/bench-up && tar -C /var/lib/toppcloud/backups/bench-up -xf -", in, nil); err != nil {
			return 0, err
		}
		if _, err := b.exec("/root/bench -node-op restore -dir /var/lib/toppcloud/backups/bench-up", nil, os.Stdout); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	})
	if err != nil {
		return err
	}
	if _, err := b.exec("rm -rf /var/lib/toppcloud/backups/bench-run /var/lib/toppcloud/backups/bench-up", nil, nil); err != nil {
		return err
	}
	dumpPath := filepath.Join(local, "plain.pgdump")
	plainTar := filepath.Join(local, "plain.tar")
	toFile := func(p, cmd string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			out, err := os.Create(p)
			if err != nil {
				return 0, err
			}
			defer out.Close()
			start := time.Now()
			if _, err := b.exec(cmd, nil, out); err != nil {
				return 0, err
			}
			if err := out.Sync(); err != nil {
				return 0, err
			}
			return time.Since(start), nil
		}
	}
	fromFile := func(p, prep, cmd string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			if _, err := b.exec(prep, nil, nil); err != nil {
				return 0, err
			}
			in, err := os.Open(p)
			if err != nil {
				return 0, err
			}
			defer in.Close()
			return b.exec(cmd, in, nil)
		}
	}
	for _, m := range []struct {
		name  string
		bytes int64
		fn    func() (time.Duration, error)
	}{
		{"plain: ssh pg_dump -Fc > file", pg, toFile(dumpPath, "runuser -u postgres -- pg_dump -Fc bench")},
		{"plain: ssh tar c > file", files, toFile(plainTar, "tar -C /var/lib/toppcloud/apps/bench/files -cf - .")},
		{"plain: ssh pg_restore -d NEWDB < file", pg, fromFile(dumpPath,
			`runuser -u postgres -- psql -X -q -c 'DROP DATABASE IF EXISTS plain' -c 'CREATE DATABASE plain'`,
			"runuser -u postgres -- pg_restore -d plain")},
		{"plain: ssh tar x < file", files, fromFile(plainTar,
			"rm -rf /var/lib/toppcloud/plain-files && mkdir /var/lib/toppcloud/plain-files",
			"tar -C /var/lib/toppcloud/plain-files -xf -")},
	} {
		if err := measure(m.name, m.bytes, m.fn); err != nil {
			return err
		}
	}
	var plainBackup, plainRestore time.Duration
	for _, r := range results {
		switch {
		case strings.HasPrefix(r.name, "plain: ssh pg_dump"), strings.HasPrefix(r.name, "plain: ssh tar c"):
			plainBackup += r.best
		case strings.HasPrefix(r.name, "plain: ssh pg_restore"), strings.HasPrefix(r.name, "plain: ssh tar x"):
			plainRestore += r.best
		}
	}
	fmt.Printf("%-44s %8.1f s %8.1f MB/s\n", "plain backup, both (sum)", plainBackup.Seconds(), mb(total)/plainBackup.Seconds())
	fmt.Printf("%-44s %8.1f s %8.1f MB/s\n", "plain restore, both (sum)", plainRestore.Seconds(), mb(total)/plainRestore.Seconds())
	return nil
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
