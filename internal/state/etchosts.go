package state

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

// The lines that delimit the block of a hosts file toppcloud manages.
// Everything between them is toppcloud's; everything outside is never
// changed.
const (
	HostsBlockBegin = "# BEGIN toppcloud (managed by toppcloud; do not edit inside this block)"
	HostsBlockEnd   = "# END toppcloud"
)

// EtcHosts is the system hosts file the CLI passes to SetHost and
// RemoveHost.
const EtcHosts = "/etc/hosts"

// HostsEntry is one line of the managed block: an address and its names.
type HostsEntry struct {
	IP    string
	Names []string // sorted
}

// HostsEntries returns the entries of the managed block of the hosts file at
// path, sorted by address; none if there is no block.
func HostsEntries(path string) ([]HostsEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := parseHosts(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return f.entries(), nil
}

// SetHost makes every name resolve to ip through the managed block of the
// hosts file at path: each name is added to ip's line and removed from any
// other line of the block. Lines outside the block are kept byte for byte,
// even when they mention a name (the first match wins in a hosts file, so
// the CLI may want to warn about such lines). changed reports whether the
// file was rewritten; an up-to-date file is not touched, so calling SetHost
// needs write permission only when something changes.
func SetHost(path, ip string, names ...string) (changed bool, err error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, fmt.Errorf("set %s in %s: %q is not an IP address", strings.Join(names, " "), path, ip)
	}
	if err := validateHostNames(names); err != nil {
		return false, fmt.Errorf("set %s in %s: %w", ip, path, err)
	}
	return editHosts(path, func(f *hostsFile) {
		f.set(addr.String(), names)
	}, atomicfile.WriteFile)
}

// RemoveHost removes names from the managed block of the hosts file at
// path, keeping other names that share their lines, and removes the block
// once it is empty. Names that are not there are ignored; changed reports
// whether the file was rewritten.
func RemoveHost(path string, names ...string) (changed bool, err error) {
	if err := validateHostNames(names); err != nil {
		return false, fmt.Errorf("remove from %s: %w", path, err)
	}
	return editHosts(path, func(f *hostsFile) {
		f.remove(names)
	}, atomicfile.WriteFile)
}

func validateHostNames(names []string) error {
	if len(names) == 0 {
		return errors.New("no host names given")
	}
	for _, n := range names {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool {
			return r <= ' ' || r == '#' || r == 0x7f
		}) {
			return fmt.Errorf("invalid host name %q", n)
		}
	}
	return nil
}

// editHosts is the locked read-modify-write of a hosts file. replace is
// atomicfile.WriteFile except in tests.
func editHosts(path string, edit func(*hostsFile), replace func(string, []byte, fs.FileMode) error) (bool, error) {
	// Lock the file itself: a lock file next to /etc/hosts would litter /etc.
	unlock, err := atomicfile.LockExisting(path)
	if err != nil {
		return false, hostsPermHint(fmt.Errorf("update %s: %w", path, err))
	}
	defer unlock()

	old, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("update %s: %w", path, err)
	}
	f, err := parseHosts(old)
	if err != nil {
		return false, fmt.Errorf("update %s: %w", path, err)
	}
	edit(f)
	data := f.render()
	if bytes.Equal(data, old) {
		return false, nil
	}
	if err := replace(path, data, 0o644); err != nil {
		if !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.EXDEV) {
			return false, hostsPermHint(fmt.Errorf("update %s: %w", path, err))
		}
		// In containers /etc/hosts is usually a bind mount of a single
		// file, and renaming over a mount point fails with EBUSY. The only
		// way left is to rewrite the file in place: not atomic (a reader
		// may briefly see it short), but the file is small and we hold the
		// lock against other toppcloud processes.
		if err := rewriteInPlace(path, data); err != nil {
			return false, hostsPermHint(fmt.Errorf("update %s in place (it cannot be replaced, probably a bind mount): %w", path, err))
		}
	}
	return true, nil
}

func rewriteInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func hostsPermHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (changing the hosts file needs root: run with sudo, or skip the /etc/hosts step)", err)
	}
	return err
}

// hostsFile is a hosts file split around the managed block. before and
// after are kept as raw bytes so that lines outside the block survive
// unchanged, whatever their spacing, comments or line endings.
type hostsFile struct {
	before, after []byte
	hasBlock      bool
	ips           map[string][]string // ip -> names, within the block
}

func parseHosts(data []byte) (*hostsFile, error) {
	f := &hostsFile{ips: map[string][]string{}}
	begin, end := -1, -1 // byte offsets of the BEGIN line and of the line after END
	off := 0
	lineNo := 0
	for off < len(data) {
		lineNo++
		next := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		line := strings.TrimRight(string(data[off:next]), "\r\n")
		switch {
		case strings.TrimSpace(line) == HostsBlockBegin:
			if begin >= 0 {
				return nil, fmt.Errorf("line %d: a second toppcloud block starts here; merge or remove one of them by hand", lineNo)
			}
			begin = off
		case strings.TrimSpace(line) == HostsBlockEnd:
			if begin < 0 || end >= 0 {
				return nil, fmt.Errorf("line %d: %q without a matching %q; fix the file by hand", lineNo, HostsBlockEnd, HostsBlockBegin)
			}
			end = next
		case begin >= 0 && end < 0:
			if err := f.parseBlockLine(line); err != nil {
				return nil, fmt.Errorf("line %d (inside the toppcloud block): %w; fix or delete the line by hand", lineNo, err)
			}
		}
		off = next
	}
	if begin >= 0 && end < 0 {
		return nil, fmt.Errorf("the toppcloud block has no %q line; fix the file by hand", HostsBlockEnd)
	}
	if begin < 0 {
		f.before = data
		return f, nil
	}
	f.hasBlock = true
	f.before = data[:begin]
	f.after = data[end:]
	return f, nil
}

func (f *hostsFile) parseBlockLine(line string) error {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil
	}
	addr, err := netip.ParseAddr(fields[0])
	if err != nil {
		return fmt.Errorf("%q is not an IP address", fields[0])
	}
	if len(fields) == 1 {
		return fmt.Errorf("address %s has no names", fields[0])
	}
	ip := addr.String()
	for _, n := range fields[1:] {
		if !slices.Contains(f.ips[ip], n) {
			f.ips[ip] = append(f.ips[ip], n)
		}
	}
	return nil
}

func (f *hostsFile) set(ip string, names []string) {
	f.remove(names)
	for _, n := range names {
		if !slices.Contains(f.ips[ip], n) {
			f.ips[ip] = append(f.ips[ip], n)
		}
	}
}

func (f *hostsFile) remove(names []string) {
	for ip, have := range f.ips {
		have = slices.DeleteFunc(have, func(n string) bool { return slices.Contains(names, n) })
		if len(have) == 0 {
			delete(f.ips, ip)
		} else {
			f.ips[ip] = have
		}
	}
}

func (f *hostsFile) entries() []HostsEntry {
	es := make([]HostsEntry, 0, len(f.ips))
	for ip, names := range f.ips {
		ns := slices.Clone(names)
		slices.Sort(ns)
		es = append(es, HostsEntry{IP: ip, Names: ns})
	}
	slices.SortFunc(es, func(a, b HostsEntry) int {
		return netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP))
	})
	return es
}

// render returns the whole file: the bytes before the block, the block
// rewritten from f.ips (or nothing when it is empty), the bytes after.
func (f *hostsFile) render() []byte {
	var b bytes.Buffer
	b.Write(f.before)
	es := f.entries()
	if len(es) > 0 {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			// Appending to a file whose last line has no newline.
			b.WriteByte('\n')
		}
		b.WriteString(HostsBlockBegin + "\n")
		for _, e := range es {
			b.WriteString(e.IP + "\t" + strings.Join(e.Names, " ") + "\n")
		}
		b.WriteString(HostsBlockEnd + "\n")
	}
	b.Write(f.after)
	return b.Bytes()
}
