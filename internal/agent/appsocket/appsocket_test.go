package appsocket

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPrepare_RefusesSymlinks: a symlink planted where an instance's
// socket directory will be is never followed (it made root chown any
// directory), and a real directory gets the owner and mode.
func TestPrepare_RefusesSymlinks(t *testing.T) {
	run := t.TempDir()
	victim := t.TempDir()
	os.Chmod(victim, 0o755)
	if err := os.Symlink(victim, filepath.Join(run, "blog.1")); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	err := Prepare(run, "blog.1", uid, gid)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked entry: %v", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o755 {
		t.Errorf("the symlink's target changed to %v", fi.Mode().Perm())
	}
	os.WriteFile(filepath.Join(run, "file"), nil, 0o644)
	if err := Prepare(run, "file", uid, gid); err == nil {
		t.Error("a file was taken for a directory")
	}
	if err := Prepare(run, "../x", uid, gid); err == nil {
		t.Error("a name with a slash was accepted")
	}
	// The run directory itself as a symlink is refused too.
	if err := Prepare(filepath.Join(run, "blog.1"), "x", uid, gid); err == nil {
		t.Error("a symlinked parent was followed")
	}
	if err := Prepare(run, "blog.2", uid, gid); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(run, "blog.2")); err != nil || !fi.IsDir() || fi.Mode().Perm() != OpenMode {
		t.Errorf("made %v %v", fi, err)
	}
	// Again on the existing directory: fine.
	if err := Prepare(run, "blog.2", uid, gid); err != nil {
		t.Error(err)
	}
}

// TestLock: once locked, the app's directory is root's and only a socket
// the app bound passes.
func TestLock(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the directory to root")
	}
	run := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	if err := Prepare(run, "blog.1", uid, gid); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(run, "blog.1")
	ln, err := net.Listen("unix", filepath.Join(dir, "app.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Lock(run, "blog.1", "app.sock", uid, gid); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != LockedMode || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("locked directory: %v owner %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}
	if err := Lock(run, "blog.1", "app.sock", uid+1, gid); err == nil {
		t.Error("another user's socket passed")
	}
	// The app swapped its socket for a symlink to another socket.
	other := filepath.Join(t.TempDir(), "other.sock")
	oln, _ := net.Listen("unix", other)
	defer oln.Close()
	os.Remove(filepath.Join(dir, "app.sock"))
	os.Symlink(other, filepath.Join(dir, "app.sock"))
	if err := Lock(run, "blog.1", "app.sock", uid, gid); err == nil || !strings.Contains(err.Error(), "not a socket the app bound") {
		t.Errorf("a symlinked socket: %v", err)
	}
}

// TestProxy_OnlyTheAppsListener: the proxy passes connections on to the
// app's port only while the app's user listens there; a squatter of
// another user gets nothing.
func TestProxy_OnlyTheAppsListener(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to listen as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	nobodyUID, _ := strconv.Atoi(nobody.Uid)
	// Ours: a listener of uid 0 answering "app".
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := app.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("app"))
			c.Close()
		}
	}()
	front := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", front)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logged []string
	p := &Proxy{Port: port, UID: 0, Log: func(f string, a ...any) { logged = append(logged, f) }}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	read := func() string {
		c, err := net.Dial("unix", front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := read(); got != "app" {
		t.Errorf("through the proxy: %q", got)
	}
	// The app goes away; nobody takes its port.
	app.Close()
	squat := exec.Command("python3", "-c", "import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('127.0.0.1',"+strconv.Itoa(port)+"));s.listen();print('up',flush=True)\nwhile True:\n c,_=s.accept();c.sendall(b'squatter');c.close()")
	squat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nobodyUID), Gid: 65534}}
	out, _ := squat.StdoutPipe()
	if err := squat.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	defer func() { squat.Process.Kill(); squat.Wait() }()
	buf := make([]byte, 3)
	io.ReadFull(out, buf)
	if got := read(); got != "" {
		t.Errorf("the squatter got the connection and answered %q", got)
	}
	if _, err := p.Connect(context.Background()); !errors.Is(err, ErrNotTheApp) {
		t.Errorf("Connect to the squatter: %v", err)
	}
	if uid, err := func() (int, error) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return -1, err
		}
		defer c.Close()
		return PeerUID(c.(*net.TCPConn))
	}(); err != nil || uid != nobodyUID {
		t.Errorf("PeerUID = %d, %v; want %d", uid, err, nobodyUID)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if len(logged) == 0 {
		t.Error("the refused connection was not logged")
	}
}

// TestSeal: after a stop the directory is root's and nothing is left at
// the socket's name, whatever the app put there (a symlink, a directory
// with a link inside); a directory already removed is fine.
func TestSeal(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the directory to root")
	}
	run := t.TempDir()
	uid, gid := os.Getuid(), os.Getgid()
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep"), 0o600)
	for _, plant := range []func(dir string){
		func(dir string) { os.Symlink(target, filepath.Join(dir, "app.sock")) },
		func(dir string) {
			os.Mkdir(filepath.Join(dir, "app.sock"), 0o700)
			os.Symlink(filepath.Dir(target), filepath.Join(dir, "app.sock", "up"))
		},
		func(dir string) {},
	} {
		if err := Prepare(run, "blog.1", uid, gid); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(run, "blog.1")
		plant(dir)
		if err := Seal(run, "blog.1", "app.sock", gid); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(dir)
		if fi.Mode().Perm() != LockedMode || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("sealed directory: %v owner %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
		}
		if _, err := os.Lstat(filepath.Join(dir, "app.sock")); !os.IsNotExist(err) {
			t.Errorf("something left at the socket's name: %v", err)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
			t.Errorf("the link's target was touched: %q %v", b, err)
		}
	}
	if err := Seal(run, "gone", "app.sock", gid); err != nil {
		t.Errorf("a directory removed with its instance: %v", err)
	}
}
