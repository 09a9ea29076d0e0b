package appsocket

import (
	"context"
	"fmt"
	"io"
	"os/user"
	"strconv"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
)

// Command runs `toppcloud app-socket ARGS`, which an instance's units
// run:
//
//	prepare RUN INSTANCE USER GROUP   before the app starts (as root): Prepare
//	lock RUN INSTANCE USER GROUP      once it listens (as root): Lock
//	seal RUN INSTANCE USER GROUP      once it has stopped (as root): Seal
//	proxy PORT USER                   a command app's socket proxy: Proxy
//
// USER is the app's user, GROUP Caddy's. It returns the exit status.
func Command(ctx context.Context, args []string, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "toppcloud app-socket:", err)
		return 1
	}
	usage := func() int {
		fmt.Fprintln(stderr, "usage: toppcloud app-socket prepare|lock|seal RUN INSTANCE USER GROUP | proxy PORT USER")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "prepare", "lock", "seal":
		if len(args) != 5 {
			return usage()
		}
		uid, err := userID(args[3])
		if err != nil {
			return fail(err)
		}
		gid, err := groupID(args[4])
		if err != nil {
			return fail(err)
		}
		switch args[0] {
		case "prepare":
			err = Prepare(args[1], args[2], uid, gid)
		case "lock":
			err = Lock(args[1], args[2], layout.SocketName, uid, gid)
		default:
			err = Seal(args[1], args[2], layout.SocketName, gid)
		}
		if err != nil {
			return fail(err)
		}
		return 0
	case "proxy":
		if len(args) != 3 {
			return usage()
		}
		port, err := strconv.Atoi(args[1])
		if err != nil || port < 1 || port > 65535 {
			return fail(fmt.Errorf("port %q", args[1]))
		}
		uid, err := userID(args[2])
		if err != nil {
			return fail(err)
		}
		ln, err := Activated()
		if err != nil {
			return fail(err)
		}
		p := &Proxy{Port: port, UID: uid, Log: func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }}
		if err := p.Serve(ctx, ln); err != nil {
			return fail(err)
		}
		return 0
	}
	return usage()
}

func userID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(u.Uid)
}

func groupID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
