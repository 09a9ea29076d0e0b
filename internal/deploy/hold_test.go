package deploy

import (
	"context"
	"errors"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/agenttest"
	"github.com/toppcloud/toppcloud/internal/location"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
)

// liveAt is the instance serving loc on the node, through its query.
func liveAt(t *testing.T, node *agenttest.Loopback, loc string) string {
	t.Helper()
	var q protocol.QueryResult
	if err := node.Call(context.Background(), protocol.OpQuery, protocol.QueryArgs{}, &q, remote.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	want, _ := location.Parse(loc)
	for _, r := range q.Routes {
		if r.Location == want.String() {
			return r.Live
		}
	}
	return ""
}

// TestUpdate_Hold: with Hold, Update calls Held with the new instance
// before the switch and its answer decides, for every compression (the
// decision line follows the blob stream on the same input); a context
// that ends while Held decides aborts.
func TestUpdate_Hold(t *testing.T) {
	_, node := setUpNode(t)
	ctx := context.Background()
	dir := app(t, "[production]\napp_name = site\n", map[string]string{"static/index.html": "one"})
	first, _, err := Update(ctx, node, prepare(t, Options{AppDir: dir, Location: "site.test"}), UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live := first.Instance

	for i, c := range []Compression{CompressS2, CompressZstd, CompressNone} {
		write(t, dir, map[string]string{"static/index.html": "v" + string(rune('a'+i))})
		p := prepare(t, Options{AppDir: dir, Location: "site.test", Compress: c})
		for _, commit := range []bool{false, true} {
			var held string
			var uploaded bool
			res, up, err := Update(ctx, node, p, UpdateOptions{Hold: true, Uploaded: func(UploadStats) { uploaded = true }, Held: func(inst string) bool {
				held = inst
				if got := liveAt(t, node, "site.test"); got != live {
					t.Errorf("%s: while held %s serves, want %s", c, got, live)
				}
				return commit
			}})
			// The abort's upload stays in the node's store: the commit
			// sends nothing.
			if (up.Blobs > 0) == commit || !uploaded || held == "" || held == live {
				t.Fatalf("%s commit %v: sent %+v, uploaded %v, held %q", c, commit, up, uploaded, held)
			}
			if !commit {
				var oe *remote.OpError
				if !errors.As(err, &oe) || oe.Err.Code != protocol.CodeAborted {
					t.Fatalf("%s: aborted update: %v", c, err)
				}
				if got := liveAt(t, node, "site.test"); got != live {
					t.Errorf("%s: after the abort %s serves, want %s", c, got, live)
				}
				continue
			}
			if err != nil || res.Instance != held || res.Prev != live {
				t.Fatalf("%s: committed update: %+v, %v", c, res, err)
			}
			live = res.Instance
		}
	}

	// The context ends while Held decides: the node is told to abort.
	write(t, dir, map[string]string{"static/index.html": "cancelled"})
	cctx, cancel := context.WithCancel(ctx)
	release := make(chan struct{})
	defer close(release)
	_, _, err = Update(cctx, node, prepare(t, Options{AppDir: dir, Location: "site.test"}), UpdateOptions{Hold: true, Held: func(string) bool {
		cancel()
		<-release
		return true
	}})
	if err == nil {
		t.Fatal("a cancelled held update succeeded")
	}
	if got := liveAt(t, node, "site.test"); got != live {
		t.Errorf("after the cancel %s serves, want %s", got, live)
	}

	if _, _, err := Update(ctx, node, prepare(t, Options{AppDir: dir, Location: "site.test"}), UpdateOptions{Hold: true}); err == nil {
		t.Error("Hold without Held accepted")
	}
}
