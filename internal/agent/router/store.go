package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/location"
)

// TableVersion is the version of the saved shape this agent writes and the
// newest it reads.
const TableVersion = 1

// ErrNewerVersion: the saved table was written by a newer agent.
var ErrNewerVersion = errors.New("route table written by a newer toppcloud")

// savedTable is the on-disk shape, kept apart from Table so the live type
// can change without breaking what is on nodes (kamal-proxy's lesson).
// Locations are stored in their String form.
type savedTable struct {
	Version  int               `json:"version"`
	Routes   []json.RawMessage `json:"routes"`
	Disabled []string          `json:"disabled"`
}

type savedRoute struct {
	Location string `json:"location"`
	App      string `json:"app"`
	Live     string `json:"live,omitempty"`
	Prev     string `json:"prev,omitempty"`
}

// EntryError is one saved route that could not be restored. It names the
// entry, its app and its location so the agent can log it against the
// app; the other entries are restored without it.
type EntryError struct {
	Index    int    // position in the saved routes, from 0
	App      string // as saved, possibly ""
	Location string // as saved, possibly ""
	Err      error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("route %d (app %q, location %q) skipped: %v", e.Index, e.App, e.Location, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// EncodeTable returns the saved shape of t, indented, routes in key order.
func EncodeTable(t *Table) ([]byte, error) {
	st := savedTable{Version: TableVersion, Routes: []json.RawMessage{}, Disabled: []string{}}
	routes := slices.Clone(t.Routes)
	slices.SortFunc(routes, func(a, b Route) int { return strings.Compare(a.Location.Key(), b.Location.Key()) })
	for _, r := range routes {
		b, err := json.Marshal(savedRoute{Location: r.Location.String(), App: r.App, Live: r.Live, Prev: r.Prev})
		if err != nil {
			return nil, err
		}
		st.Routes = append(st.Routes, b)
	}
	st.Disabled = append(st.Disabled, t.Disabled...)
	slices.Sort(st.Disabled)
	st.Disabled = slices.Compact(st.Disabled)
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// DecodeTable restores a table from its saved shape, one entry at a time:
// an entry that does not decode or validate is skipped and reported as an
// *EntryError in the returned slice, never taking the other routes down.
// The error result is for a file that cannot be read as a table at all
// (not JSON, or a version newer than TableVersion).
func DecodeTable(data []byte) (*Table, []error, error) {
	var st savedTable
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("decode route table: %w", err)
	}
	switch {
	case st.Version > TableVersion:
		return nil, nil, fmt.Errorf("route table version %d, this agent reads up to %d: %w (upgrade toppcloud on the node)", st.Version, TableVersion, ErrNewerVersion)
	case st.Version < 1:
		return nil, nil, fmt.Errorf("decode route table: missing or bad version %d", st.Version)
	}

	t := &Table{}
	var problems []error
	seen := map[string]int{}
	for i, raw := range st.Routes {
		var sr savedRoute
		if err := json.Unmarshal(raw, &sr); err != nil {
			problems = append(problems, &EntryError{Index: i, App: peekString(raw, "app"), Location: peekString(raw, "location"), Err: err})
			continue
		}
		r, err := restoreRoute(sr)
		if err == nil {
			if first, dup := seen[r.Location.Key()]; dup {
				err = fmt.Errorf("same location as route %d", first)
			}
		}
		if err != nil {
			problems = append(problems, &EntryError{Index: i, App: sr.App, Location: sr.Location, Err: err})
			continue
		}
		seen[r.Location.Key()] = i
		t.Routes = append(t.Routes, r)
	}
	slices.SortFunc(t.Routes, func(a, b Route) int { return strings.Compare(a.Location.Key(), b.Location.Key()) })
	for _, app := range st.Disabled {
		if err := ValidateApp(app); err != nil {
			problems = append(problems, fmt.Errorf("disabled app skipped: %w", err))
			continue
		}
		t.Disabled = append(t.Disabled, app)
	}
	slices.Sort(t.Disabled)
	t.Disabled = slices.Compact(t.Disabled)
	return t, problems, nil
}

func restoreRoute(sr savedRoute) (Route, error) {
	loc, err := location.Parse(sr.Location)
	if err != nil {
		return Route{}, err
	}
	if err := ValidateApp(sr.App); err != nil {
		return Route{}, err
	}
	if sr.Live == "" && sr.Prev == "" {
		return Route{}, errors.New("neither a live nor a previous instance")
	}
	for _, in := range []string{sr.Live, sr.Prev} {
		if in == "" {
			continue
		}
		if err := ValidateInstance(in); err != nil {
			return Route{}, err
		}
	}
	return Route{Location: loc, App: sr.App, Live: sr.Live, Prev: sr.Prev}, nil
}

// peekString digs a string field out of an entry that failed to decode,
// so the error can still name its app and location.
func peekString(raw json.RawMessage, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[key], &s) != nil {
		return ""
	}
	return s
}

// LoadTable reads the table saved at path. A missing file is an empty
// table (a node with nothing deployed yet). Per-entry problems are returned
// as in DecodeTable.
func LoadTable(path string) (*Table, []error, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Table{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read route table: %w", err)
	}
	t, problems, err := DecodeTable(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, problems, nil
}

// SaveTable writes t to path atomically (temp file, fsync, rename).
func SaveTable(path string, t *Table) error {
	data, err := EncodeTable(t)
	if err != nil {
		return fmt.Errorf("encode route table: %w", err)
	}
	if err := atomicfile.Write(path, data, atomicfile.Options{Perm: 0o644}); err != nil {
		return fmt.Errorf("save route table: %w", err)
	}
	return nil
}
