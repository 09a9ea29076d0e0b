package provider

import (
	"encoding/json"
	"testing"
)

func TestState_TextRoundTrip(t *testing.T) {
	for s := StateUnknown; s <= StateError; s++ {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if back != s {
			t.Errorf("%v -> %s -> %v", s, b, back)
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("String of an out-of-range state = %q", got)
	}
	var s State
	if err := json.Unmarshal([]byte(`"sleeping"`), &s); err == nil {
		t.Error("unknown state name: want an error")
	}
	b, _ := json.Marshal(Node{ID: "1", State: StateRunning})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["state"] != "running" {
		t.Errorf("node JSON state = %v, want \"running\"", m["state"])
	}
}
