package protocol

import "github.com/toppcloud/toppcloud/internal/protocol/wire"

// DiffArgs are OpDiff's arguments; the client's manifest of its
// application directory (wire.WriteManifest) follows the request line.
type DiffArgs struct {
	// Location names the route whose live instance is compared; or
	// Instance names one (APP.DATE_NNN) directly.
	Location string `json:"location,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// DiffEntry is one path that differs, as the instance has it. Type is ""
// for a path the client has and the instance lacks.
type DiffEntry struct {
	Path   string    `json:"path"`
	Type   string    `json:"type,omitempty"` // file, dir, symlink
	Exec   bool      `json:"exec,omitempty"`
	Size   int64     `json:"size,omitempty"`
	Hash   wire.Hash `json:"hash,omitzero"`
	Target string    `json:"target,omitempty"`
}

// DiffFile is the instance's content of one differing file (a
// StreamDiffFile log line), or why it is not sent.
type DiffFile struct {
	Path string `json:"path"`
	Data []byte `json:"data,omitempty"`
	// Omitted says why Data is empty: "binary", "too large".
	Omitted string `json:"omitted,omitempty"`
}

// DiffResult is OpDiff's result.
type DiffResult struct {
	App      string `json:"app"`
	Instance string `json:"instance"`
	// Differ lists, sorted by path, every path whose type, content, mode
	// or target differs, that only the instance has, or (Type "") that
	// only the client has.
	Differ []DiffEntry `json:"differ"`
	// Same counts the paths that are the same.
	Same int `json:"same"`
}

// Limits of what OpDiff sends: a diff is for reading, not for copying an
// instance back.
const (
	// DiffMaxFile is the largest file whose content is sent.
	DiffMaxFile = 1 << 20
	// DiffMaxTotal bounds the content sent in one diff.
	DiffMaxTotal = 64 << 20
)
