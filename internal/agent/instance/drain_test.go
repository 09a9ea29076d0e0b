package instance

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

const procSample = `Num       RefCount Protocol Flags    Type St Inode Path
00000000b9085f99: 00000002 00000000 00010000 0001 01 720483 /run/toppcloud/a.1/app.sock
00000000bd414810: 00000003 00000000 00000000 0001 03 720486 /run/toppcloud/a.1/app.sock
000000002ebb50da: 00000003 00000000 00000000 0001 02     0 /run/toppcloud/a.1/app.sock
0000000011111111: 00000003 00000000 00000000 0001 03 720490 /run/toppcloud/a.10/app.sock
0000000022222222: 00000003 00000000 00000000 0001 03 720491
0000000033333333: 00000002 00000000 00010000 0001 01 720492 /run/with space/app.sock
0000000044444444: 00000003 00000000 00000000 0001 03 720493 /run/with space/app.sock
`

func TestCountConnections(t *testing.T) {
	for path, want := range map[string]int{
		"/run/toppcloud/a.1/app.sock":  2, // one accepted, one in the backlog; not the listener
		"/run/toppcloud/a.10/app.sock": 1,
		"/run/with space/app.sock":     1,
		"/run/toppcloud/none.sock":     0,
	} {
		n, err := CountConnections([]byte(procSample), path)
		if err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", path, n, err, want)
		}
	}
	if _, err := CountConnections([]byte("h\nx: 1 0 zz 1 1 1 /p\n"), "/p"); err == nil {
		t.Error("bad flags accepted")
	}
}

// TestDrainer_RealSocket counts real connections: Wait returns only after
// the last one closes, and reports what was in flight.
func TestDrainer_RealSocket(t *testing.T) {
	if _, err := os.Stat(ProcNetUnix); err != nil {
		t.Skip("no " + ProcNetUnix)
	}
	dir, err := os.MkdirTemp("", "drain")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c1, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool
	go func() {
		time.Sleep(150 * time.Millisecond)
		c1.Close()
		c2.Close()
		accepted.Close()
		closed.Store(true)
		// The backlogged one goes when the listener accepts and closes it.
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	initial, left, drained, err := Drainer{Timeout: 5 * time.Second}.Wait(context.Background(), sock)
	if err != nil || !drained || left != 0 || initial != 2 || !closed.Load() {
		t.Fatalf("Wait = initial %d, left %d, drained %v, %v (closed %v)", initial, left, drained, err, closed.Load())
	}

	// Something that never finishes: Wait gives up after the timeout.
	c3, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	_, left, drained, err = Drainer{Timeout: 200 * time.Millisecond}.Wait(context.Background(), sock)
	if err != nil || drained || left != 1 {
		t.Fatalf("with a connection left: left %d, drained %v, %v", left, drained, err)
	}
}
