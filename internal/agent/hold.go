package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// holdWait bounds how long a held update waits for the client's decision:
// a site's other nodes may take their time to be ready, but a client that
// vanished must not keep the new instance and the app's lock for ever.
var holdWait = 30 * time.Minute

// maxHoldLine bounds the HoldDecision line.
const maxHoldLine = 4 << 10

// hold is the last step before the switch of a held update: everything
// else is done; the client decides whether to switch.
func (d *deployRun) hold(ctx context.Context, st *protocol.Step) (string, error) {
	return d.holdFor(ctx, st, d.target)
}

// holdFor replies UpdateHeld naming inst and reads the client's
// HoldDecision. Anything but a commit is an error with CodeAborted, which
// makes the run undo what it did: the live instance stays.
func (d *deployRun) holdFor(ctx context.Context, st *protocol.Step, inst string) (string, error) {
	if err := d.c.Out.Reply(protocol.UpdateHeld{Instance: inst}); err != nil {
		return "", fmt.Errorf("reply: %w", err)
	}
	st.Progress("waiting for the client's decision on " + inst)
	dec, err := readHoldDecision(ctx, d.c.Input, holdWait)
	if err != nil {
		return "", &protocol.Error{Code: protocol.CodeAborted, Message: fmt.Sprintf("held update of %s not committed (%v): %s", d.app, err, d.abortNote(inst))}
	}
	if !dec.Commit {
		return "", &protocol.Error{Code: protocol.CodeAborted, Message: fmt.Sprintf("held update of %s aborted by the client: %s", d.app, d.abortNote(inst))}
	}
	return "committed", nil
}

// abortNote says what an abort leaves.
func (d *deployRun) abortNote(inst string) string {
	if inst != d.target {
		return inst + " keeps serving"
	}
	return inst + " is removed and the live version keeps serving"
}

// readHoldDecision reads one HoldDecision line from in, waiting at most
// wait. The end of the input before a line, a line that is not a
// decision, ctx ending or the time running out are errors.
func readHoldDecision(ctx context.Context, in io.Reader, wait time.Duration) (protocol.HoldDecision, error) {
	type result struct {
		dec protocol.HoldDecision
		err error
	}
	// The read cannot be interrupted: on a timeout its goroutine stays
	// blocked until the input ends, which the agent's exit brings about.
	done := make(chan result, 1)
	go func() {
		var r result
		r.dec, r.err = decodeHoldLine(in)
		done <- r
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.dec, r.err
	case <-ctx.Done():
		return protocol.HoldDecision{}, ctx.Err()
	case <-timer.C:
		return protocol.HoldDecision{}, fmt.Errorf("no decision within %s", wait)
	}
}

// decodeHoldLine reads one line of at most maxHoldLine bytes and decodes
// it. It reads byte by byte from a reader that is not buffered already,
// so that it takes nothing after the line.
func decodeHoldLine(in io.Reader) (protocol.HoldDecision, error) {
	var dec protocol.HoldDecision
	br, ok := in.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(oneByteReader{in}, 16)
	}
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return dec, errors.New("the input ended without a decision")
			}
			return dec, fmt.Errorf("read the decision: %w", err)
		}
		if b == '\n' {
			break
		}
		if len(line) >= maxHoldLine {
			return dec, fmt.Errorf("decision line longer than %d bytes", maxHoldLine)
		}
		line = append(line, b)
	}
	if err := json.Unmarshal(line, &dec); err != nil {
		return dec, fmt.Errorf("decode the decision: %w", err)
	}
	return dec, nil
}

// oneByteReader reads at most one byte at a time.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
