package setup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/toppcloud/toppcloud/internal/agent/host"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

// dirSpec is a directory of the node layout.
type dirSpec struct {
	path string
	attr host.Attr
}

// layoutDirs are the node's directories with their owners and modes.
// Everything is root's: the agent runs as root, apps get their own
// subdirectories (owned by their users) when they are deployed. Modes say
// who may look: 0711 lets an app reach its own entry without listing the
// others'.
func layoutDirs(l layout.Layout) []dirSpec {
	root := func(m fs.FileMode) host.Attr { return host.Attr{Mode: m} }
	return []dirSpec{
		{l.Etc, root(0o755)},
		{l.Etc + "/instances", root(0o711)},
		{l.WWW, root(0o755)},
		{l.Data, root(0o755)},
		{l.Blobs, root(0o700)},
		{l.Slots, root(0o755)},
		{l.Instances, root(0o755)},
		{l.Apps, root(0o711)},
		{l.Backups, root(0o700)},
		{l.Logs, root(0o755)},
		{l.AppLogs, root(0o755)},
		{l.Locks, root(0o700)},
	}
}

// runDirAttr is what /run/toppcloud must be (see files/tmpfiles.conf):
// root's alone.
func runDirAttr() host.Attr {
	return host.Attr{Mode: 0o755}
}

// routerDirAttr is what the router's socket directory must be.
func routerDirAttr() host.Attr {
	return host.Attr{Mode: 0o750, User: layout.CaddyUser, Group: layout.CaddyGroup}
}

func (s *setupRun) ensureDirs(ctx context.Context, st *protocol.Step) (bool, string, error) {
	var made []string
	for _, d := range layoutDirs(s.l) {
		c, err := s.h.EnsureDir(d.path, d.attr)
		if err != nil {
			return len(made) > 0, "", err
		}
		if c {
			made = append(made, d.path)
		}
	}
	// /run is a tmpfs: systemd-tmpfiles makes the directory at every boot
	// from this file; running it now makes it for this boot.
	conf, err := renderFile("tmpfiles.conf", map[string]string{"Run": s.l.Run, "RouterDir": s.l.RouterDir, "CaddyRun": s.l.CaddyRun,
		"CaddyUser": layout.CaddyUser, "CaddyGroup": layout.CaddyGroup})
	if err != nil {
		return false, "", err
	}
	confChanged, err := s.h.WriteFile(s.l.Tmpfiles, conf, host.Attr{Mode: 0o644})
	if err != nil {
		return len(made) > 0, "", err
	}
	runOK := false
	if a, fi, err := s.h.Stat(s.l.Run); err == nil && fi.IsDir() && a.Equal(runDirAttr()) {
		if a, fi, err := s.h.Stat(s.l.RouterDir); err == nil && fi.IsDir() && a.Equal(routerDirAttr()) {
			if a, fi, err := s.h.Stat(s.l.CaddyRun); err == nil && fi.IsDir() && a.Equal(routerDirAttr()) {
				runOK = true
			}
		}
	}
	if confChanged || !runOK {
		if _, err := s.run(ctx, "systemd-tmpfiles", "--create", s.h.Path(s.l.Tmpfiles)); err != nil {
			return true, "", err
		}
		made = append(made, s.l.Run)
	}
	if len(made) == 0 {
		return false, "all in place", nil
	}
	return true, "made or fixed " + strings.Join(made, " "), nil
}

// secretBytes is the entropy of the node secret.
const secretBytes = 32

func cryptoRandom(b []byte) error {
	_, err := rand.Read(b)
	return err
}

// ensureSecret makes the node secret once and never changes it (apps'
// secrets come from it, and apps sign things with theirs); its content is
// never logged or sent anywhere. It is root's alone: each app reads only
// the secret derived for it (instance.AppSecret).
func (s *setupRun) ensureSecret(ctx context.Context, st *protocol.Step) (bool, string, error) {
	attr := host.Attr{Mode: 0o600}
	old, err := s.h.ReadFile(s.l.Secret)
	switch {
	case err == nil && len(strings.TrimSpace(string(old))) >= 32:
		c, err := s.h.WriteFile(s.l.Secret, old, attr)
		if err != nil {
			return false, "", err
		}
		if c {
			return true, "fixed its mode", nil
		}
		return false, "present", nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, "", err
	}
	b := make([]byte, secretBytes)
	if err := s.hooks.Random(b); err != nil {
		return false, "", fmt.Errorf("random secret: %w", err)
	}
	if _, err := s.h.WriteFile(s.l.Secret, []byte(base64.RawURLEncoding.EncodeToString(b)), attr); err != nil {
		return false, "", err
	}
	return true, "created", nil
}
