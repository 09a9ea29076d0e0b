package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/backuparchive"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/service"
)

// testBackup writes a backup directory of app blog and returns it.
func testBackup(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "b")
	data := bytes.Repeat([]byte("PGDMP"), 10000)
	os.MkdirAll(filepath.Join(dir, "postgresql"), 0o700)
	p := filepath.Join(dir, "postgresql", "postgresql.pgdump")
	os.WriteFile(p, data, 0o600)
	size, sum, _ := service.SumFile(p)
	m := service.Manifest{Format: service.BackupFormat, Version: service.BackupVersion, App: "blog", Created: time.Now().UTC(),
		Services: []service.ServiceFiles{{Name: "postgresql", Files: []service.FileEntry{{Path: "postgresql/postgresql.pgdump", Size: size, SHA256: sum}}}}}
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, service.ManifestName), b, 0o600)
	return dir
}

func backupStreams(t *testing.T, n *agentNode, tarStream []byte) {
	res := protocol.BackupResult{App: "blog", Name: "backup-blog-x", Bytes: int64(len(tarStream)), Services: []protocol.BackupPart{{Service: "postgresql", Files: 1, Bytes: 50000}}}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.streams[protocol.OpBackup] = stream(t, nil, res, nil)
	n.streams[protocol.OpBackupFetch] = stream(t, nil, res, nil) + string(tarStream)
	n.streams[protocol.OpBackupDelete] = stream(t, nil, nil, nil)
}

func TestBackup_DownloadsChecksAndRemovesTheNodesCopy(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	src := testBackup(t)
	var tarStream bytes.Buffer
	if err := backuparchive.WriteDir(&tarStream, src); err != nil {
		t.Fatal(err)
	}
	backupStreams(t, n, tarStream.Bytes())
	out := t.TempDir()
	for _, dest := range []string{filepath.Join(out, "dir"), filepath.Join(out, "b.tar.gz")} {
		delete(n.reqs, protocol.OpBackupDelete)
		code, stdout, stderr := n.run("backup", "web1/blog", dest)
		if code != ExitOK {
			t.Fatalf("backup to %s: exit %d\n%s", dest, code, stderr)
		}
		if stdout != dest+"\n" || !strings.Contains(stderr, "every file checked") {
			t.Errorf("stdout %q\n%s", stdout, stderr)
		}
		l, err := backuparchive.OpenLocal(dest)
		if err != nil || l.Manifest.App != "blog" {
			t.Errorf("downloaded backup: %v", err)
		}
		if !strings.Contains(n.reqs[protocol.OpBackupDelete], `"name":"backup-blog-x"`) {
			t.Errorf("the node's copy was not removed: %q", n.reqs[protocol.OpBackupDelete])
		}
	}
	if !strings.Contains(n.reqs[protocol.OpBackup], `"location":"web1/blog/"`) {
		t.Errorf("backup request %s", n.reqs[protocol.OpBackup])
	}

	// Damaged in transit: refused, nothing left here, the node keeps its
	// copy.
	bad := bytes.Clone(tarStream.Bytes())
	bad[len(bad)/2] ^= 0xff
	backupStreams(t, n, bad)
	delete(n.reqs, protocol.OpBackupDelete)
	dest := filepath.Join(out, "damaged")
	code, _, stderr := n.run("backup", "web1/blog", dest)
	if code != ExitFailed || !strings.Contains(stderr, "sha256") || !strings.Contains(stderr, "stays on web1 as remote:backup-blog-x") {
		t.Errorf("damaged: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("a damaged backup was saved")
	}
	if _, ok := n.reqs[protocol.OpBackupDelete]; ok {
		t.Error("the node's copy was removed after a failed download")
	}

	// remote:NAME stays on the node.
	code, stdout, _ := n.run("backup", "web1/blog", "remote:nightly")
	if code != ExitOK || stdout != "remote:backup-blog-x\n" || !strings.Contains(n.reqs[protocol.OpBackup], `"name":"nightly"`) {
		t.Errorf("remote: exit %d %q %s", code, stdout, n.reqs[protocol.OpBackup])
	}
}

func TestRestore_SendsACheckedBackup(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	n.mu.Lock()
	n.streams[protocol.OpServicesRestore] = stream(t, nil, protocol.ServicesRestoreResult{App: "blog", Services: []string{"postgresql"}, Bytes: 50000}, nil)
	n.mu.Unlock()
	src := testBackup(t)
	before := len(n.srv.Execs())

	// Damaged here: refused before connecting.
	bad := filepath.Join(t.TempDir(), "bad")
	os.CopyFS(bad, os.DirFS(src))
	os.WriteFile(filepath.Join(bad, "postgresql", "postgresql.pgdump"), []byte("short"), 0o600)
	code, _, stderr := n.run("-y", "restore", bad, "web1/blog")
	if code != ExitUsage || !strings.Contains(stderr, "truncated or damaged") {
		t.Errorf("damaged: exit %d\n%s", code, stderr)
	}
	if len(n.srv.Execs()) != before {
		t.Error("a damaged backup reached the node")
	}

	code, _, stderr = n.run("-y", "restore", src, "web1/blog")
	if code != ExitOK || !strings.Contains(stderr, "restored blog at web1/blog/") {
		t.Fatalf("restore: exit %d\n%s", code, stderr)
	}
	m, err := backuparchive.Check(bytes.NewReader(n.inputs[protocol.OpServicesRestore]))
	if err != nil || m.App != "blog" {
		t.Errorf("the uploaded stream: %v", err)
	}
	code, _, _ = n.run("-y", "restore", "remote:nightly", "web1/blog")
	if code != ExitOK || !strings.Contains(n.reqs[protocol.OpServicesRestore], `"name":"nightly"`) || len(n.inputs[protocol.OpServicesRestore]) != 0 {
		t.Errorf("remote: exit %d, %s", code, n.reqs[protocol.OpServicesRestore])
	}
}

func TestClear_CallsTheAgent(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	var b strings.Builder
	w := protocol.NewWriter(&b)
	w.Log(protocol.StreamApp, "Operations to perform: migrate")
	w.OK(protocol.ClearResult{App: "blog", Instance: "blog.1", Services: []string{"postgresql", "files"}})
	n.mu.Lock()
	n.streams[protocol.OpClear] = b.String()
	n.mu.Unlock()
	code, _, stderr := n.run("-y", "clear", "web1/blog")
	if code != ExitOK || !strings.Contains(stderr, "  | Operations to perform") || !strings.Contains(stderr, "cleared blog (postgresql, files)") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

func TestRun_PassesArgsAndStatus(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	n.runStatus = 3
	code, stdout, stderr := n.run("run", "web1/blog", "manage.py", "check", "--deploy", "-v", "2")
	if code != 3 || stdout != "script output\n" {
		t.Fatalf("exit %d %q\n%s", code, stdout, stderr)
	}
	var req protocol.Request
	var args protocol.RunArgs
	if err := json.Unmarshal([]byte(n.reqs[protocol.OpRun]), &req); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(req.Args, &args)
	if args.Location != "web1/blog/" || args.Script != "manage.py" || !reflect.DeepEqual(args.Args, []string{"check", "--deploy", "-v", "2"}) || args.Terminal {
		t.Errorf("args %+v", args)
	}
	n.runStatus = 0
	if code, _, stderr := n.run("run", "web1/blog", "true"); code != ExitOK {
		t.Errorf("exit %d %s", code, stderr)
	}
}

func TestParseRunArgs(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want runArgs
		bad  bool
	}{
		{in: []string{"web1", "manage.py", "shell"}, want: runArgs{location: "web1", script: "manage.py", args: []string{"shell"}}},
		{in: []string{"-i", "--node", "n1", "web1", "manage.py", "-i", "--node", "x"}, want: runArgs{interactive: true, node: "n1", location: "web1", script: "manage.py", args: []string{"-i", "--node", "x"}}},
		{in: []string{"web1", "--node=n2", "s"}, want: runArgs{node: "n2", location: "web1", script: "s"}},
		{in: []string{"web1", "--", "-weird", "a"}, want: runArgs{location: "web1", script: "-weird", args: []string{"a"}}},
		{in: []string{"web1"}, bad: true},
		{in: []string{"-x", "web1", "s"}, bad: true},
		{in: []string{"--node"}, bad: true},
	} {
		got, err := parseRunArgs(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
}

func TestUploadPlan(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "data.json")
	os.WriteFile(f, []byte("{}"), 0o644)
	p, err := planUploads([]string{"loaddata", f, "--settings=" + f, "--other=nothere", "plain"})
	if err != nil || len(p.files) != 1 {
		t.Fatalf("plan %v %v", p.files, err)
	}
	got := p.rewrite([]string{"loaddata", f, "--settings=" + f, "--other=nothere", "plain"}, "/tmp/up")
	want := []string{"loaddata", "/tmp/up/data.json", "--settings=/tmp/up/data.json", "--other=nothere", "plain"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rewrite %q", got)
	}
	var b bytes.Buffer
	if err := p.writeTar(&b); err != nil || !strings.Contains(b.String(), "data.json") {
		t.Errorf("tar: %v", err)
	}
}

// A script that forgot -y must not delete data: without a terminal the
// commands that replace or delete an app's data refuse before connecting.
func TestDataLoss_NeedsYesWithoutATerminal(t *testing.T) {
	n := newAgentNode(t)
	if code, _, stderr := n.run("create-node", "web1"); code != ExitOK {
		t.Fatalf("create: %s", stderr)
	}
	src := testBackup(t)
	before := len(n.srv.Execs())
	for _, args := range [][]string{
		{"clear", "web1/blog"},
		{"restore", src, "web1/blog"},
	} {
		code, _, stderr := n.run(args...)
		if code == ExitOK || !strings.Contains(stderr, "pass -y") || !strings.Contains(stderr, "nothing changed") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	if len(n.srv.Execs()) != before {
		t.Error("a command that was not confirmed reached the node")
	}
}
