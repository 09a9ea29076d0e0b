// Package protocol defines the messages between the toppcloud client and
// the agent on a node. The client runs `toppcloud node OP` over SSH, writes
// one Request as a JSON line on its stdin (optionally followed by a binary
// stream the operation defines), and reads Messages back, one JSON object
// per line: events and log lines while the operation runs, then exactly one
// result.
//
// The types are versioned by version.Protocol; a field may be added
// without a version change only if old peers can ignore it.
package protocol

import (
	"encoding/json"
	"time"
)

// Request is the first line the client writes.
type Request struct {
	// Protocol is the client's version.Protocol.
	Protocol int `json:"protocol"`
	// Op repeats the operation named on the command line, so a request
	// sent to the wrong operation is refused instead of misread.
	Op string `json:"op"`
	// LocalUser is who ran the client, for release records and logs.
	LocalUser string `json:"local_user,omitempty"`
	// Verbose asks the agent for more log lines.
	Verbose int `json:"verbose,omitempty"`
	// Fingerprint, if set, is the agent binary the client expects (its
	// VersionInfo.Fingerprint): an agent that differs refuses the
	// operation with CodeAgentDiffers before reading anything after the
	// request line. It lets a client skip OpVersion before an operation
	// and check the agent only when the operation is refused. Agents of
	// protocol 1 ignore it, so a client sends it only with operations
	// they do not have.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Args are the operation's own arguments.
	Args json.RawMessage `json:"args,omitempty"`
}

// Message types.
const (
	TypeEvent  = "event"
	TypeLog    = "log"
	TypeResult = "result"
	// TypeReply is an answer the client needs before the operation can
	// go on (OpUpdate's UpdateNeed), while it still runs.
	TypeReply = "reply"
)

// Message is one line the agent writes.
type Message struct {
	Type   string  `json:"type"`
	Event  *Event  `json:"event,omitempty"`
	Log    *Log    `json:"log,omitempty"`
	Result *Result `json:"result,omitempty"`
	// Reply is the data of a TypeReply message.
	Reply json.RawMessage `json:"reply,omitempty"`
}

// Step statuses in events.
const (
	StepStart    = "start"
	StepProgress = "progress"
	StepDone     = "done"
	StepSkipped  = "skipped" // nothing to do: already in the wanted state
	StepFailed   = "failed"
)

// Event reports the progress of a named step.
type Event struct {
	Step   string `json:"step"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Changed is true on a done event when the step changed the node.
	Changed bool `json:"changed,omitempty"`
	// Elapsed is the step's duration so far, on done/failed/skipped events.
	Elapsed Duration `json:"elapsed,omitempty"`
}

// Log is a line of output the user should see: from a command the agent
// ran, or from the application (update_fetch, a failing start).
type Log struct {
	Stream string `json:"stream"` // one of the Stream* names
	Text   string `json:"text"`
}

// Result ends the stream.
type Result struct {
	OK    bool            `json:"ok"`
	Error *Error          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Error is a failed operation as the agent reports it.
type Error struct {
	// Code is a stable word for programs ("locked", "not_found",
	// "bad_request", "command_failed", "unhealthy", ...).
	Code    string `json:"code"`
	Message string `json:"message"`
	// Tail is the last lines of the output of the command or application
	// that failed, so the user sees the real cause.
	Tail []string `json:"tail,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Duration marshals as fractional seconds, which is what people and jq
// read easily.
type Duration time.Duration

// MarshalJSON writes seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Seconds())
}

// UnmarshalJSON reads seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*d = Duration(s * float64(time.Second))
	return nil
}

// VersionInfo is what `toppcloud node version` prints (a bare JSON object,
// not a message stream, so the client can call it before anything else).
type VersionInfo struct {
	Version     string `json:"version"`
	Protocol    int    `json:"protocol"`
	Fingerprint string `json:"fingerprint"`
	GOOS        string `json:"goos"`
	GOARCH      string `json:"goarch"`
}
