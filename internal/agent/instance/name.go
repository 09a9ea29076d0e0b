package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/toppcloud/toppcloud/internal/agent/blobstore"
	"github.com/toppcloud/toppcloud/internal/appconfig"
	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// nameRE matches an instance name, APP.SUFFIX: what NextName issues,
// and what a path or unit name may be made of.
var nameRE = regexp.MustCompile(`^([a-z0-9][a-z0-9_-]*)\.[A-Za-z0-9_.-]+$`)

// SplitName returns the app of an instance name, and whether name is one.
func SplitName(name string) (app string, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil || strings.Contains(name, "..") {
		return "", false
	}
	return m[1], true
}

// NextName returns the name of a new instance of app in wwwDir,
// APP.YYYY-MM-DD_NNN: the date of now (pass the server's local time), N
// one more than the highest existing for that app and date (so numbering
// restarts each day), at least three digits — the original's rule. It
// reserves the name by creating the instance's partial directory
// (blobstore.PartialPath, which blobstore.Assemble then fills) with mkdir,
// which only one caller can win, so two concurrent updates never get the
// same name even without the per-app lock.
//
// A number is never issued twice: the last name issued is kept in
// wwwDir/.APP.last, so an instance that failed and was removed does not
// hand its name to the next one. Reusing it would confuse everything
// keyed by instance name: systemd's loaded unit of the failed attempt,
// its journal lines, release records.
func NextName(wwwDir, app string, now time.Time) (string, error) {
	if err := appconfig.CheckAppName(app); err != nil {
		return "", err
	}
	prefix := app + "." + now.Format("2006-01-02") + "_"
	des, err := os.ReadDir(wwwDir)
	if err != nil {
		return "", fmt.Errorf("new instance of %s: %w", app, err)
	}
	n := 0
	lastFile := filepath.Join(wwwDir, "."+app+lastSuffix)
	if b, err := os.ReadFile(lastFile); err == nil {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(string(b)), prefix); ok && allDigits(rest) {
			n, _ = strconv.Atoi(rest)
		}
	}
	for _, de := range des {
		name := strings.TrimSuffix(strings.TrimPrefix(de.Name(), "."), blobstore.PartialSuffix)
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if k, err := strconv.Atoi(rest); err == nil && k > n && allDigits(rest) {
				n = k
			}
		}
	}
	for range 1000 {
		n++
		name := fmt.Sprintf("%s%03d", prefix, n)
		final := filepath.Join(wwwDir, name)
		if _, err := os.Lstat(final); err == nil {
			continue
		}
		err := os.Mkdir(blobstore.PartialPath(final), 0o755)
		if err == nil {
			if err := writeLast(lastFile, name); err != nil {
				_ = os.Remove(blobstore.PartialPath(final))
				return "", fmt.Errorf("new instance of %s: %w", app, err)
			}
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("new instance of %s: %w", app, err)
		}
	}
	return "", fmt.Errorf("new instance of %s: no free name after %s%03d", app, prefix, n)
}

// lastSuffix names the file keeping the last instance name issued per app.
const lastSuffix = ".last"

// writeLast records name as the last issued, atomically (a torn write
// could make a number be issued twice), and only forward: a concurrent
// caller that reserved a higher number first is not overwritten. Real
// updates of one app are serialized by the agent's per-app lock; this
// keeps the file sane without it.
func writeLast(path, name string) error {
	if b, err := os.ReadFile(path); err == nil {
		if cur := strings.TrimSpace(string(b)); len(cur) > len(name) || (len(cur) == len(name) && cur >= name) {
			if strings.HasPrefix(cur, name[:strings.LastIndexByte(name, '_')+1]) {
				return nil
			}
		}
	}
	// Not fsynced: the instance directory made with this name is synced
	// with the blob store before it goes live.
	return atomicfile.Write(path, []byte(name+"\n"), atomicfile.Options{Perm: 0o644, NoSync: true})
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}
