package agent

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/klauspost/compress/zstd"

	"github.com/toppcloud/toppcloud/internal/agent/setup"
	"github.com/toppcloud/toppcloud/internal/filestat"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// MaxAgentSize bounds an uploaded agent binary.
const MaxAgentSize = 1 << 30

// maxAgentWindow bounds the zstd window of an uploaded agent.
const maxAgentWindow = 64 << 20

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// installAgent replaces the agent binary with the one streamed after
// the request. It is how a client updates the agent when it logs in as
// the deploy user, whose sudo rule allows only `toppcloud node *`. Its
// request never changes shape and it accepts every protocol version:
// an old agent must be able to install a new one.
func (a *Agent) installAgent(ctx context.Context, c *Call, args *protocol.InstallAgentArgs) (*protocol.InstallAgentResult, error) {
	in := c.Input
	if args.Size <= 0 || args.Size > MaxAgentSize || !sha256RE.MatchString(args.SHA256) {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "install-agent: size and sha256 of the binary are required"}
	}
	switch args.Encoding {
	case "":
	case "gzip":
		br := bufio.NewReader(in)
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "install-agent: " + err.Error()}
		}
		in = zr
	case "zstd":
		// The client sends frames of at most 8 MiB windows; the bound
		// keeps a hostile stream from making the decoder allocate more.
		zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxAgentWindow))
		if err != nil {
			return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "install-agent: " + err.Error()}
		}
		defer zr.Close()
		in = zr
	default:
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("install-agent: unknown encoding %q", args.Encoding)}
	}
	h := a.Host
	dst := h.Path(a.Layout.Agent)
	sidecar := filestat.SidecarPath(dst)
	if old, _, err := filestat.SumFile(dst, sidecar, true); err == nil && old == args.SHA256 {
		// Drain the stream so the client's writes do not fail.
		_, _ = io.Copy(io.Discard, io.LimitReader(in, args.Size))
		return &protocol.InstallAgentResult{Changed: false, Fingerprint: old}, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".upload-*")
	if err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(in, args.Size+1))
	if err != nil {
		return nil, fmt.Errorf("install agent: receive: %w", err)
	}
	if n != args.Size {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("install-agent: received %d bytes, expected %d", n, args.Size)}
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != args.SHA256 {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("install-agent: checksum mismatch (got %s, expected %s)", got, args.SHA256)}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	if err := h.ChownPath(tmp, 0, 0); err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	// The running agent keeps its open inode; the next start runs the new
	// binary.
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("install agent: %w", err)
	}
	ok = true
	// The sum was checked on the way in: record it beside the binary so
	// the new agent need not hash itself on every run. Without the record
	// it still works, hashing.
	_ = filestat.RecordSum(dst, sidecar, args.SHA256, filestat.Inode(fi))
	return &protocol.InstallAgentResult{Changed: true, Fingerprint: args.SHA256}, nil
}

// info reports the agent's version and node.json.
func (a *Agent) info(ctx context.Context, c *Call, _ *struct{}) (*protocol.InfoResult, error) {
	v, err := a.VersionInfo()
	if err != nil {
		return nil, err
	}
	ni, err := setup.ReadNodeInfo(a.Host, a.Layout)
	if err != nil {
		return nil, err
	}
	return &protocol.InfoResult{Agent: v, Node: ni}, nil
}
