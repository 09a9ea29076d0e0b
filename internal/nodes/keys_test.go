package nodes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/sshx"
	"github.com/toppcloud/toppcloud/internal/state"
	"github.com/toppcloud/toppcloud/internal/usage"
)

// TestLoginKey_Precedence: each source of the login key on its own, and
// every pair of them, the higher one winning: --ssh-key, then
// $TOPPCLOUD_SSH_KEY, then ssh_key of the section, then of [DEFAULT].
func TestLoginKey_Precedence(t *testing.T) {
	keys := t.TempDir()
	flag, env, section, deflt := newKey(t, keys, "flag"), newKey(t, keys, "env"), newKey(t, keys, "section"), newKey(t, keys, "default")
	for _, tc := range []struct {
		name                        string
		flag, env, section, defSect string
		wantPath, wantFrom          string
	}{
		{name: "nothing named", wantPath: "", wantFrom: ""},
		{name: "[DEFAULT]", defSect: deflt.path, wantPath: deflt.path, wantFrom: "ssh_key of [DEFAULT] at "},
		{name: "section", section: section.path, wantPath: section.path, wantFrom: "ssh_key of [provider:default] at "},
		{name: "section over [DEFAULT]", section: section.path, defSect: deflt.path, wantPath: section.path, wantFrom: "ssh_key of [provider:default] at "},
		{name: "environment", env: env.path, wantPath: env.path, wantFrom: "$TOPPCLOUD_SSH_KEY"},
		{name: "environment over section", env: env.path, section: section.path, defSect: deflt.path, wantPath: env.path, wantFrom: "$TOPPCLOUD_SSH_KEY"},
		{name: "flag", flag: flag.path, wantPath: flag.path, wantFrom: "--ssh-key"},
		{name: "flag over everything", flag: flag.path, env: env.path, section: section.path, defSect: deflt.path, wantPath: flag.path, wantFrom: "--ssh-key"},
		{name: "a .pub means its private half", flag: flag.path + ".pub", wantPath: flag.path, wantFrom: "--ssh-key (the private half of flag.pub)"},
		{name: "a .pub in the section", section: section.path + ".pub", wantPath: section.path, wantFrom: "(the private half of section.pub)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			extra := ""
			if tc.section != "" {
				extra = "ssh_key = " + tc.section + "\n"
			}
			if tc.defSect != "" {
				extra += "[DEFAULT]\nssh_key = " + tc.defSect + "\n"
			}
			w.config(section, extra)
			if tc.env != "" {
				w.env[EnvSSHKey] = tc.env
			}
			k, err := w.session(tc.flag).LoginKey(bg, "default")
			if err != nil {
				t.Fatal(err)
			}
			if k.Path != tc.wantPath || !strings.Contains(k.From, tc.wantFrom) || (tc.wantFrom == "") != (k.From == "") {
				t.Errorf("LoginKey = %+v, want path %q from %q", k, tc.wantPath, tc.wantFrom)
			}
		})
	}
}

// TestLoginKey_BadNames: a named key that is not there is a usage error
// naming the setting, found before anything connects.
func TestLoginKey_BadNames(t *testing.T) {
	keys := t.TempDir()
	pubOnly := filepath.Join(keys, "lonely.pub")
	if err := os.WriteFile(pubOnly, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, flag, env, section, want string
	}{
		{name: "flag, no file", flag: filepath.Join(keys, "none"), want: "--ssh-key names the SSH key " + filepath.Join(keys, "none")},
		{name: "environment, no file", env: filepath.Join(keys, "none"), want: "$TOPPCLOUD_SSH_KEY names the SSH key"},
		{name: "section, no file", section: filepath.Join(keys, "none"), want: "ssh_key of [provider:default] at "},
		{name: "a directory", flag: keys, want: "not a file"},
		{name: "a .pub without its private half", flag: pubOnly, want: "its private half is not beside it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			extra := ""
			if tc.section != "" {
				extra = "ssh_key = " + tc.section + "\n"
			}
			w.config(newKey(t, keys, "k"+strings.ReplaceAll(tc.name, " ", "")), extra)
			if tc.env != "" {
				w.env[EnvSSHKey] = tc.env
			}
			_, err := w.session(tc.flag).LoginKey(bg, "default")
			if !usage.Is(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoginKey = %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestLoginKey_TildeInFlagAndEnvironment: a ~ the shell left alone is the
// home directory.
func TestLoginKey_TildeInFlagAndEnvironment(t *testing.T) {
	w := newWorld(t)
	k := newKey(t, filepath.Join(w.home, "keys"), "deploy")
	w.config(k, "")
	got, err := w.session("~/keys/deploy").LoginKey(bg, "default")
	if err != nil || got.Path != k.path {
		t.Errorf("--ssh-key ~/keys/deploy: %+v, %v", got, err)
	}
	w.env[EnvSSHKey] = "~/keys/deploy.pub"
	got, err = w.session("").LoginKey(bg, "default")
	if err != nil || got.Path != k.path {
		t.Errorf("$TOPPCLOUD_SSH_KEY=~/keys/deploy.pub: %+v, %v", got, err)
	}
}

// TestDial_NamedKeyLogsIn: the node accepts only a key kept outside
// ~/.ssh, while ~/.ssh holds another. Every source naming it logs in, as
// root and as the deploy user; with none, the login fails and says which
// keys the node expects.
func TestDial_NamedKeyLogsIn(t *testing.T) {
	outside := newKey(t, t.TempDir(), "deploy")
	for _, tc := range []struct {
		name, flag, env, extra string
	}{
		{name: "--ssh-key", flag: outside.path},
		{name: "$TOPPCLOUD_SSH_KEY", env: outside.path},
		{name: "ssh_key", extra: "ssh_key = " + outside.path + "\n"},
		{name: "[DEFAULT] ssh_key", extra: "[DEFAULT]\nssh_key = " + outside.path + "\n"},
		{name: "ssh_key naming the .pub", extra: "ssh_key = " + outside.path + ".pub\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, outside)
			newKey(t, filepath.Join(w.home, ".ssh"), "id_ed25519") // not the node's
			w.config(outside, tc.extra)
			if tc.env != "" {
				w.env[EnvSSHKey] = tc.env
			}
			s := w.session(tc.flag)
			rec := w.createRecord(s, "web1", outside)
			for _, user := range []string{"", protocol.DeployUser} {
				c, err := s.dial(bg, rec, user, 0)
				if err != nil {
					t.Fatalf("dial as %q: %v", user, err)
				}
				if want := outside.path + " (" + outside.fingerprint() + ")"; c.LoginKey() != want {
					t.Errorf("logged in with %q, want %q", c.LoginKey(), want)
				}
			}
			login, err := s.LoginOf(bg, rec, "")
			if err != nil || login.User != "root" || login.Key.Path != outside.path || login.Used == "" {
				t.Errorf("LoginOf = %+v, %v", login, err)
			}
		})
	}

	t.Run("nothing named", func(t *testing.T) {
		w := newWorld(t, outside)
		mine := newKey(t, filepath.Join(w.home, ".ssh"), "id_ed25519")
		w.config(outside, "")
		s := w.session("")
		rec := w.createRecord(s, "web1", outside)
		_, err := s.dial(bg, rec, "", 0)
		var le *LoginError
		var ae *sshx.AuthError
		if !errors.As(err, &le) || !errors.As(err, &ae) {
			t.Fatalf("err = %v, want a *LoginError", err)
		}
		msg := err.Error()
		for _, want := range []string{
			"the node does not accept your key (tried: " + mine.path + ")",
			"offered: " + mine.fingerprint(),
			"web1 was given at creation: " + outside.fingerprint() + " (deploy@test)",
			"--ssh-key PATH, TOPPCLOUD_SSH_KEY=PATH, or ssh_key = PATH in [provider:default] of " + w.conf,
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("message lacks %q:\n%s", want, msg)
			}
		}
	})
}

// createRecord records a node at the world's server with its host key
// pinned, as create-node leaves it, given key at creation.
func (w *world) createRecord(s *Session, name string, key keyPair) (rec state.NodeRecord) {
	w.t.Helper()
	st, err := s.State()
	if err != nil {
		w.t.Fatal(err)
	}
	host, port := w.mem.Address, w.mem.SSHPort
	rec = state.NodeRecord{Name: name, Section: "default", ProviderType: "memtest", ID: "id-" + name,
		PublicIPs: []string{host}, SSHPort: port, HostKey: w.srv.HostKey, AuthorizedKeys: []string{key.line}}
	kh := sshx.KnownHosts{Path: st.KnownHostsPath()}
	if err := kh.Pin(rec.SSHAddr(), w.srv.HostKey); err != nil {
		w.t.Fatal(err)
	}
	if err := st.PutNode(rec); err != nil {
		w.t.Fatal(err)
	}
	return rec
}

// TestLoginError_Message: what a failed login says in each case.
func TestLoginError_Message(t *testing.T) {
	keys := t.TempDir()
	given, other := newKey(t, keys, "given"), newKey(t, keys, "other")
	base := func() *LoginError {
		return &LoginError{
			Node:     "web1",
			Auth:     &sshx.AuthError{User: "root", Host: "10.0.0.2", Tried: []string{"~/.ssh/id_ed25519"}, Offered: []string{other.fingerprint()}},
			Expected: []string{given.line}, ExpectedFrom: "was given at creation",
			Section: "default", ConfigPath: "/home/u/.toppcloud.conf",
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*LoginError)
		want   []string
		not    []string
	}{
		{"expected key not offered", func(*LoginError) {}, []string{
			"authentication as root@10.0.0.2 failed: the node does not accept your key (tried: ~/.ssh/id_ed25519)",
			"\n  offered: " + other.fingerprint(),
			"\n  web1 was given at creation: " + given.fingerprint() + " (given@test)",
			"\n  to log in with another private key, name it: --ssh-key PATH, TOPPCLOUD_SSH_KEY=PATH, or ssh_key = PATH in [provider:default] of /home/u/.toppcloud.conf",
		}, []string{"was offered and refused"}},
		{"expected key offered and refused", func(e *LoginError) { e.Auth.Offered = []string{given.fingerprint()} }, []string{
			"one of them was offered and refused",
		}, nil},
		{"a named key", func(e *LoginError) { e.Key = LoginKey{Path: "/k/deploy", From: "--ssh-key"} }, []string{
			"\n  the key named by --ssh-key is /k/deploy",
		}, nil},
		{"nothing known of the node's keys", func(e *LoginError) {
			e.Expected, e.ExpectedFrom = nil, "has no record here of the keys it was given"
		}, []string{"\n  web1 has no record here of the keys it was given"}, []string{"was given at creation"}},
		{"no key at all", func(e *LoginError) { e.Auth.Tried, e.Auth.Offered = nil, nil }, []string{
			"no usable SSH key to log in as root@10.0.0.2", "web1 was given at creation: " + given.fingerprint(),
		}, []string{"offered:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := base()
			tc.change(e)
			msg := e.Error()
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			for _, not := range tc.not {
				if strings.Contains(msg, not) {
					t.Errorf("message has %q:\n%s", not, msg)
				}
			}
		})
	}
}
