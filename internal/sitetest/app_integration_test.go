package sitetest

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestIntegration_NotesApp checks the harness and the test app on one
// node of its own (no site): the app starts with its own PostgreSQL,
// update_fetch makes its table, a POST adds a row that a GET reads, the
// app names its node, and the fail-on marker keeps it from starting on
// the node it names. TestIntegration_Site relies on all of that.
func TestIntegration_NotesApp(t *testing.T) {
	e := newEnv(t)
	n := e.createNode("notes")
	e.ok("setup-node", n.name)
	const host = "notes.test"
	e.ok("update", writeApp(t, "1", ""), host, "--node", n.name)

	code, body, err := httpDo(http.MethodPost, n.addr, host, "/", "note=first")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "Hello from "+n.name+", version 1") {
		t.Fatalf("POST: %d %v\n%s", code, err, body)
	}
	if m := helloRE.FindStringSubmatch(body); m == nil || m[1] != n.name {
		t.Errorf("the load's pattern does not find the node in %q", body)
	}
	code, body, err = httpDo(http.MethodPost, n.addr, host, "/", "field=value")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST as the load sends it: %d %v\n%s", code, err, body)
	}
	version, rows := rowsAt(t, n, host)
	if version != "1" || !slices.Equal(rows, []string{"first"}) {
		t.Errorf("/rows = version %q rows %q, want 1 [first] (load rows hidden)", version, rows)
	}

	code, out := e.run("update", writeApp(t, "2", n.name), host, "--node", n.name)
	if code == 0 {
		t.Fatalf("update of a version failing on %s succeeded:\n%s", n.name, out)
	}
	t.Logf("failed update, as it should:\n%s", out)
	if version, _ := rowsAt(t, n, host); version != "1" {
		t.Errorf("after the failed update the node serves version %q, want 1", version)
	}

	if !n.canConnect(t, "127.0.0.1", 5432) {
		t.Errorf("canConnect: the node's own PostgreSQL on 127.0.0.1:5432 is not reachable")
	}
	if n.canConnect(t, "127.0.0.1", 1) {
		t.Errorf("canConnect: port 1 is reachable")
	}
}
