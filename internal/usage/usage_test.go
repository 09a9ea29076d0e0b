package usage

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestWrap(t *testing.T) {
	cause := fmt.Errorf("read x: %w", fs.ErrNotExist)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("boom"), false},
		{"errorf", Errorf("bad %s", "flag"), true},
		{"wrapped", Wrap(cause), true},
		{"wrapped further", fmt.Errorf("create node: %w", Wrap(cause)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Is(tc.err); got != tc.want {
				t.Errorf("Is(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if Wrap(nil) != nil {
		t.Error("Wrap(nil) is not nil")
	}
	w := Wrap(cause)
	if !errors.Is(w, fs.ErrNotExist) || w.Error() != cause.Error() {
		t.Errorf("Wrap lost the cause: %v", w)
	}
	if again := Wrap(w); again != w {
		t.Errorf("Wrap of a usage error wrapped it again: %#v", again)
	}
}
