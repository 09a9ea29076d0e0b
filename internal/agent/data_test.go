package agent

import (
	"testing"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

func TestScriptStatus(t *testing.T) {
	for _, tc := range []struct {
		show     map[string]string
		fallback int
		want     int
	}{
		{map[string]string{"ExecMainCode": "1", "ExecMainStatus": "7"}, 1, 7},
		{map[string]string{"ExecMainCode": "2", "ExecMainStatus": "15"}, 1, 143},
		{map[string]string{"ExecMainCode": "0", "ExecMainStatus": "0"}, 1, 1},
		{nil, -1, protocol.ExitFailed},
	} {
		if got := scriptStatus(tc.show, tc.fallback); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.show, got, tc.want)
		}
	}
}

// TestServiceNode: services lock and keep their node-wide state where the
// agent's layout says, tests' layouts included.
func TestServiceNode(t *testing.T) {
	a := newTestAgent(t)
	a.Layout.Locks, a.Layout.Services = "/elsewhere/locks", "/elsewhere/services"
	n := a.serviceNode(&Call{Agent: a})
	if n.Host != a.Host || n.LockDir != "/elsewhere/locks" || n.StateDir != "/elsewhere/services" {
		t.Errorf("service node %+v", n)
	}
}
