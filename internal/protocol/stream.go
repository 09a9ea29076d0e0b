package protocol

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Writer is the agent's side of a message stream. It is safe for
// concurrent use (an operation may log from several goroutines).
type Writer struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

// NewWriter writes messages to w, one line each.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) send(m Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.New("protocol: message after result")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.w.Write(b)
	if m.Type == TypeResult {
		w.done = true
	}
	return err
}

// Event sends a step event.
func (w *Writer) Event(e Event) error { return w.send(Message{Type: TypeEvent, Event: &e}) }

// Log sends a log line.
func (w *Writer) Log(stream, text string) error {
	return w.send(Message{Type: TypeLog, Log: &Log{Stream: stream, Text: text}})
}

// OK sends a successful result with data marshalled as JSON (nil for none).
func (w *Writer) OK(data any) error {
	r := &Result{OK: true}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return w.Fail(&Error{Code: CodeInternal, Message: "marshal result: " + err.Error()})
		}
		r.Data = b
	}
	return w.send(Message{Type: TypeResult, Result: r})
}

// Reply sends data (marshalled as JSON) in a TypeReply message.
func (w *Writer) Reply(data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return w.send(Message{Type: TypeReply, Reply: b})
}

// Fail sends a failed result.
func (w *Writer) Fail(e *Error) error {
	return w.send(Message{Type: TypeResult, Result: &Result{OK: false, Error: e}})
}

// Done reports whether a result was sent.
func (w *Writer) Done() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done
}

// Step is a helper for the common start/done pattern of an event step.
type Step struct {
	w     *Writer
	name  string
	start time.Time
}

// Start sends a start event and returns the step.
func (w *Writer) Start(name string) *Step {
	_ = w.Event(Event{Step: name, Status: StepStart})
	return &Step{w: w, name: name, start: time.Now()}
}

// Progress sends a progress event.
func (s *Step) Progress(detail string) {
	_ = s.w.Event(Event{Step: s.name, Status: StepProgress, Detail: detail})
}

// Done ends the step; changed says whether the node was changed.
func (s *Step) Done(changed bool, detail string) {
	_ = s.w.Event(Event{Step: s.name, Status: StepDone, Changed: changed, Detail: detail, Elapsed: Duration(time.Since(s.start))})
}

// Skipped ends the step as having had nothing to do.
func (s *Step) Skipped(detail string) {
	_ = s.w.Event(Event{Step: s.name, Status: StepSkipped, Detail: detail, Elapsed: Duration(time.Since(s.start))})
}

// Failed ends the step as failed by err; the event's detail is err's
// first line (the whole error goes with the operation's result).
func (s *Step) Failed(err error) {
	detail, _, _ := strings.Cut(err.Error(), "\n")
	_ = s.w.Event(Event{Step: s.name, Status: StepFailed, Detail: detail, Elapsed: Duration(time.Since(s.start))})
}

// Handler receives the messages of a stream on the client side.
type Handler struct {
	Event func(Event)
	Log   func(Log)
	// Reply receives TypeReply messages; nil drops them.
	Reply func(json.RawMessage)
}

// MaxLine bounds one message line; longer lines are a protocol error rather
// than unbounded memory.
const MaxLine = 4 << 20

// Read reads messages from r until the result, calling h for events and
// logs, and returns the result. A stream that ends without a result is an
// error; so is a line that is not a message (the agent crashed or something
// else wrote to stdout). When r is a *bufio.Reader, Read takes nothing
// from it past the result's line, so an operation's binary output that
// follows its result (OpBackupFetch) can be read from it next.
func Read(r io.Reader, h Handler) (*Result, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64*1024)
	}
	for {
		line, err := readLine(br, MaxLine)
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("protocol: read: %w", err)
		}
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("protocol: unreadable line from agent: %q", truncate(string(line), 200))
		}
		switch m.Type {
		case TypeEvent:
			if m.Event != nil && h.Event != nil {
				h.Event(*m.Event)
			}
		case TypeLog:
			if m.Log != nil && h.Log != nil {
				h.Log(*m.Log)
			}
		case TypeReply:
			if h.Reply != nil {
				h.Reply(m.Reply)
			}
		case TypeResult:
			if m.Result == nil {
				return nil, errors.New("protocol: result message without a result")
			}
			return m.Result, nil
		default:
			return nil, fmt.Errorf("protocol: unknown message type %q", m.Type)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// EncodeRequest writes req as one JSON line with args marshalled from v.
func EncodeRequest(w io.Writer, req Request, args any) error {
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("protocol: marshal %s args: %w", req.Op, err)
		}
		req.Args = b
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// MaxRequestLine bounds a request line: requests are small JSON objects
// (the biggest, setup-node's, carries a few authorized keys).
const MaxRequestLine = 1 << 20

// readLine reads up to and including the next newline (or a last line
// without one), failing once the line passes max bytes instead of
// buffering whatever arrives.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("a line longer than %d bytes", max)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// DecodeRequest reads the first line of r as a Request for op and
// unmarshals its args into v (strictly: unknown fields are an error, so a
// newer client's request is not half understood). The returned reader
// continues after the request line, for operations that stream data.
func DecodeRequest(r io.Reader, op string, v any) (Request, *bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	line, err := readLine(br, MaxRequestLine)
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Request{}, br, fmt.Errorf("read request: %w", err)
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, br, fmt.Errorf("decode request: %w", err)
	}
	if req.Op != op {
		return req, br, fmt.Errorf("request is for operation %q, not %q", req.Op, op)
	}
	if v != nil && len(req.Args) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(req.Args)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return req, br, fmt.Errorf("decode %s args: %w", op, err)
		}
	}
	return req, br, nil
}
