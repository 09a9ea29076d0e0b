// Package remote is the client side of the agent protocol: on an SSH
// connection to a node it checks the agent's version, installs the
// client's own binary when it differs, and runs operations, streaming
// their events and log lines to callbacks and returning their results.
//
//	n, err := remote.Open(ctx, sshClient, remote.Options{Binary: remote.LocalBinary(os.Getenv(remote.EnvAgentBinary))})
//	var res protocol.SetupResult
//	err = n.Call(ctx, protocol.OpSetup, args, &res, remote.CallOptions{Event: show})
//
// Who runs the agent follows from the login user:
//   - root runs it directly, and the binary is uploaded with a small
//     shell script (temporary name, checksum, rename);
//   - the deploy user (www-mgr) runs `sudo -n /usr/local/bin/toppcloud
//     node OP`, the only thing its sudo rule allows, and uploads through
//     the agent's own install-agent operation;
//   - any other user (setup-node --user) is a sudo user: the same with
//     sudo -n in front.
package remote

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/version"
)

// Conn is the SSH connection a Node runs on; *sshx.Client implements it.
type Conn interface {
	sshx.Runner
	Start(ctx context.Context, argv []string, stderr io.Writer) (*sshx.Session, error)
	User() string
	Addr() string
}

var _ Conn = (*sshx.Client)(nil)

// ErrNoAgent: the node has no agent and this connection cannot install
// one (the deploy user before setup-node, or Options.Binary unset).
var ErrNoAgent = errors.New("no toppcloud agent on the node")

// Options configure Open.
type Options struct {
	// Binary is installed when the node's agent differs from it. Nil
	// means check only: a different or missing agent is an error.
	Binary *Binary
	// AgentPath is where the agent lives; empty means protocol.AgentPath.
	AgentPath string
	// LocalUser and Verbose go into every request.
	LocalUser string
	Verbose   int
	// Progress hears what Open is doing ("uploading the agent (27 MB)").
	Progress func(string)
	// NoInstall makes a missing agent ErrNoAgent instead of installing
	// it (node-info on a node that was never set up); a different one is
	// still replaced.
	NoInstall bool
	// NoCompress sends the agent binary as it is, for a link known to be
	// faster than compressing (a node on this machine, measured by
	// bench/setupnode). Otherwise it is compressed at levels chosen for
	// the link as it goes (see compressAdaptive): zstd through an agent
	// of protocol 2 on, gzip where only an older agent or the node's
	// shell receives it.
	NoCompress bool
	// Checked, if set, hears how a check that CallCurrent had to make
	// ended (Uploaded tells whether it installed the agent).
	Checked func(*Node, error)
}

// Node is a node with an agent of the client's version.
type Node struct {
	conn     Conn
	opts     Options
	agent    protocol.VersionInfo
	uploaded bool
	// checked: the agent is known to be the client's (or, without a
	// Binary, to speak its protocol).
	checked bool
}

// Open checks the agent on conn and installs Options.Binary when the
// agent is missing or differs from it (by checksum, which covers version
// and protocol). After Open, Agent() is the client's own version.
func Open(ctx context.Context, conn Conn, opts Options) (*Node, error) {
	n := Deferred(conn, opts)
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Deferred returns a Node whose agent is checked only when CallCurrent
// needs it: the first CallCurrent names the client's agent in its
// request (protocol.Request.Fingerprint), and only if the node's agent
// refuses it (another version, none at all) does it check and replace
// the agent as Open does, then run the operation again. It saves the
// round trips of OpVersion on every command whose agent is current.
func Deferred(conn Conn, opts Options) *Node {
	if opts.AgentPath == "" {
		opts.AgentPath = protocol.AgentPath
	}
	return &Node{conn: conn, opts: opts}
}

func (n *Node) check(ctx context.Context) error {
	opts := n.opts
	n.progress("checking the agent")
	v, found, err := n.version(ctx)
	if err != nil {
		return err
	}
	if found && opts.Binary == nil {
		if v.Protocol != version.Protocol {
			return fmt.Errorf("%s: the agent speaks protocol %d, this client %d, and there is no binary to install", n.where(), v.Protocol, version.Protocol)
		}
		n.agent, n.checked = v, true
		return nil
	}
	if found {
		want, err := opts.Binary.SHA256()
		if err != nil {
			return err
		}
		if v.Fingerprint == want {
			n.agent, n.checked = v, true
			return nil
		}
	}
	if !found && (opts.Binary == nil || opts.NoInstall) {
		return fmt.Errorf("%s: %w at %s: run toppcloud setup-node first", n.where(), ErrNoAgent, opts.AgentPath)
	}
	if err := n.install(ctx, v, found); err != nil {
		return err
	}
	v, found, err = n.version(ctx)
	if err != nil {
		return err
	}
	want, _ := opts.Binary.SHA256()
	if !found || v.Fingerprint != want {
		return fmt.Errorf("%s: after installing the agent, %s still reports checksum %s (want %s)", n.where(), opts.AgentPath, shortSum(v.Fingerprint), shortSum(want))
	}
	n.agent, n.checked = v, true
	n.uploaded = true
	return nil
}

// CallCurrent is Call on a Node from Deferred: the operation is sent at
// once with the client's fingerprint, and the agent is checked (and
// replaced) only if it refuses, after which the operation runs again.
// The operation must be one that agents of protocol 1 do not have (they
// ignore the fingerprint), and its input must be an Input function,
// which may run twice. On a checked Node it is Call.
func (n *Node) CallCurrent(ctx context.Context, op string, args any, result any, o CallOptions) error {
	if !n.checked && n.opts.Binary != nil {
		want, err := n.opts.Binary.SHA256()
		if err != nil {
			return err
		}
		err = n.call(ctx, op, want, args, result, o)
		if !agentRefused(err) {
			if err == nil || isOpError(err) {
				// The agent ran it: it is the client's.
				n.agent = protocol.VersionInfo{Version: version.Version, Protocol: version.Protocol, Fingerprint: want}
				n.checked = true
			}
			return err
		}
	}
	if !n.checked {
		err := n.check(ctx)
		if n.opts.Checked != nil {
			n.opts.Checked(n, err)
		}
		if err != nil {
			return err
		}
	}
	return n.Call(ctx, op, args, result, o)
}

// errNotRun: the command ended without a message and failed, as sudo
// does when there is no agent at the path.
var errNotRun = errors.New("the agent did not run")

// agentRefused reports whether err says the operation was not run
// because the agent is not the client's.
func agentRefused(err error) bool {
	var oe *OpError
	if errors.As(err, &oe) {
		switch oe.Err.Code {
		case protocol.CodeAgentDiffers, protocol.CodeUnsupported, protocol.CodeProtocol:
			return true
		}
		return false
	}
	return errors.Is(err, errNotRun)
}

func isOpError(err error) bool {
	var oe *OpError
	return errors.As(err, &oe)
}

// Agent describes the node's agent.
func (n *Node) Agent() protocol.VersionInfo { return n.agent }

// Uploaded reports whether Open installed the agent.
func (n *Node) Uploaded() bool { return n.uploaded }

// Conn is the connection.
func (n *Node) Conn() Conn { return n.conn }

func (n *Node) progress(s string) {
	if n.opts.Progress != nil {
		n.opts.Progress(s)
	}
}

func (n *Node) where() string { return n.conn.User() + "@" + n.conn.Addr() }

// restricted reports whether the login user may only run the agent.
func (n *Node) restricted() bool { return n.conn.User() == protocol.DeployUser }

// argv is the command line that runs operation op as root.
func (n *Node) argv(op string) []string {
	argv := []string{n.opts.AgentPath, "node", op}
	if n.conn.User() != "root" {
		argv = append([]string{"sudo", "-n"}, argv...)
	}
	return argv
}

// version runs `toppcloud node version` as the login user (it needs no
// root). found is false when there is no agent at the path.
func (n *Node) version(ctx context.Context) (protocol.VersionInfo, bool, error) {
	out, err := sshx.Output(ctx, n.conn, []string{n.opts.AgentPath, "node", protocol.OpVersion}, nil)
	var ee *sshx.ExitError
	if errors.As(err, &ee) {
		// 127: not found; 126: not executable (a broken upload); a
		// binary that does not know "node version" is no agent of ours
		// either. All of these are replaced.
		return protocol.VersionInfo{}, false, nil
	}
	if err != nil {
		return protocol.VersionInfo{}, false, fmt.Errorf("check the agent on %s: %w", n.where(), err)
	}
	var v protocol.VersionInfo
	if err := json.Unmarshal(bytes.TrimSpace(out), &v); err != nil || v.Fingerprint == "" {
		return protocol.VersionInfo{}, false, nil
	}
	return v, true, nil
}

// nodeArch is the node's GOARCH: what its agent says, else uname -m.
func (n *Node) nodeArch(ctx context.Context, v protocol.VersionInfo, found bool) (string, error) {
	if found && v.GOARCH != "" {
		return v.GOARCH, nil
	}
	out, err := sshx.Output(ctx, n.conn, []string{"uname", "-m"}, nil)
	if err != nil {
		return "", fmt.Errorf("ask %s for its machine type: %w", n.where(), err)
	}
	return unameArch(strings.TrimSpace(string(out)))
}

func (n *Node) install(ctx context.Context, v protocol.VersionInfo, found bool) error {
	b := n.opts.Binary
	info, err := b.load()
	if err != nil {
		return err
	}
	arch, err := n.nodeArch(ctx, v, found)
	if err != nil {
		return err
	}
	if arch != info.goarch {
		return fmt.Errorf("the node %s is linux/%s but the agent binary %s is linux/%s: build one for the node (GOOS=linux GOARCH=%s go build -o toppcloud-linux-%s ./cmd/toppcloud) and set %s to its path",
			n.where(), arch, b.Path, info.goarch, arch, arch, EnvAgentBinary)
	}
	what := "installing the agent"
	if found {
		what = fmt.Sprintf("replacing the agent (%s, %s)", v.Version, shortSum(v.Fingerprint))
	}
	n.progress(fmt.Sprintf("%s: %s, %.1f MB", what, version.Version, float64(info.size)/1e6))
	if n.restricted() {
		if !found {
			return fmt.Errorf("%s: %w at %s, and %s cannot install one: run toppcloud setup-node first", n.where(), ErrNoAgent, n.opts.AgentPath, protocol.DeployUser)
		}
		return n.installThroughAgent(ctx, info, v)
	}
	if found && v.Protocol >= 2 {
		// The agent takes zstd, which the node's shell may not.
		return n.installThroughAgent(ctx, info, v)
	}
	return n.installWithScript(ctx, info)
}

// sendBinary runs send with the binary at path, compressed with encoding
// ("" for none), and reports what was sent.
func (n *Node) sendBinary(ctx context.Context, path, encoding string, send func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if encoding == "" {
		return send(f)
	}
	z, stats, err := compressAdaptive(ctx, f, encoding)
	if err != nil {
		return err
	}
	defer z.Close()
	if err := send(z); err != nil {
		return err
	}
	st := stats()
	n.progress(fmt.Sprintf("sent %.1f MB (%s, %.0f%% of %.1f MB, frames per level %v)", float64(st.Out)/1e6, encoding, 100*float64(st.Out)/float64(max(st.In, 1)), float64(st.In)/1e6, st.Levels))
	return nil
}

// uploadScript receives the agent on stdin (gzip-compressed when $3 is
// "gzip"), checks its checksum and renames it into place, so the path
// never holds a partial or wrong binary. It is a constant; the
// destination, the checksum and the encoding are positional parameters.
const uploadScript = `set -eu
dst=$1
want=$2
tmp="$dst.toppcloud-upload.$$"
trap 'rm -f -- "$tmp"' EXIT
mkdir -p -- "$(dirname -- "$dst")"
if [ "$3" = gzip ]; then gzip -dc > "$tmp"; else cat > "$tmp"; fi
got=$(sha256sum < "$tmp")
got=${got%% *}
if [ "$got" != "$want" ]; then echo "upload $dst: checksum mismatch (received $got, expected $want)" >&2; exit 1; fi
chmod 0755 "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$dst"
trap - EXIT`

// uploadArgv is the command that installs the agent at dst as the login
// user (root, or through sudo); encoding is "gzip" or "".
func uploadArgv(user, dst, sha256, encoding string) []string {
	argv := []string{"sh", "-c", uploadScript, "sh", dst, sha256, encoding}
	if user != "root" {
		argv = append([]string{"sudo", "-n"}, argv...)
	}
	return argv
}

func (n *Node) installWithScript(ctx context.Context, info binaryInfo) error {
	encoding := EncodingGzip
	if n.opts.NoCompress {
		encoding = ""
	}
	return n.sendBinary(ctx, n.opts.Binary.Path, encoding, func(z io.Reader) error {
		err := n.conn.Run(ctx, uploadArgv(n.conn.User(), n.opts.AgentPath, info.sha256, encoding), sshx.RunOptions{Stdin: z})
		if err != nil {
			return uploadError(n.where(), err)
		}
		return nil
	})
}

// installThroughAgent has the node's agent v replace itself.
func (n *Node) installThroughAgent(ctx context.Context, info binaryInfo, v protocol.VersionInfo) error {
	encoding := EncodingGzip
	switch {
	case n.opts.NoCompress:
		encoding = ""
	case v.Protocol >= 2:
		encoding = EncodingZstd
	}
	return n.sendBinary(ctx, n.opts.Binary.Path, encoding, func(z io.Reader) error {
		args := protocol.InstallAgentArgs{Size: info.size, SHA256: info.sha256, Encoding: encoding}
		var res protocol.InstallAgentResult
		if err := n.Call(ctx, protocol.OpInstallAgent, args, &res, CallOptions{Stream: z}); err != nil {
			return uploadError(n.where(), err)
		}
		return nil
	})
}

func uploadError(where string, err error) error {
	if strings.Contains(err.Error(), "No space left on device") {
		return fmt.Errorf("install the agent on %s: the node's disk is full (free space, then try again): %w", where, err)
	}
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeDiskFull {
		return fmt.Errorf("install the agent on %s: the node's disk is full (free space, then try again): %w", where, err)
	}
	return fmt.Errorf("install the agent on %s: %w", where, err)
}

// CallOptions are the callbacks and input of one operation.
type CallOptions struct {
	// Event and Log receive the stream as it arrives; nil drops it.
	Event func(protocol.Event)
	Log   func(protocol.Log)
	// Stream is sent after the request (install-agent's binary).
	Stream io.Reader
	// Input, if set, writes the operation's input after the request
	// instead of Stream, while the agent's messages are read: replies
	// receives the agent's TypeReply messages in order, and is closed
	// once the agent's stream ended (a refused or failed operation). It
	// returns once it has written everything; CallCurrent may run it
	// twice.
	Input func(w io.Writer, replies <-chan json.RawMessage) error
	// Output receives what the agent writes after a successful result
	// (OpBackupFetch's tar stream); nil discards it.
	Output io.Writer
}

// OpError is an operation the agent ran and reported failed.
type OpError struct {
	Op   string
	Node string // user@host
	Err  *protocol.Error
}

func (e *OpError) Error() string { return e.Err.Message }
func (e *OpError) Unwrap() error { return e.Err }

// Call runs operation op with args and decodes its result's data into
// result (a pointer, or nil to ignore it). A failure the agent reports is
// *OpError (wrapping *protocol.Error, with the failing command's output
// tail); a connection or protocol failure is another error.
func (n *Node) Call(ctx context.Context, op string, args any, result any, o CallOptions) error {
	return n.call(ctx, op, "", args, result, o)
}

// call is Call with the request's Fingerprint.
func (n *Node) call(ctx context.Context, op, fingerprint string, args any, result any, o CallOptions) error {
	sess, err := n.conn.Start(ctx, n.argv(op), nil)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", op, n.where(), err)
	}
	req := protocol.Request{Protocol: version.Protocol, Op: op, LocalUser: n.opts.LocalUser, Verbose: n.opts.Verbose, Fingerprint: fingerprint}
	replies := make(chan json.RawMessage, 8)
	var wg sync.WaitGroup
	var writeErr error
	wg.Go(func() {
		defer sess.Stdin.Close()
		if err := protocol.EncodeRequest(sess.Stdin, req, args); err != nil {
			writeErr = err
			return
		}
		switch {
		case o.Input != nil:
			writeErr = o.Input(sess.Stdin, replies)
		case o.Stream != nil:
			if _, err := io.Copy(sess.Stdin, o.Stream); err != nil {
				writeErr = err
			}
		}
	})
	h := protocol.Handler{
		Event: o.Event,
		Log:   o.Log,
		Reply: func(r json.RawMessage) {
			select {
			case replies <- r:
			default:
				// More replies than the operation has: Input reads
				// what it expects and the result says the rest.
			}
		},
	}
	stdout := &countingReader{r: sess.Stdout}
	br := bufio.NewReaderSize(stdout, 256<<10)
	res, readErr := protocol.Read(br, h)
	close(replies)
	var outErr error
	if readErr == nil && res.OK && o.Output != nil {
		if _, err := io.Copy(o.Output, br); err != nil {
			outErr = err
		}
	}
	// Drain whatever follows the result so the agent can exit.
	_, _ = io.Copy(io.Discard, br)
	waitErr := sess.Wait()
	wg.Wait()
	if readErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s on %s: %w", op, n.where(), ctx.Err())
		}
		var ee *sshx.ExitError
		if stdout.n == 0 && errors.As(waitErr, &ee) {
			// Nothing at all on stdout: sudo found no agent to run.
			return fmt.Errorf("%s on %s: %w (%v)", op, n.where(), errNotRun, waitErr)
		}
		if waitErr != nil {
			return fmt.Errorf("%s on %s: the agent ended without a result (%v): %w", op, n.where(), readErr, waitErr)
		}
		return fmt.Errorf("%s on %s: %w", op, n.where(), readErr)
	}
	if !res.OK {
		pe := res.Error
		if pe == nil {
			pe = &protocol.Error{Code: protocol.CodeInternal, Message: "failed without a message"}
		}
		return &OpError{Op: op, Node: n.where(), Err: pe}
	}
	if writeErr != nil && (o.Stream != nil || o.Input != nil) {
		return fmt.Errorf("%s on %s: send input: %w", op, n.where(), writeErr)
	}
	if outErr != nil {
		return fmt.Errorf("%s on %s: receive output: %w", op, n.where(), outErr)
	}
	if waitErr != nil && o.Output != nil {
		// The stream after the result ended with the agent failing: what
		// arrived may be cut short.
		return fmt.Errorf("%s on %s: the agent failed while sending: %w", op, n.where(), waitErr)
	}
	if result != nil && len(res.Data) > 0 {
		if err := json.Unmarshal(res.Data, result); err != nil {
			return fmt.Errorf("%s on %s: decode result: %w", op, n.where(), err)
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "none"
	}
	return s
}

// terminalConn is a Conn that can connect a command to the local terminal
// (*sshx.Client).
type terminalConn interface {
	RunTerminal(ctx context.Context, argv []string, o sshx.TerminalOptions) (int, error)
}

// EncodeArgRequest is a request as OpRun takes it: base64 of its JSON,
// one command-line argument, so that standard input stays free for a
// terminal.
func EncodeArgRequest(req protocol.Request, args any) (string, error) {
	var b bytes.Buffer
	if err := protocol.EncodeRequest(&b, req, args); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(bytes.TrimSpace(b.Bytes())), nil
}

// Exec runs op as a program rather than a message stream (OpRun): its
// request is an argument, its standard streams are o's, and it returns the
// program's exit status.
func (n *Node) Exec(ctx context.Context, op string, args any, o sshx.TerminalOptions) (int, error) {
	tc, ok := n.conn.(terminalConn)
	if !ok {
		return -1, fmt.Errorf("%s on %s: this connection cannot run programs directly", op, n.where())
	}
	arg, err := EncodeArgRequest(protocol.Request{Protocol: version.Protocol, Op: op, LocalUser: n.opts.LocalUser, Verbose: n.opts.Verbose}, args)
	if err != nil {
		return -1, err
	}
	return tc.RunTerminal(ctx, append(n.argv(op), arg), o)
}
