package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/deploy/manifest"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
)

func manifestOf(t *testing.T, dir string) []byte {
	t.Helper()
	m, _, err := manifest.Build(context.Background(), dir, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := wire.WriteManifest(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDiff: the diff op sends the paths that differ and the instance's
// content of the files among them, and nothing for what is the same.
func TestDiff(t *testing.T) {
	n := setUpNode(t)
	dir := writeApp(t, map[string]string{
		"app.ini":           "[production]\napp_name = site\n",
		"static/index.html": "<p>one</p>\n",
		"static/same.css":   "body{}\n",
		"static/gone.txt":   "only deployed\n",
		"static/img.bin":    "\x00\x01binary",
	})
	v1 := n.update(t, plan(t, "site", "site.test", dir))

	run := func(args protocol.DiffArgs, local string) (protocol.DiffResult, map[string]protocol.DiffFile) {
		t.Helper()
		cr := agenttest.Run(t, n.agent, protocol.OpDiff, agenttest.Request(protocol.OpDiff), args, manifestOf(t, local))
		var res protocol.DiffResult
		ok(t, cr, &res)
		files := map[string]protocol.DiffFile{}
		for _, l := range cr.Logs {
			if l.Stream == protocol.StreamDiffFile {
				var f protocol.DiffFile
				if err := json.Unmarshal([]byte(l.Text), &f); err != nil {
					t.Fatal(err)
				}
				files[f.Path] = f
			}
		}
		return res, files
	}

	res, files := run(protocol.DiffArgs{Location: "site.test"}, dir)
	if res.Instance != v1.Instance || res.App != "site" || len(res.Differ) != 0 || len(files) != 0 || res.Same != 6 {
		t.Fatalf("same directory: %+v %v", res, files)
	}

	for p, c := range map[string]string{"static/index.html": "<p>two</p>\n", "static/new.txt": "new\n", "static/img.bin": "\x00\x02"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, "static/gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "static/same.css"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, files = run(protocol.DiffArgs{Instance: v1.Instance}, dir)
	var got []string
	for _, d := range res.Differ {
		got = append(got, d.Path+":"+d.Type)
	}
	want := "static/gone.txt:file static/img.bin:file static/index.html:file static/new.txt: static/same.css:file"
	if strings.Join(got, " ") != want {
		t.Errorf("Differ = %v\nwant     %s", got, want)
	}
	if f := files["static/index.html"]; string(f.Data) != "<p>one</p>\n" {
		t.Errorf("index.html = %+v", f)
	}
	if f := files["static/gone.txt"]; string(f.Data) != "only deployed\n" {
		t.Errorf("gone.txt = %+v", f)
	}
	if f := files["static/img.bin"]; f.Omitted != "binary" || f.Data != nil {
		t.Errorf("img.bin = %+v", f)
	}
	if _, sent := files["static/same.css"]; sent {
		t.Error("a file whose mode alone differs was sent")
	}
	if len(files) != 3 {
		t.Errorf("files sent: %v", files)
	}

	for _, tc := range []struct {
		args protocol.DiffArgs
		code string
	}{
		{protocol.DiffArgs{Location: "other.test"}, protocol.CodeNotFound},
		{protocol.DiffArgs{Instance: "site.1999-01-01_001"}, protocol.CodeNotFound},
		{protocol.DiffArgs{Instance: "../etc"}, protocol.CodeBadRequest},
		{protocol.DiffArgs{}, protocol.CodeBadRequest},
	} {
		e := failed(t, agenttest.Run(t, n.agent, protocol.OpDiff, agenttest.Request(protocol.OpDiff), tc.args, manifestOf(t, dir)))
		if e.Code != tc.code {
			t.Errorf("%+v: %+v, want %s", tc.args, e, tc.code)
		}
	}
	if e := failed(t, agenttest.Run(t, n.agent, protocol.OpDiff, agenttest.Request(protocol.OpDiff), protocol.DiffArgs{Location: "site.test"}, []byte("garbage"))); e.Code != protocol.CodeBadRequest {
		t.Errorf("garbage manifest: %+v", e)
	}
}
