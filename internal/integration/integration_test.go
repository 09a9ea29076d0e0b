package integration

import (
	"strings"
	"testing"
)

func TestUnavailable(t *testing.T) {
	tests := []struct {
		env  string
		root bool
		want string // substring of the reason; "" for none
	}{
		{"", false, Env + "=1"},
		{"0", true, Env + "=1"},
		{"1", false, ""},
	}
	for _, tt := range tests {
		t.Setenv(Env, tt.env)
		got := Unavailable(tt.root)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s=%q root=%v: Unavailable = %q, want containing %q", Env, tt.env, tt.root, got, tt.want)
		}
	}
}
