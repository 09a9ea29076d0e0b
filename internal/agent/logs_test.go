package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestReadLogTail_HostileFiles: errors.log is the app's, and logs reads
// it as root. A symlink (to /dev/zero or a root-only file) and a FIFO are
// refused at once; a huge sparse file costs only its tail.
func TestReadLogTail_HostileFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "root-only")
	os.WriteFile(secret, []byte("root's secret\n"), 0o600)
	cases := map[string]func(p string) error{
		"symlink to a root-only file": func(p string) error { return os.Symlink(secret, p) },
		"symlink to /dev/zero":        func(p string) error { return os.Symlink("/dev/zero", p) },
		"fifo":                        func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"directory":                   func(p string) error { return os.Mkdir(p, 0o755) },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), ErrorsLog)
			if err := mk(p); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, _, err = readLogTail(p, maxLogTail)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("reading the log blocked")
			}
			if err == nil || len(data) > 0 {
				t.Errorf("read %q, err %v; want it refused", data, err)
			}
		})
	}
	t.Run("sparse terabyte", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), ErrorsLog)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(1 << 40); err != nil {
			t.Skipf("no sparse files here: %v", err)
		}
		f.WriteAt([]byte("\nlast line\n"), 1<<40)
		f.Close()
		data, end, err := readLogTail(p, maxLogTail)
		if err != nil || int64(len(data)) > maxLogTail || !strings.HasSuffix(string(data), "last line\n") || end != 1<<40+11 {
			t.Errorf("read %d bytes ending %q to %d: %v", len(data), data[max(0, len(data)-20):], end, err)
		}
	})
}

// TestFollowFile_LongLinesInPieces: a line that never ends is sent in
// pieces of at most maxLogLine bytes instead of growing in memory.
func TestFollowFile_LongLinesInPieces(t *testing.T) {
	p := filepath.Join(t.TempDir(), ErrorsLog)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		followFile(ctx, p, 0, func(l string) {
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
		})
	}()
	f.Write([]byte(strings.Repeat("x", 3*maxLogLine+10)))
	f.Write([]byte("\nshort\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	total := 0
	for _, l := range lines {
		if len(l) > maxLogLine {
			t.Errorf("a line of %d bytes was sent", len(l))
		}
		total += len(l)
	}
	if len(lines) != 5 || lines[4] != "short" || total != 3*maxLogLine+10+5 {
		t.Errorf("%d lines, %d bytes, last %q", len(lines), total, lines[len(lines)-1])
	}
}
