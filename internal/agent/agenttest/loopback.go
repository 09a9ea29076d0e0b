package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/remote"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Agent is what runs `toppcloud node OP`: *agent.Agent.
type Agent interface {
	Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// Loopback is a deploy.Caller that runs each operation on Agent in
// process, over pipes, as remote.Node runs it over SSH: the request line
// and the stream after it on stdin, the message stream on stdout.
type Loopback struct {
	Agent Agent
	// LocalUser and Verbose go into every request.
	LocalUser string
	Verbose   int
	// Fingerprint goes into CallCurrent's requests.
	Fingerprint string
}

// Call runs op. A failed operation is a *remote.OpError, as from a node.
func (l *Loopback) Call(ctx context.Context, op string, args any, result any, o remote.CallOptions) error {
	return l.call(ctx, op, "", args, result, o)
}

// CallCurrent runs op naming Fingerprint as the client's agent; the
// loopback has no agent to replace, so a refusal is returned.
func (l *Loopback) CallCurrent(ctx context.Context, op string, args any, result any, o remote.CallOptions) error {
	return l.call(ctx, op, l.Fingerprint, args, result, o)
}

func (l *Loopback) call(ctx context.Context, op, fingerprint string, args any, result any, o remote.CallOptions) error {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		code := l.Agent.Main(ctx, []string{op}, inR, outW, &stderr)
		// A program that exits closes its stdin and stdout.
		inR.CloseWithError(io.ErrClosedPipe)
		outW.Close()
		exited <- code
	}()
	sent := make(chan error, 1)
	replies := make(chan json.RawMessage, 8)
	go func() {
		req := protocol.Request{Protocol: version.Protocol, Op: op, LocalUser: l.LocalUser, Verbose: l.Verbose, Fingerprint: fingerprint}
		err := protocol.EncodeRequest(inW, req, args)
		switch {
		case err != nil:
		case o.Input != nil:
			err = o.Input(inW, replies)
		case o.Stream != nil:
			_, err = io.Copy(inW, o.Stream)
		}
		inW.Close()
		sent <- err
	}()
	res, err := protocol.Read(outR, protocol.Handler{Event: o.Event, Log: o.Log, Reply: func(r json.RawMessage) {
		select {
		case replies <- r:
		default:
		}
	}})
	close(replies)
	_, _ = io.Copy(io.Discard, outR)
	code := <-exited
	sendErr := <-sent
	switch {
	case err != nil:
		return fmt.Errorf("%s: the agent ended without a result (exit %d, %s): %w", op, code, bytes.TrimSpace(stderr.Bytes()), err)
	case !res.OK:
		pe := res.Error
		if pe == nil {
			pe = &protocol.Error{Code: protocol.CodeInternal, Message: "failed without a message"}
		}
		return &remote.OpError{Op: op, Node: "loopback", Err: pe}
	case sendErr != nil && (o.Stream != nil || o.Input != nil):
		return fmt.Errorf("%s: send input: %w", op, sendErr)
	}
	if result != nil && len(res.Data) > 0 {
		if err := json.Unmarshal(res.Data, result); err != nil {
			return fmt.Errorf("%s: decode result: %w", op, err)
		}
	}
	return nil
}

// Result is what one operation run through Run sent: its exit status,
// events, log lines and result.
type Result struct {
	Code   int
	Events []protocol.Event
	Logs   []protocol.Log
	Res    *protocol.Result
	// Err is an unreadable stream's.
	Err    error
	Stderr string
}

// Request is a request for op by alice@laptop.
func Request(op string) *protocol.Request {
	return &protocol.Request{Protocol: version.Protocol, Op: op, LocalUser: "alice@laptop"}
}

// Run runs op on a through Main with the request req (none when nil),
// its args, and stream after it, and collects what it sends.
func Run(t testing.TB, a Agent, op string, req *protocol.Request, args any, stream []byte) Result {
	t.Helper()
	var in bytes.Buffer
	if req != nil {
		if err := protocol.EncodeRequest(&in, *req, args); err != nil {
			t.Fatal(err)
		}
	}
	in.Write(stream)
	var out, errOut bytes.Buffer
	var r Result
	r.Code = a.Main(context.Background(), []string{op}, &in, &out, &errOut)
	r.Stderr = errOut.String()
	r.Res, r.Err = protocol.Read(&out, protocol.Handler{
		Event: func(e protocol.Event) { r.Events = append(r.Events, e) },
		Log:   func(l protocol.Log) { r.Logs = append(r.Logs, l) },
	})
	return r
}
