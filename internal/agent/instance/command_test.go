package instance

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/appsocket"
	"github.com/toppcloud/toppcloud/internal/appconfig"
)

func commandInstance(t *testing.T, runner string) *Instance {
	t.Helper()
	need(t, "/usr/bin/python3")
	l := testLayout(t)
	inst := testInstance(t, l, "command", appconfig.KindCommand, runner, "")
	port, err := FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	inst.Port = port
	return inst
}

// startProxy runs what the proxy units run (appsocket.Proxy) on the
// instance's socket, for an app run by the test's own user.
func startProxy(t *testing.T, inst *Instance) {
	t.Helper()
	ln, err := net.Listen("unix", inst.Layout.Socket(inst.Name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := &appsocket.Proxy{Port: inst.Port, UID: os.Getuid(), Log: t.Logf}
		_ = p.Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestCommand_HealthyAndFetch(t *testing.T) {
	inst := commandInstance(t, "server.sh")
	if got := inst.ProcessEnv(); got["PORT"] != strconv.Itoa(inst.Port) || got["HOST"] != "127.0.0.1" {
		t.Fatalf("PORT/HOST = %q/%q", got["PORT"], got["HOST"])
	}
	startInstance(t, inst)

	var lines []string
	err := inst.RunUpdateFetch(context.Background(), "example.com",
		[]appconfig.Fetch{{URL: "/server.sh"}}, func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || lines[0] != "Fetching update URL /server.sh" || !strings.Contains(strings.Join(lines, "\n"), "exec python3 -m http.server") {
		t.Errorf("output %q", lines)
	}
	err = inst.FetchURL(context.Background(), "example.com", "/missing", func(string) {})
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 404 || !errors.Is(err, ErrFetchFailed) {
		t.Errorf("fetch of a missing page: %v", err)
	}
}

func TestCommand_ExitsAtOnce(t *testing.T) {
	inst := commandInstance(t, "crash.sh")
	p := startProcess(t, inst.Command(), inst.ProcessEnv(), inst.Dir())
	err := inst.Health(p.exited, p.tail).Wait(context.Background())
	var he *HealthError
	if !errors.As(err, &he) || he.Reason != "exited" {
		t.Fatalf("Wait: %v, want exited", err)
	}
	if !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("error %q lacks the exit status", err)
	}
	if !strings.Contains(strings.Join(he.Tail, "\n"), "cannot start: no database configured") {
		t.Errorf("tail %q lacks the app's message", he.Tail)
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	if p < PortMin || p > PortMax {
		t.Errorf("port %d outside %d-%d", p, PortMin, PortMax)
	}
	// A bound port and an excluded one are skipped. The port after the
	// bound one must be free to begin with: other tests and programs on
	// the machine take ephemeral ports too, so look for such a pair.
	var busy int
	for try := 0; busy == 0; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p := ln.Addr().(*net.TCPAddr).Port
		if next, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1))); err == nil {
			next.Close()
			busy = p
		} else if try == 50 {
			t.Fatal("no free port next to a bound one")
		}
	}
	first := func(int) int { return 0 }
	got, err := freePort(nil, busy, busy+1, first)
	if err != nil || got != busy+1 {
		t.Errorf("freePort(%d-%d) = %d, %v; want %d", busy, busy+1, got, err, busy+1)
	}
	_, err = freePort(func(p int) bool { return p == busy+1 }, busy, busy+1, first)
	if !errors.Is(err, ErrNoPort) {
		t.Errorf("all ports taken: %v, want ErrNoPort", err)
	}
}
