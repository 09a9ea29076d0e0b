package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestWriteFile_CreatesWithPerm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteFile(path, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "hello" {
		t.Fatalf("content = %q, %v", got, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestWriteFile_KeepsExistingMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o604 {
		t.Errorf("mode = %v, want 0604 kept", fi.Mode().Perm())
	}
}

func TestWriteFile_FailedRenameKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("rename failed")
	err := write(path, []byte("new content"), Options{Perm: 0o600, KeepAttrs: true}, func(string, string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping %v", err, boom)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "old content" {
		t.Errorf("content = %q, want old content intact", got)
	}
	assertNoTemp(t, dir)
}

func TestWriteFile_ThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link was replaced: %v %v", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(real); string(got) != "new" {
		t.Errorf("target content = %q, want new", got)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// increment is a read-modify-write of a counter file under Lock: without
// the lock, concurrent increments get lost.
func increment(path string, lock func(string) (func() error, error)) error {
	unlock, err := lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return WriteFile(path, []byte(strconv.Itoa(n+1)), 0o600)
}

func TestLock_Goroutines(t *testing.T) {
	for _, tc := range []struct {
		name string
		lock func(string) (func() error, error)
	}{
		{"Lock", Lock},
		{"LockExisting", LockExisting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "counter")
			if err := os.WriteFile(path, []byte("0"), 0o600); err != nil {
				t.Fatal(err)
			}
			const n = 40
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() { errs <- increment(path, tc.lock) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(n) {
				t.Errorf("counter = %s, want %d (lost updates)", b, n)
			}
		})
	}
}

// TestLock_Processes runs increments from several processes (this test
// binary re-executed) at once.
func TestLock_Processes(t *testing.T) {
	if os.Getenv("ATOMICFILE_HELPER") != "" {
		t.Skip("helper process")
	}
	path := filepath.Join(t.TempDir(), "counter")
	const procs, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
			cmd.Env = append(os.Environ(), "ATOMICFILE_HELPER="+path, "ATOMICFILE_EACH="+strconv.Itoa(each))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(procs*each) {
		t.Errorf("counter = %s, want %d (lost updates)", b, procs*each)
	}
}

func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv("ATOMICFILE_HELPER")
	if path == "" {
		t.Skip("only run by TestLock_Processes")
	}
	n, _ := strconv.Atoi(os.Getenv("ATOMICFILE_EACH"))
	for range n {
		if err := increment(path, Lock); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrite_Exclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Write(path, []byte("first"), Options{Perm: 0o600, Exclusive: true}); err != nil {
		t.Fatalf("first exclusive write: %v", err)
	}
	err := Write(path, []byte("second"), Options{Perm: 0o600, Exclusive: true})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second exclusive write: err = %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("content = %q, want the first write kept", got)
	}
	assertNoTemp(t, dir)
}

func TestWrite_PermReplacesExistingMode(t *testing.T) {
	// Without KeepAttrs the caller's mode wins: ~/.toppcloud.conf is made
	// 0600 again even if it was 0644.
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), Options{Perm: 0o600}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestWrite_MkdirAllAndPrepare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "f")
	var prepared string
	err := Write(path, []byte("x"), Options{Perm: 0o644, MkdirAll: true, NoSync: true, Prepare: func(tmp string) error {
		b, err := os.ReadFile(tmp)
		prepared = string(b)
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if prepared != "x" {
		t.Errorf("Prepare saw %q, want the data already written", prepared)
	}
	boom := errors.New("prepare failed")
	err = Write(path, []byte("y"), Options{Perm: 0o644, Prepare: func(string) error { return boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "x" {
		t.Errorf("content = %q after a failed Prepare, want the old file", got)
	}
	assertNoTemp(t, filepath.Dir(path))
}
