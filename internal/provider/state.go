package provider

import "fmt"

// State is a node's state on the one scale every provider maps onto.
// Each driver documents how its provider's states map here.
type State int

// The states. The zero value is StateUnknown so that a driver that forgets
// to map a state says so instead of claiming "pending".
const (
	StateUnknown State = iota
	StatePending
	StateRunning
	StateStopped
	StateTerminated
	StateError
)

var stateNames = [...]string{
	StateUnknown:    "unknown",
	StatePending:    "pending",
	StateRunning:    "running",
	StateStopped:    "stopped",
	StateTerminated: "terminated",
	StateError:      "error",
}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return StateUnknown, fmt.Errorf("provider: unknown node state %q", s)
}

// MarshalText makes states read as words in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state written by MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
