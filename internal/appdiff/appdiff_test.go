package appdiff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// fakeAgent answers OpDiff as the agent would for an instance holding
// files (path -> content; "/" suffix for a directory), comparing with the
// manifest the client streams.
func fakeAgent(t *testing.T, files map[string]string) (Caller, *protocol.DiffArgs) {
	var got protocol.DiffArgs
	return func(ctx context.Context, op string, args, result any, o remote.CallOptions) error {
		if op != protocol.OpDiff {
			t.Fatalf("op %s", op)
		}
		got = args.(protocol.DiffArgs)
		data, _ := io.ReadAll(o.Stream)
		m, err := wire.ReadManifest(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		local := map[string]wire.Entry{}
		for _, e := range m.Entries {
			local[e.Path] = e
		}
		res := result.(*protocol.DiffResult)
		res.App, res.Instance = "blog", "blog.2024-01-01_001"
		for p, c := range files {
			if d, ok := strings.CutSuffix(p, "/"); ok {
				if l, ok := local[d]; ok && l.Type == wire.EntryDir {
					res.Same++
					delete(local, d)
					continue
				}
				delete(local, d)
				res.Differ = append(res.Differ, protocol.DiffEntry{Path: d, Type: "dir"})
				continue
			}
			h := wire.Hash{}
			copy(h[:], sha([]byte(c)))
			if l, ok := local[p]; ok && l.Hash == h {
				res.Same++
				delete(local, p)
				continue
			}
			delete(local, p)
			res.Differ = append(res.Differ, protocol.DiffEntry{Path: p, Type: "file", Hash: h, Size: int64(len(c))})
			f := protocol.DiffFile{Path: p, Data: []byte(c)}
			b, _ := json.Marshal(f)
			o.Log(protocol.Log{Stream: protocol.StreamDiffFile, Text: string(b)})
		}
		for p := range local {
			res.Differ = append(res.Differ, protocol.DiffEntry{Path: p})
		}
		return nil
	}, &got
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	for p, c := range map[string]string{
		"app.ini":          "[production]\napp_name = blog\n",
		"main.py":          "a\nb changed\nc\n",
		"new.py":           "new\n",
		"newdir/x.txt":     "x\n",
		".toppcloudignore": "*.log\n",
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	call, args := fakeAgent(t, map[string]string{
		"app.ini":          "[production]\napp_name = blog\n",
		".toppcloudignore": "*.log\n",
		"main.py":          "a\nb\nc\n",
		"old.py":           "old\n",
		"debug.log":        "now ignored here\n",
		"olddir/":          "",
	})
	var out bytes.Buffer
	res, err := Run(context.Background(), call, Options{Dir: dir, Location: "blog.example.com"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if args.Location != "blog.example.com" {
		t.Errorf("args %+v", args)
	}
	got := out.String()
	for _, want := range []string{
		"--- blog.2024-01-01_001/main.py\n+++ " + dir + "/main.py\n@@ -1,3 +1,3 @@\n a\n-b\n+b changed\n c\n",
		"--- blog.2024-01-01_001/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n",
		"--- /dev/null\n+++ " + dir + "/new.py\n@@ -0,0 +1 @@\n+new\n",
		"Only in blog.2024-01-01_001: olddir\n",
		"Only in " + dir + ": newdir\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks\n%s\nin\n%s", want, got)
		}
	}
	if strings.Contains(got, "debug.log") || strings.Contains(got, "newdir/x.txt") {
		t.Errorf("ignored file or the inside of a new directory shown:\n%s", got)
	}
	if res.Differ != 5 || res.Instance != "blog.2024-01-01_001" {
		t.Errorf("res = %+v", res)
	}
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
