package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

// Output is how commands talk to people and scripts. Results (tables,
// JSON) go to Stdout; progress, warnings and errors go to Stderr, so that
// `toppcloud list-nodes --json | jq` never sees a progress line.
type Output struct {
	Stdout io.Writer
	Stderr io.Writer
	// Verbose is the number of -v flags; Quiet silences progress.
	Verbose int
	Quiet   bool
	// Live is true when Stderr is a terminal: steps then update one line
	// in place instead of printing a line per update.
	Live  bool
	start time.Time
	mu    sync.Mutex
	// liveLine is the text currently shown on the live line, if any.
	liveLine string
}

func newOutput(stdout, stderr io.Writer) *Output {
	o := &Output{Stdout: stdout, Stderr: stderr, start: time.Now()}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		o.Live = true
	}
	return o
}

func (o *Output) elapsed() string {
	return fmt.Sprintf("[%5.1fs]", time.Since(o.start).Seconds())
}

// clearLive erases the live line; callers hold mu.
func (o *Output) clearLive() {
	if o.liveLine != "" {
		fmt.Fprint(o.Stderr, "\r\033[K")
		o.liveLine = ""
	}
}

// Printf prints a progress or information line to Stderr unless -q.
func (o *Output) Printf(format string, args ...any) {
	if o.Quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLive()
	fmt.Fprintf(o.Stderr, format+"\n", args...)
}

// Debugf prints only with -v.
func (o *Output) Debugf(format string, args ...any) {
	if o.Verbose > 0 {
		o.Printf(format, args...)
	}
}

// Warnf prints a warning even with -q.
func (o *Output) Warnf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLive()
	fmt.Fprintf(o.Stderr, "warning: "+format+"\n", args...)
}

// Step is one named piece of a long operation. It prints a line when it
// starts and one when it ends, both with the time since the command began.
type Step struct {
	o     *Output
	name  string
	begin time.Time
	ended bool
}

// Step starts a step.
func (o *Output) Step(format string, args ...any) *Step {
	s := &Step{o: o, name: fmt.Sprintf(format, args...), begin: time.Now()}
	if !o.Quiet {
		o.mu.Lock()
		o.clearLive()
		if o.Live {
			o.liveLine = fmt.Sprintf("%s %s ...", o.elapsed(), s.name)
			fmt.Fprint(o.Stderr, o.liveLine)
		} else {
			fmt.Fprintf(o.Stderr, "%s %s ...\n", o.elapsed(), s.name)
		}
		o.mu.Unlock()
	}
	return s
}

// Update shows what the step is doing now: in place on a terminal, as a
// line only with -v otherwise.
func (s *Step) Update(format string, args ...any) {
	o := s.o
	if o.Quiet || s.ended {
		return
	}
	detail := fmt.Sprintf(format, args...)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Live {
		line := fmt.Sprintf("%s %s ... %s", o.elapsed(), s.name, detail)
		if w, _, err := term.GetSize(int(o.Stderr.(*os.File).Fd())); err == nil && w > 4 && len(line) >= w {
			line = line[:w-4] + "..."
		}
		fmt.Fprint(o.Stderr, "\r\033[K"+line)
		o.liveLine = line
		return
	}
	if o.Verbose > 0 {
		fmt.Fprintf(o.Stderr, "%s   %s\n", o.elapsed(), detail)
	}
}

// Done ends the step successfully, with an optional short result.
func (s *Step) Done(format string, args ...any) {
	s.end("done", fmt.Sprintf(format, args...))
}

// Fail ends the step with an error (the error itself is printed once, by
// Main, when the command returns it).
func (s *Step) Fail() { s.end("failed", "") }

func (s *Step) end(status, detail string) {
	o := s.o
	if s.ended {
		return
	}
	s.ended = true
	if o.Quiet && status == "done" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLive()
	msg := fmt.Sprintf("%s %s: %s", o.elapsed(), s.name, status)
	if detail != "" {
		msg += " (" + detail + ")"
	}
	msg += fmt.Sprintf(" in %.1fs", time.Since(s.begin).Seconds())
	fmt.Fprintln(o.Stderr, msg)
}

// JSON writes v to Stdout as indented JSON.
func (o *Output) JSON(v any) error {
	enc := json.NewEncoder(o.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table writes rows to Stdout in aligned columns under a header.
func (o *Output) Table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// Cells hold what providers and nodes say.
			cells[i] = Printable(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}
