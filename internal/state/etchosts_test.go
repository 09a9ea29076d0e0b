package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// outside is a hosts file with the kinds of lines users have: odd spacing,
// tabs, comments, a CRLF line, a name toppcloud will also manage.
const outside = "127.0.0.1\tlocalhost\n" +
	"::1     localhost ip6-localhost ip6-loopback   # keep me\n" +
	"\n" +
	"# Rackspace alias set at some time:\n" +
	"192.168.1.5  web1   \r\n" +
	"  10.1.1.1 printer\n"

const (
	begin = HostsBlockBegin + "\n"
	end   = HostsBlockEnd + "\n"
)

func writeHosts(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readHosts(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type hostsOp struct {
	remove bool
	ip     string
	names  []string
}

func set(ip string, names ...string) hostsOp { return hostsOp{ip: ip, names: names} }
func remove(names ...string) hostsOp         { return hostsOp{remove: true, names: names} }

func (op hostsOp) apply(path string) (bool, error) {
	if op.remove {
		return RemoveHost(path, op.names...)
	}
	return SetHost(path, op.ip, op.names...)
}

func TestHosts_Edits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial string
		ops     []hostsOp
		want    string
	}{
		{
			name:    "add to file without block",
			initial: outside,
			ops:     []hostsOp{set("10.0.0.2", "web1.example.com", "app.example.com")},
			want:    outside + begin + "10.0.0.2\tapp.example.com web1.example.com\n" + end,
		},
		{
			name:    "empty file",
			initial: "",
			ops:     []hostsOp{set("10.0.0.2", "a")},
			want:    begin + "10.0.0.2\ta\n" + end,
		},
		{
			name:    "last line without newline",
			initial: "127.0.0.1 localhost",
			ops:     []hostsOp{set("10.0.0.2", "a")},
			want:    "127.0.0.1 localhost\n" + begin + "10.0.0.2\ta\n" + end,
		},
		{
			// The original stopped at the first name already in place.
			name:    "one name already right, the other still added",
			initial: outside + begin + "10.0.0.2\ta\n" + end,
			ops:     []hostsOp{set("10.0.0.2", "a", "b")},
			want:    outside + begin + "10.0.0.2\ta b\n" + end,
		},
		{
			name:    "name moves to a new address, others stay",
			initial: outside + begin + "10.0.0.2\ta b\n" + end,
			ops:     []hostsOp{set("10.0.0.3", "b")},
			want:    outside + begin + "10.0.0.2\ta\n10.0.0.3\tb\n" + end,
		},
		{
			name:    "lines sorted by address, names sorted",
			initial: "",
			ops:     []hostsOp{set("10.0.0.10", "z"), set("10.0.0.9", "y", "c"), set("10.0.0.9", "b"), set("2001:db8::1", "v6")},
			want:    begin + "10.0.0.9\tb c y\n10.0.0.10\tz\n2001:db8::1\tv6\n" + end,
		},
		{
			// The original dropped the whole line.
			name:    "remove one alias keeps the others",
			initial: outside + begin + "10.0.0.2\ta b c\n" + end,
			ops:     []hostsOp{remove("b")},
			want:    outside + begin + "10.0.0.2\ta c\n" + end,
		},
		{
			name:    "remove last name removes block",
			initial: outside + begin + "10.0.0.2\ta\n" + end,
			ops:     []hostsOp{remove("a")},
			want:    outside,
		},
		{
			name:    "block in the middle, content after kept",
			initial: "127.0.0.1 localhost\n" + begin + "10.0.0.2\ta\n" + end + "# after\n10.9.9.9 z\n",
			ops:     []hostsOp{set("10.0.0.3", "b"), remove("a")},
			want:    "127.0.0.1 localhost\n" + begin + "10.0.0.3\tb\n" + end + "# after\n10.9.9.9 z\n",
		},
		{
			name:    "remove everything from the middle",
			initial: "127.0.0.1 localhost\n" + begin + "10.0.0.2\ta\n" + end + "# after\n",
			ops:     []hostsOp{remove("a", "not-there")},
			want:    "127.0.0.1 localhost\n# after\n",
		},
		{
			name:    "names outside the block are never touched",
			initial: outside,
			ops:     []hostsOp{set("10.0.0.7", "web1"), remove("web1", "printer", "localhost")},
			want:    outside,
		},
		{
			name:    "hand-written block is normalized",
			initial: begin + "  10.0.0.2   b a # note\n\n10.0.0.2 c\n" + end,
			ops:     []hostsOp{set("10.0.0.2", "d")},
			want:    begin + "10.0.0.2\ta b c d\n" + end,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeHosts(t, tc.initial)
			for _, op := range tc.ops {
				if _, err := op.apply(path); err != nil {
					t.Fatal(err)
				}
			}
			if got := readHosts(t, path); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
			// Every operation is idempotent: repeating them changes nothing.
			for _, op := range tc.ops[len(tc.ops)-1:] {
				changed, err := op.apply(path)
				if err != nil || changed {
					t.Errorf("repeating %+v: changed=%v err=%v", op, changed, err)
				}
			}
			if got := readHosts(t, path); got != tc.want {
				t.Errorf("after repeat:\n%s", got)
			}
		})
	}
}

func TestHosts_UnchangedFileNotRewritten(t *testing.T) {
	path := writeHosts(t, outside+begin+"10.0.0.2\ta\n"+end)
	before, _ := os.Stat(path)
	changed, err := SetHost(path, "10.0.0.2", "a")
	if err != nil || changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("file was replaced although nothing changed")
	}
}

func TestHosts_Entries(t *testing.T) {
	path := writeHosts(t, outside)
	if es, err := HostsEntries(path); err != nil || len(es) != 0 {
		t.Fatalf("no block: %v, %v", es, err)
	}
	if _, err := SetHost(path, "10.0.0.2", "b", "a"); err != nil {
		t.Fatal(err)
	}
	es, err := HostsEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].IP != "10.0.0.2" || !slices.Equal(es[0].Names, []string{"a", "b"}) {
		t.Errorf("entries = %+v", es)
	}
}

func TestHosts_KeepsMode(t *testing.T) {
	path := writeHosts(t, outside)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := SetHost(path, "10.0.0.2", "a"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
}

func TestHosts_BadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial string
		op      hostsOp
		msg     string
	}{
		{"bad ip", "", set("10.0.0", "a"), "not an IP address"},
		{"no names", "", set("10.0.0.1"), "no host names"},
		{"space in name", "", set("10.0.0.1", "a b"), "invalid host name"},
		{"hash in name", "", remove("a#b"), "invalid host name"},
		{"unterminated block", begin + "10.0.0.1 a\n", set("10.0.0.1", "b"), "no \"# END toppcloud\" line"},
		{"two blocks", begin + end + begin + end, set("10.0.0.1", "b"), "second toppcloud block"},
		{"end without begin", end, set("10.0.0.1", "b"), "without a matching"},
		{"garbage in block", begin + "hello a\n" + end, remove("a"), "inside the toppcloud block"},
		{"address without names", begin + "10.0.0.1\n" + end, remove("a"), "has no names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeHosts(t, tc.initial)
			_, err := tc.op.apply(path)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.msg)
			}
			if got := readHosts(t, path); got != tc.initial {
				t.Errorf("file changed on error: %q", got)
			}
		})
	}
	if _, err := SetHost(filepath.Join(t.TempDir(), "missing"), "10.0.0.1", "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestHosts_BindMountFallback(t *testing.T) {
	path := writeHosts(t, outside)
	before, _ := os.Stat(path)
	ebusy := func(p string, _ []byte, _ fs.FileMode) error {
		return fmt.Errorf("write %s: %w", p, &os.LinkError{Op: "rename", Old: p + ".tmp", New: p, Err: syscall.EBUSY})
	}
	changed, err := editHosts(path, func(f *hostsFile) { f.set("10.0.0.2", []string{"a"}) }, ebusy)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	if got, want := readHosts(t, path), outside+begin+"10.0.0.2\ta\n"+end; got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("in-place fallback replaced the inode")
	}
	// Shrinking in place must truncate, not leave a tail of old bytes.
	if _, err := editHosts(path, func(f *hostsFile) { f.remove([]string{"a"}) }, ebusy); err != nil {
		t.Fatal(err)
	}
	if got := readHosts(t, path); got != outside {
		t.Errorf("after in-place removal:\n%q", got)
	}
}

func TestHosts_OtherWriteErrorKeepsFile(t *testing.T) {
	path := writeHosts(t, outside)
	boom := errors.New("boom")
	_, err := editHosts(path, func(f *hostsFile) { f.set("10.0.0.2", []string{"a"}) },
		func(string, []byte, fs.FileMode) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if got := readHosts(t, path); got != outside {
		t.Error("file changed")
	}
}

func TestHosts_Concurrent(t *testing.T) {
	path := writeHosts(t, outside)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := SetHost(path, fmt.Sprintf("10.0.0.%d", i%3+1), fmt.Sprintf("n%02d", i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	es, err := HostsEntries(path)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range es {
		total += len(e.Names)
	}
	if total != n {
		t.Errorf("%d names in block, want %d (lost updates): %+v", total, n, es)
	}
	if !strings.HasPrefix(readHosts(t, path), outside) {
		t.Error("lines outside the block changed")
	}
}
