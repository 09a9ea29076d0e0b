package main

// The node side of the benchmark: what the agent's upload operations do,
// in the few lines the real agent wiring needs, served in process through
// a kernel pipe or through an SSH server on loopback.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/protocol/wire"
	"github.com/toppcloud/toppcloud/internal/sshx"
)

// Operation names of the benchmark's stand-in agent.
const (
	opMissing  = "blobs-missing"
	opReceive  = "blobs-receive"
	opAssemble = "assemble"
)

// missingResult answers request 1.
type missingResult struct {
	Digest  wire.Hash   `json:"digest"`
	Missing []wire.Hash `json:"missing"`
}

// assembleArgs and assembleResult are request 3.
type assembleArgs struct {
	App    string    `json:"app"`
	Digest wire.Hash `json:"digest"`
}

type assembleResult struct {
	Instance string `json:"instance"`
}

// node is one node's state: its blob store and /var/www.
type node struct {
	store *blobstore.Store
	www   string
}

// serve runs one agent command (argv after "toppcloud node") with the
// session's stdin and stdout, as `toppcloud node OP` would.
func (n *node) serve(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) int {
	if len(argv) == 4 && argv[0] == "tar" {
		// tar x -C DIR, for the comparison.
		cmd := exec.CommandContext(ctx, "tar", argv[1:]...)
		cmd.Stdin, cmd.Stdout = stdin, stdout
		if err := cmd.Run(); err != nil {
			return 1
		}
		return 0
	}
	if len(argv) != 3 || argv[0] != "toppcloud" || argv[1] != "node" {
		fmt.Fprintf(stdout, "unknown command %q\n", argv)
		return 127
	}
	w := protocol.NewWriter(stdout)
	var err error
	switch op := argv[2]; op {
	case opMissing:
		var br io.Reader
		if _, br, err = protocol.DecodeRequest(stdin, op, nil); err == nil {
			err = n.missing(br, w)
		}
	case opReceive:
		var br io.Reader
		if _, br, err = protocol.DecodeRequest(stdin, op, nil); err == nil {
			var st blobstore.ReceiveStats
			if st, err = n.store.Receive(ctx, br); err == nil {
				err = w.OK(st)
			}
		}
	case opAssemble:
		var args assembleArgs
		if _, _, err = protocol.DecodeRequest(stdin, op, &args); err == nil {
			err = n.assemble(ctx, args, w)
		}
	default:
		err = fmt.Errorf("unknown operation %q", op)
	}
	if err != nil && !w.Done() {
		w.Fail(&protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()})
	}
	return 0
}

func (n *node) missing(r io.Reader, w *protocol.Writer) error {
	m, err := wire.ReadManifest(r)
	if err != nil {
		return err
	}
	d, err := n.store.PutManifest(m)
	if err != nil {
		return err
	}
	missing, err := n.store.Missing(m)
	if err != nil {
		return err
	}
	return w.OK(missingResult{Digest: d, Missing: missing})
}

func (n *node) assemble(ctx context.Context, args assembleArgs, w *protocol.Writer) error {
	m, err := n.store.Manifest(args.Digest)
	if err != nil {
		return err
	}
	name, err := instance.NextName(n.www, args.App, time.Now())
	if err != nil {
		return err
	}
	if _, err := n.store.Assemble(ctx, m, filepath.Join(n.www, name)); err != nil {
		return err
	}
	n.store.RemoveManifest(args.Digest)
	return w.OK(assembleResult{Instance: name})
}

// pipeRunner is an sshx.Runner that serves commands in process through
// kernel pipes, so the client's and node's code run as they would, minus
// SSH.
type pipeRunner struct{ n *node }

func (p pipeRunner) Run(ctx context.Context, argv []string, opts sshx.RunOptions) error {
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	status := make(chan int, 1)
	go func() {
		code := p.n.serve(ctx, argv, inR, outW)
		// Like a process exiting: its end of both pipes closes.
		outW.Close()
		inR.Close()
		status <- code
	}()
	go func() {
		if opts.Stdin != nil {
			io.Copy(inW, opts.Stdin)
		}
		inW.Close()
	}()
	stdout := opts.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	_, cerr := io.Copy(stdout, outR)
	outR.Close()
	if code := <-status; code != 0 {
		return fmt.Errorf("%s: exit status %d", strings.Join(argv, " "), code)
	}
	return cerr
}
