package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

// Release records: every update, activate and deactivate of an app
// appends one line to /var/lib/toppcloud/apps/APP/releases.jsonl, under
// the app's lock. Numbers count up from 1 per app; `activate LOCATION N`
// finds the instance release N made live.

// Release actions.
const (
	ActionUpdate     = "update"
	ActionActivate   = "activate"
	ActionDeactivate = "deactivate"
)

// ReleasesFile is the name of an app's release log in its data directory.
const ReleasesFile = "releases.jsonl"

// ParseReleases reads a release log. A line that does not decode (a
// write cut by a crash) is skipped and reported; the others are kept.
func ParseReleases(data []byte) ([]protocol.Release, []error) {
	var out []protocol.Release
	var problems []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r protocol.Release
		if err := json.Unmarshal(line, &r); err != nil || r.Number < 1 {
			problems = append(problems, fmt.Errorf("%s line %d skipped: not a release record", ReleasesFile, n))
			continue
		}
		out = append(out, r)
	}
	return out, problems
}

// NextRelease is the number the next record gets: one more than the
// highest so far.
func NextRelease(rs []protocol.Release) int {
	n := 0
	for _, r := range rs {
		n = max(n, r.Number)
	}
	return n + 1
}

// FindRelease returns the release numbered n.
func FindRelease(rs []protocol.Release, n int) (protocol.Release, bool) {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Number == n {
			return rs[i], true
		}
	}
	return protocol.Release{}, false
}

func (a *Agent) releasesPath(app string) string {
	return path.Join(a.Layout.Apps, app, ReleasesFile)
}

// readReleases reads app's release log; none yet is an empty log.
func (a *Agent) readReleases(app string) ([]protocol.Release, []error, error) {
	b, err := a.Host.ReadFile(a.releasesPath(app))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	rs, problems := ParseReleases(b)
	return rs, problems, nil
}

// appendRelease numbers r and appends it to app's log. Callers hold the
// app's lock, so numbers do not collide.
func (a *Agent) appendRelease(app string, r protocol.Release) (protocol.Release, error) {
	rs, _, err := a.readReleases(app)
	if err != nil {
		return r, err
	}
	r.Number = NextRelease(rs)
	line, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	p := a.releasesPath(app)
	if err := os.MkdirAll(a.Host.Path(path.Dir(p)), 0o711); err != nil {
		return r, err
	}
	f, err := os.OpenFile(a.Host.Path(p), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return r, fmt.Errorf("release log of %s: %w", app, err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return r, fmt.Errorf("release log of %s: %w", app, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return r, fmt.Errorf("release log of %s: %w", app, err)
	}
	return r, f.Close()
}

// resolveRelease turns an activate target that is a number into the
// instance release made live.
func resolveRelease(rs []protocol.Release, target string) (string, bool, error) {
	n, err := strconv.Atoi(target)
	if err != nil || n < 1 {
		return "", false, nil
	}
	r, ok := FindRelease(rs, n)
	if !ok {
		return "", true, &protocol.Error{Code: protocol.CodeNotFound, Message: fmt.Sprintf("no release %d (query lists the releases)", n)}
	}
	if r.Action == ActionDeactivate {
		return "", true, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("release %d deactivated %s; name a release that made an instance live", n, r.Instance)}
	}
	return r.Instance, true, nil
}
