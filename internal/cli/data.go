package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/toppcloud/toppcloud/internal/backuparchive"
	"github.com/toppcloud/toppcloud/internal/deploy"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/site"
	"github.com/toppcloud/toppcloud/internal/sshx"
)

// The commands on an app's data: backup, restore, clear, run.

func (a *App) backupCmd() *cobra.Command {
	var node, siteName string
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "backup LOCATION DEST",
		Short: "Back up every service of the app at a location (databases, files)",
		Long: `Back up the data of the app live at LOCATION: each of its services into one
backup (postgresql/postgresql.pgdump by pg_dump -Fc, mysql/mysql.dump by
mysqldump --single-transaction, redis/redis.dump, files/files.tar,
writable_root/files.tar), with manifest.json listing every file's size and
sha256.

DEST is a local directory (made; it must not exist or be empty), a local
.tar.gz file, or remote:NAME to keep the backup on the node (under
/var/lib/toppcloud/backups/NAME). A local backup is streamed over the same
SSH connection and checked against its manifest as it arrives; only then is
the node's copy removed.`,
		GroupID: "apps",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.backup(cmd.Context(), args[0], args[1], node, siteName, lockTimeout)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "the app's data on site `NAME`'s services node (default: the site of LOCATION, if any)")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", deploy.DefaultLockTimeout, "wait at most `D` for another operation on the same app")
	return cmd
}

// checkDest checks a local backup destination before anything runs on
// the node.
func checkDest(kind backuparchive.Kind, dest string) error {
	switch kind {
	case backuparchive.Archive:
		if _, err := os.Lstat(dest); err == nil {
			return fmt.Errorf("%s exists: give a new file name", dest)
		}
	case backuparchive.Dir:
		if entries, err := os.ReadDir(dest); err == nil && len(entries) > 0 {
			return fmt.Errorf("%s exists and is not empty: give a new directory", dest)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	default:
		return nil
	}
	parent := filepath.Dir(filepath.Clean(dest))
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: no directory %s to put it in", dest, parent)
	}
	return nil
}

// progressWriter counts bytes and shows them on a step.
type progressWriter struct {
	w     io.Writer
	n     atomic.Int64
	total int64
	step  *Step
	start time.Time
	last  time.Time
	live  bool
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	done := p.n.Add(int64(n))
	if now := time.Now(); now.Sub(p.last) > time.Second || (p.live && now.Sub(p.last) > 200*time.Millisecond) {
		p.last = now
		rate := float64(done) / now.Sub(p.start).Seconds()
		p.step.Update("%s / %s, %s/s", humanBytes(done), humanBytes(p.total), humanBytes(int64(rate)))
	}
	return n, err
}

func (a *App) backup(ctx context.Context, locArg, dest, node, siteName string, lockTimeout time.Duration) error {
	loc, name, app, err := a.dataNode(ctx, siteName, locArg, node)
	if err != nil {
		return err
	}
	kind, remoteName, err := backuparchive.Parse(dest)
	if err != nil {
		return asUsage(fmt.Errorf("backup: %w", err))
	}
	if err := checkDest(kind, dest); err != nil {
		return asUsage(fmt.Errorf("backup: %w", err))
	}
	if lockTimeout < 0 {
		return usagef("--lock-timeout must not be negative")
	}
	n, _, closeConn, err := a.connectDeploy(ctx, name)
	if err != nil {
		return err
	}
	defer closeConn()
	var res protocol.BackupResult
	args := protocol.BackupArgs{Location: loc.String(), App: app, LockWait: protocol.Duration(lockTimeout)}
	if kind == backuparchive.Remote {
		args.Name = remoteName
	}
	if err := n.Call(ctx, protocol.OpBackup, args, &res, a.streamSteps()); err != nil {
		return withTail(fmt.Errorf("backup %s: %w", loc, err))
	}
	parts := make([]string, 0, len(res.Services))
	for _, p := range res.Services {
		parts = append(parts, fmt.Sprintf("%s %s", p.Service, humanBytes(p.Bytes)))
	}
	summary := strings.Join(parts, ", ")
	if summary == "" {
		summary = "the app has no services"
	}
	if kind == backuparchive.Remote {
		a.out.Printf("backup of %s kept on %s as remote:%s (%s)", res.App, name, res.Name, summary)
		fmt.Fprintln(a.out.Stdout, backuparchive.RemotePrefix+res.Name)
		return nil
	}
	step := a.out.Step("download %s", dest)
	pr, pw := io.Pipe()
	got := make(chan error, 1)
	go func() {
		var err error
		if kind == backuparchive.Archive {
			_, err = backuparchive.ReceiveArchive(pr, dest)
		} else {
			_, err = backuparchive.ReceiveDir(pr, dest)
		}
		pr.CloseWithError(err)
		got <- err
	}()
	pw2 := &progressWriter{w: pw, total: res.Bytes, step: step, start: time.Now(), live: a.out.Live}
	callErr := n.Call(ctx, protocol.OpBackupFetch, protocol.BackupFetchArgs{Name: res.Name}, nil, remote.CallOptions{Output: pw2})
	pw.CloseWithError(callErr)
	recvErr := <-got
	if err := errors.Join(callErr, recvErr); err != nil {
		step.Fail()
		return withTail(fmt.Errorf("backup %s: download: %w (the backup stays on %s as remote:%s)", loc, err, name, res.Name))
	}
	step.Done("%s, every file checked", humanBytes(pw2.n.Load()))
	if err := n.Call(ctx, protocol.OpBackupDelete, protocol.BackupDeleteArgs{Name: res.Name}, nil, a.streamSteps()); err != nil {
		a.out.Warnf("the node's copy remote:%s was not removed: %v", res.Name, err)
	}
	a.out.Printf("backup of %s saved to %s (%s)", res.App, dest, summary)
	fmt.Fprintln(a.out.Stdout, dest)
	return nil
}

func (a *App) restoreCmd() *cobra.Command {
	var node, siteName string
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "restore BACKUP LOCATION",
		Short: "Replace the data of the app at a location with a backup",
		Long: `Restore a backup made by 'toppcloud backup' into the app live at LOCATION.
BACKUP is a local directory or .tar.gz, or remote:NAME (kept on the node).

Every file of the backup is checked against its manifest first (here for a
local backup, and again on the node), and the backup must be of the same app
with the same services; a truncated or foreign backup is refused and nothing
changes. Then each service is emptied and restored, so that afterwards it
holds exactly what the backup holds (PostgreSQL is restored into a new
database that replaces the app's only when the whole restore worked). Asks
for confirmation unless -y.`,
		GroupID: "apps",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.restore(cmd.Context(), args[0], args[1], node, siteName, lockTimeout)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "the app's data on site `NAME`'s services node (default: the site of LOCATION, if any)")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", deploy.DefaultLockTimeout, "wait at most `D` for another operation on the same app")
	return cmd
}

func (a *App) restore(ctx context.Context, backupArg, locArg, node, siteName string, lockTimeout time.Duration) error {
	loc, name, app, err := a.dataNode(ctx, siteName, locArg, node)
	if err != nil {
		return err
	}
	kind, remoteName, err := backuparchive.Parse(backupArg)
	if err != nil {
		return asUsage(fmt.Errorf("restore: %w", err))
	}
	if lockTimeout < 0 {
		return usagef("--lock-timeout must not be negative")
	}
	args := protocol.ServicesRestoreArgs{Location: loc.String(), App: app, LockWait: protocol.Duration(lockTimeout)}
	var local *backuparchive.Local
	what := backupArg
	if kind == backuparchive.Remote {
		args.Name = remoteName
	} else {
		step := a.out.Step("check %s", backupArg)
		local, err = backuparchive.OpenLocal(backupArg)
		if err != nil {
			step.Fail()
			return asUsage(fmt.Errorf("restore: %w", err))
		}
		m := local.Manifest
		step.Done("backup of %s made %s: %s, %s", m.App, m.Created.Local().Format("2006-01-02 15:04"), strings.Join(m.ServiceNames(), ", "), humanBytes(m.Size()))
		what = fmt.Sprintf("the backup of %s made %s", m.App, m.Created.Local().Format("2006-01-02 15:04"))
	}
	if err := a.confirmDataLoss("restore", fmt.Sprintf("Replace all data of the app at %s (its databases, files) with %s?", loc, what)); err != nil {
		return err
	}
	n, _, closeConn, err := a.connectDeploy(ctx, name)
	if err != nil {
		return err
	}
	defer closeConn()
	o := a.streamSteps()
	if local != nil {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(local.Send(pw)) }()
		defer pr.Close()
		o.Stream = pr
	}
	var res protocol.ServicesRestoreResult
	if err := n.Call(ctx, protocol.OpServicesRestore, args, &res, o); err != nil {
		return withTail(fmt.Errorf("restore %s: %w", loc, err))
	}
	a.out.Printf("restored %s at %s from %s (%s, %s)", res.App, loc, backupArg, strings.Join(res.Services, ", "), humanBytes(res.Bytes))
	return nil
}

func (a *App) clearCmd() *cobra.Command {
	var node, siteName string
	var lockTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "clear LOCATION",
		Short: "Delete all data of the app at a location and let it set itself up again",
		Long: `Drop and recreate every service's data of the app live at LOCATION (its
databases emptied, its files and writable root emptied; the credentials stay),
then run the app's update_fetch against its live instance so that it can set
itself up again (migrations). Asks for confirmation unless -y.`,
		GroupID: "apps",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			loc, name, app, err := a.dataNode(ctx, siteName, args[0], node)
			if err != nil {
				return err
			}
			if lockTimeout < 0 {
				return usagef("--lock-timeout must not be negative")
			}
			if err := a.confirmDataLoss("clear", fmt.Sprintf("Delete all data of the app at %s (its databases, files)?", loc)); err != nil {
				return err
			}
			n, _, closeConn, err := a.connectDeploy(ctx, name)
			if err != nil {
				return err
			}
			defer closeConn()
			var res protocol.ClearResult
			if err := n.Call(ctx, protocol.OpClear, protocol.ClearArgs{Location: loc.String(), App: app, LockWait: protocol.Duration(lockTimeout)}, &res, a.streamSteps()); err != nil {
				return withTail(fmt.Errorf("clear %s: %w", loc, err))
			}
			if app == "" {
				a.out.Printf("cleared %s (%s) and ran its update_fetch on %s", res.App, strings.Join(res.Services, ", "), res.Instance)
				return nil
			}
			// A services node runs no instance: the app sets itself up
			// again from one app node, as after a site's update.
			fetchNode, fetchLoc, err := a.siteFetchNode(ctx, siteName, args[0], node)
			if err != nil {
				return err
			}
			f, _, closeFetch, err := a.connectDeploy(ctx, fetchNode)
			if err != nil {
				return fmt.Errorf("cleared %s on %s; update_fetch on %s: %w", res.App, name, fetchNode, err)
			}
			defer closeFetch()
			var fres protocol.ClearResult
			fargs := protocol.ClearArgs{Location: fetchLoc.String(), FetchOnly: true, LockWait: protocol.Duration(lockTimeout)}
			if err := f.Call(ctx, protocol.OpClear, fargs, &fres, a.nodeSteps(fetchNode)); err != nil {
				return withTail(fmt.Errorf("cleared %s on %s, but its update_fetch on %s failed (rerun it with update): %w", res.App, name, fetchNode, err))
			}
			a.out.Printf("cleared %s (%s) on %s and ran its update_fetch on %s (%s)", res.App, strings.Join(res.Services, ", "), name, fetchNode, fres.Instance)
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the `NODE` (default: the location's host)")
	cmd.Flags().StringVar(&siteName, "site", "", "the app's data on site `NAME`'s services node (default: the site of LOCATION, if any)")
	cmd.Flags().DurationVar(&lockTimeout, "lock-timeout", deploy.DefaultLockTimeout, "wait at most `D` for another operation on the same app")
	return cmd
}

const runUsage = "run [-i] [--node NODE] LOCATION SCRIPT [ARGS...]"

// runNode is where run runs a script: for a site's location, on its first
// app node (or --node, one of its app nodes), at the app's location there;
// else on the location's node, as without sites.
func (a *App) runNode(ctx context.Context, locArg, node string) (location.Location, string, error) {
	s, err := a.siteFor(ctx, "", locArg, "")
	if err != nil || s == nil {
		if err == nil {
			return a.locationNode(locArg, node)
		}
		return location.Location{}, "", err
	}
	loc, err := siteLocation(*s, locArg)
	if err != nil {
		return loc, "", err
	}
	name := s.Nodes[0]
	if node != "" {
		if !slices.Contains(s.Nodes, node) {
			return loc, "", usagef("run: %s is not an app node of site %s (its app nodes: %s)", node, s.Name, strings.Join(s.Nodes, " "))
		}
		name = node
	}
	return site.FromConfig(*s).AppLocation(loc), name, nil
}

func (a *App) runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   runUsage,
		Short: "Run a script of the live instance with the app's environment",
		Long: `Run SCRIPT of the instance live at LOCATION as the app's user, with its
environment (SILVER_*, CONFIG_*: database credentials included, never shown
here), in its sandbox, from its directory: bin/SCRIPT or SCRIPT of the
instance, or an absolute path on the node. Output is streamed; the exit status
is the script's.

-i gives the script a terminal (manage.py shell, createsuperuser).
Options go before SCRIPT; everything after it is the script's. An argument
that names a local file or directory (also as --opt=PATH) is uploaded for the
run and replaced by its path on the node, as in the original.`,
		GroupID:            "apps",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, args)
		},
	}
	return cmd
}

// runArgs are run's parsed arguments.
type runArgs struct {
	interactive bool
	node        string
	location    string
	script      string
	args        []string
	help        bool
}

// parseRunArgs reads run's options up to SCRIPT; the rest are the
// script's own.
func parseRunArgs(args []string) (runArgs, error) {
	var r runArgs
	var pos []string
	for i := 0; i < len(args); i++ {
		s := args[i]
		if len(pos) == 2 {
			r.args = append(r.args, args[i:]...)
			break
		}
		switch {
		case s == "-i" || s == "--interactive":
			r.interactive = true
		case s == "-h" || s == "--help":
			r.help = true
		case s == "--node":
			if i+1 >= len(args) {
				return r, usagef("run: --node needs a NODE (usage: %s)", runUsage)
			}
			i++
			r.node = args[i]
		case strings.HasPrefix(s, "--node="):
			r.node = strings.TrimPrefix(s, "--node=")
		case s == "--":
			pos = append(pos, args[i+1:]...)
			if len(pos) > 2 {
				r.args = pos[2:]
				pos = pos[:2]
			}
			i = len(args)
		case strings.HasPrefix(s, "-") && len(pos) < 2:
			return r, usagef("run: unknown option %s before SCRIPT (usage: %s)", s, runUsage)
		default:
			pos = append(pos, s)
		}
	}
	if r.help {
		return r, nil
	}
	if len(pos) < 2 {
		return r, usagef("run: needs LOCATION and SCRIPT (usage: %s)", runUsage)
	}
	r.location, r.script = pos[0], pos[1]
	if r.script == "" || strings.ContainsRune(r.script, 0) {
		return r, usagef("run: bad script name %q", r.script)
	}
	return r, nil
}

// uploadPlan finds the script arguments that name local files: each is
// sent and replaced by its path on the node (dir/BASENAME).
type uploadPlan struct {
	files map[string]string // base name -> local path
}

func planUploads(args []string) (uploadPlan, error) {
	p := uploadPlan{files: map[string]string{}}
	for _, arg := range args {
		value := arg
		if i := strings.Index(arg, "="); strings.HasPrefix(arg, "--") && i > 0 {
			value = arg[i+1:]
		}
		if value == "" {
			continue
		}
		if _, err := os.Stat(value); err != nil {
			continue
		}
		base := filepath.Base(filepath.Clean(value))
		if base == "." || base == "/" || base == ".." {
			return p, usagef("run: %s: cannot upload %s (name a file or directory below it)", arg, value)
		}
		if other, ok := p.files[base]; ok && other != value {
			return p, usagef("run: %s and %s have the same name %s on the node", other, value, base)
		}
		p.files[base] = value
	}
	return p, nil
}

// rewrite replaces uploaded paths in args by their place in dir.
func (p uploadPlan) rewrite(args []string, dir string) []string {
	out := make([]string, len(args))
	for i, arg := range args {
		prefix, value := "", arg
		if j := strings.Index(arg, "="); strings.HasPrefix(arg, "--") && j > 0 {
			prefix, value = arg[:j+1], arg[j+1:]
		}
		out[i] = arg
		if value == "" {
			continue
		}
		base := filepath.Base(filepath.Clean(value))
		if local, ok := p.files[base]; ok && local == value {
			out[i] = prefix + dir + "/" + base
		}
	}
	return out
}

// writeTar sends the planned files as a tar stream (files under their
// base name, directories under theirs).
func (p uploadPlan) writeTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	for base, local := range p.files {
		root := filepath.Clean(local)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			name := base
			if rel != "." {
				name = base + "/" + filepath.ToSlash(rel)
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case fi.IsDir():
				return tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: fi.ModTime()})
			case fi.Mode().IsRegular():
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
					return err
				}
				_, err = io.Copy(tw, f)
				return err
			}
			return nil // symlinks and devices stay here
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

func (a *App) run(cmd *cobra.Command, raw []string) error {
	r, err := parseRunArgs(raw)
	if err != nil {
		return err
	}
	if r.help {
		return cmd.Help()
	}
	ctx := cmd.Context()
	loc, name, err := a.runNode(ctx, r.location, r.node)
	if err != nil {
		return err
	}
	plan, err := planUploads(r.args)
	if err != nil {
		return err
	}
	if r.interactive && !a.interactive() {
		return usagef("run -i: standard input is not a terminal")
	}
	n, _, closeConn, err := a.connectDeploy(ctx, name)
	if err != nil {
		return err
	}
	defer closeConn()
	args := protocol.RunArgs{Location: loc.String(), Script: r.script, Args: r.args, Terminal: r.interactive}
	if len(plan.files) > 0 {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(plan.writeTar(pw)) }()
		o := a.streamSteps()
		o.Stream = pr
		var up protocol.RunUploadResult
		err := n.Call(ctx, protocol.OpRunUpload, protocol.RunUploadArgs{Location: loc.String()}, &up, o)
		pr.Close()
		if err != nil {
			return withTail(fmt.Errorf("run: upload: %w", err))
		}
		args.Args = plan.rewrite(r.args, up.Dir)
		args.Uploaded = up.Dir
	}
	// With -i the script has the terminal, as with ssh -t. Otherwise its
	// output is the app's text: shown on a terminal without control
	// characters (as every other text from the node), passed on as it is
	// into a pipe or a file (a dump must stay byte for byte).
	stdout, stderr := a.out.Stdout, a.out.Stderr
	var flush []*printableWriter
	for _, w := range []*io.Writer{&stdout, &stderr} {
		if f, ok := (*w).(*os.File); ok && !r.interactive && isTerminal(f) {
			pw := &printableWriter{w: f}
			*w = pw
			flush = append(flush, pw)
		}
	}
	status, err := n.Exec(ctx, protocol.OpRun, args, sshx.TerminalOptions{
		Stdin: a.stdin, Stdout: stdout, Stderr: stderr, Pty: r.interactive,
	})
	for _, pw := range flush {
		pw.Flush()
	}
	if err != nil {
		return fmt.Errorf("run %s %s: %w", loc, r.script, err)
	}
	if status != 0 {
		return &silentError{code: status}
	}
	return nil
}
