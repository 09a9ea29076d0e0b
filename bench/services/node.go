package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/service"
	"github.com/toppcloud/toppcloud/internal/service/files"
	"github.com/toppcloud/toppcloud/internal/service/postgresql"
)

// The node-side half: what the agent would do, with the same code.

var benchApp = service.App{Name: "bench", DataDir: "/var/lib/toppcloud/apps/bench", User: "app-bench", Platform: "static"}

func bound(h *host.Host) []service.Bound {
	l := layout.Default()
	node := service.Node{Host: h, Warn: func(m string) { fmt.Println("warning:", m) }, LockDir: l.Locks, StateDir: l.Services}
	return []service.Bound{
		{Service: files.New(node), App: benchApp},
		{Service: postgresql.New(node, false), App: benchApp},
	}
}

func sh(ctx context.Context, h *host.Host, stdin string, argv ...string) error {
	c := host.Command{Argv: argv}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	_, err := h.Runner.Run(ctx, c)
	return err
}

func onNode(op, dir string, mbs int) error {
	ctx := context.Background()
	h := host.New()
	b := bound(h)
	start := time.Now()
	step := func(what string) {
		fmt.Printf("  node: %s (%s)\n", what, time.Since(start).Round(time.Millisecond))
	}
	switch op {
	case "fill":
		if err := sh(ctx, h, "", "apt-get", "update", "-q"); err != nil {
			return err
		}
		if err := sh(ctx, h, "", append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, service.Packages(b)...)...); err != nil {
			return err
		}
		step("packages")
		if _, ok, _ := h.LookupUser(benchApp.User); !ok {
			if err := sh(ctx, h, "", "useradd", "--system", "--no-create-home", benchApp.User); err != nil {
				return err
			}
		}
		if _, err := h.EnsureDir(benchApp.DataDir, host.Attr{Mode: 0o711}); err != nil {
			return err
		}
		if _, err := service.Prepare(ctx, b, true, service.Hooks{}); err != nil {
			return err
		}
		step("services set up")
		// Rows of about 300 bytes: hex text (compresses about 2:1), a
		// number and a time, as a real table might hold.
		rows := int64(mbs) << 20 / 330
		sql := fmt.Sprintf(`CREATE TABLE big (id bigint PRIMARY KEY, body text, at timestamptz);
INSERT INTO big SELECT i, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
  || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), now() - i * interval '1 second'
  FROM generate_series(1, %d) i;
ALTER TABLE big OWNER TO bench;`, rows)
		if err := sh(ctx, h, sql, "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench"); err != nil {
			return err
		}
		step("database filled")
		// Files of 1 MB, random (incompressible) bytes, in 10 directories.
		u, _, _ := h.LookupUser(benchApp.User)
		buf := make([]byte, 1<<20)
		for i := range mbs {
			d := filepath.Join(files.Dir(benchApp), fmt.Sprintf("d%02d", i%10))
			if err := os.MkdirAll(d, 0o750); err != nil {
				return err
			}
			rand.Read(buf)
			p := filepath.Join(d, fmt.Sprintf("f%05d.bin", i))
			if err := os.WriteFile(p, buf, 0o640); err != nil {
				return err
			}
			os.Lchown(p, u.UID, u.GID)
			os.Lchown(d, u.UID, u.GID)
		}
		if err := sh(ctx, h, "", "sync"); err != nil {
			return err
		}
		step("files written")
	case "backup":
		m, err := service.Backup(ctx, h, benchApp.Name, b, dir, "bench", func(s string) { step("backing up " + s) })
		if err != nil {
			return err
		}
		step(fmt.Sprintf("backup of %.0f MB done", float64(m.Size())/(1<<20)))
	case "restore":
		if _, err := service.Restore(ctx, h, benchApp.Name, b, dir, func(s string) { step("restoring " + s) }); err != nil {
			return err
		}
		step("restore done")
	default:
		return fmt.Errorf("unknown node op %q", op)
	}
	return nil
}
