// Package jobrun is what systemd runs for an app's jobs on a node,
// `toppcloud node-job ...` (the units are rendered by package instance):
//
//	node-job worker-turn UNIT
//	    runs as root before every start of a worker unit: waits until no
//	    other instance's copy of the worker runs, then, after quick
//	    failures, lengthens the pause before the restart.
//	node-job fetch --kind KIND --host HOST INSTANCE URLPATH
//	    a cron entry's internal request: the same request update_fetch
//	    makes, with the instance's internal token. It runs as root,
//	    outside the app's sandbox, because the token must stay out of
//	    the app's reach (a cron script of the app's own never sees it);
//	    it only makes one HTTP request to the instance's socket.
package jobrun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/agent/system"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

// Exit statuses.
const (
	exitFailed = 1
	exitUsage  = 2
)

// Main runs `toppcloud node-job ARGS...` on the node and returns the exit
// status. Output goes to the unit's journal.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: toppcloud node-job worker-turn UNIT | fetch --kind KIND --host HOST INSTANCE URLPATH  (run by systemd on nodes)")
		return exitUsage
	}
	var err error
	switch args[0] {
	case "worker-turn":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: toppcloud node-job worker-turn UNIT")
			return exitUsage
		}
		h := host.New()
		t := Turn{Systemd: system.Systemd{Runner: h.Runner}, StateDir: h.Path(layout.Default().Locks), Log: stdout}
		err = t.Wait(ctx, args[1])
	case "fetch":
		err = fetch(ctx, layout.Default(), args[1:], os.Getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "toppcloud node-job: unknown job command %q\n", args[0])
		return exitUsage
	}
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "toppcloud node-job:", err)
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "toppcloud node-job:", err)
		return exitFailed
	}
	return 0
}

type usageError struct{ error }

// startWait is how long an internal request waits for an instance that
// does not listen yet.
const startWait = 30 * time.Second

// notListening reports whether err says nothing listens where the
// instance should.
func notListening(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// fetch makes a cron entry's internal request to the instance's socket
// (l.Socket), with the instance's environment: its token proves the
// request is the agent's (environ['silverlining.internal'] for Python,
// $_SERVER['SILVERLINING_INTERNAL'] for PHP). It runs as root (the cron
// unit's ExecStart=+), as the agent's own requests do: the socket is
// root's and Caddy's once the app listens, and the firewall lets only
// root and the proxy reach a command app's port.
func fetch(ctx context.Context, l layout.Layout, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kindName := fs.String("kind", "", "how the instance runs (python, paste, php, command)")
	hostName := fs.String("host", "localhost", "the Host of the request")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 2 {
		return usageError{errors.New("fetch takes the instance and the URL path")}
	}
	name, urlPath := fs.Arg(0), fs.Arg(1)
	app, ok := instance.SplitName(name)
	if !ok {
		return usageError{fmt.Errorf("%q is not an instance name", name)}
	}
	var kind appconfig.Kind
	if err := kind.UnmarshalText([]byte(*kindName)); err != nil {
		return usageError{err}
	}
	port, _ := strconv.Atoi(getenv("PORT"))
	inst := &instance.Instance{
		App: app, Name: name, Kind: kind, Port: port, Layout: l,
		Runner: getenv(instance.EnvRunner), PHPRoot: getenv(instance.EnvPHPRoot),
		Token: getenv(instance.EnvInternalToken),
	}
	if inst.Token == "" {
		return errors.New("no internal token in the environment: run by the cron unit, with the instance's environment file")
	}
	fmt.Fprintf(stdout, "GET %s (Host %s) from %s\n", urlPath, *hostName, name)
	start := time.Now()
	var err error
	for {
		err = inst.Fetch(ctx, instance.CronUserAgent, *hostName, urlPath, func(line string) { fmt.Fprintln(stdout, line) })
		// Not answering yet: the request was never sent, so it is safe to
		// send it again. It happens at boot, when a run missed while the
		// node was down comes due as the instance starts.
		if !notListening(err) || time.Since(start) > startWait {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	var fe *instance.FetchError
	switch {
	case errors.As(err, &fe) && fe.Status != 0:
		return fmt.Errorf("GET %s: the application answered %d %s", urlPath, fe.Status, http.StatusText(fe.Status))
	case errors.As(err, &fe) && fe.Err != nil:
		return fmt.Errorf("GET %s: %w", urlPath, fe.Err)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "done in %.1fs\n", time.Since(start).Seconds())
	return nil
}
