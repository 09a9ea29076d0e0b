package agent

import (
	"testing"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

func TestScriptStatus(t *testing.T) {
	for _, tc := range []struct {
		show     string
		fallback int
		want     int
	}{
		{"ExecMainCode=1\nExecMainStatus=7\n", 1, 7},
		{"ExecMainCode=2\nExecMainStatus=15\n", 1, 143},
		{"ExecMainCode=0\nExecMainStatus=0\n", 1, 1},
		{"", -1, protocol.ExitFailed},
	} {
		if got := scriptStatus(tc.show, tc.fallback); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.show, got, tc.want)
		}
	}
}
