package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWrite_RoundTrip(t *testing.T) {
	k1, k2 := testKey(t, 1, "me@a"), testKey(t, 2, "")
	in := Init{
		Provider: "fakecloud",
		Settings: []Setting{
			{"username", "bob"},
			{"secret", "s3cr3t = with ; and # and %(x)s"},
			{"region", "ORD"},
			{"endpoint", ""}, // empty: left out
		},
		AuthorizedKeys: []string{k1, k2},
		KeySource:      "~/.ssh/id_ed25519.pub",
	}
	path := filepath.Join(t.TempDir(), "sub", "toppcloud.conf")
	if err := Write(path, in, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode = %v, %v", fi.Mode(), err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("Warnings = %q", f.Warnings)
	}
	p, err := f.Provider("default", testProviders)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"provider":             "fakecloud",
		"username":             "bob",
		"secret":               "s3cr3t = with ; and # and %(x)s",
		"region":               "ORD",
		"root_authorized_keys": "\n" + k1 + "\n" + k2,
	}
	if !reflect.DeepEqual(p.Values, want) {
		t.Errorf("Values = %q\nwant %q", p.Values, want)
	}
	if !reflect.DeepEqual(p.AuthorizedKeys(), []string{k1, k2}) {
		t.Errorf("AuthorizedKeys = %q", p.AuthorizedKeys())
	}
	if len(f.Devel("x")) != 0 {
		t.Errorf("the [devel] example is not all comments: %v", f.Devel("x"))
	}
	// No leftover temporary files.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestWrite_SSHKeyIsChecked(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "d.conf"), Init{Provider: "fakelocal", SSHKey: "a\nb"}, false); err == nil {
		t.Error("a key path with a line break was written")
	}
	if _, err := Render(Init{Provider: "fakelocal", Settings: []Setting{{"ssh_key", "x"}}}); err == nil {
		t.Error("ssh_key accepted as a plain setting")
	}
}

func TestWrite_SecretFileAndSection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "tok\n", 0o600)
	path := filepath.Join(dir, "c.conf")
	key := filepath.Join(dir, "keys", "deploy")
	in := Init{Section: "work", Provider: "fakelocal", SecretFile: "token", SSHKey: key}
	if err := Write(path, in, false); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Provider("work", testProviders)
	if err != nil {
		t.Fatal(err)
	}
	if p.Get("secret") != "tok" || p.Get("secret_file") != "token" || p.Type != "fakelocal" {
		t.Errorf("Values = %v", p.Values)
	}
	if got, _, err := p.SSHKey(); err != nil || got != key {
		t.Errorf("SSHKey() = %q, %v; want %q", got, err, key)
	}
}

func TestWrite_Overwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	writeFile(t, path, "old", 0o644)
	in := Init{Provider: "fakelocal"}
	err := Write(path, in, false)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("Write over a file = %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Error("the file was replaced without force")
	}
	if err := Write(path, in, true); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "provider = fakelocal") || fi.Mode().Perm() != 0o600 {
		t.Errorf("forced write: mode %v, content %q", fi.Mode(), data)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestRender(t *testing.T) {
	key := testKey(t, 1, "me@a")
	got, err := Render(Init{
		Provider:       "fakecloud",
		Settings:       []Setting{{"username", "bob"}, {"secret", "s"}},
		AuthorizedKeys: []string{key},
		KeySource:      "~/.ssh/id_ed25519.pub",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# toppcloud configuration.
#
# Each [provider:NAME] section describes one place nodes come from;
# toppcloud uses [provider:default] unless given --provider NAME.
# Keep this file private (chmod 600): it may hold API keys.

[provider:default]
provider = fakecloud
username = bob
secret = s
# Public keys installed on new nodes (from ~/.ssh/id_ed25519.pub).
root_authorized_keys =
    ` + key + `

[devel]
`
	if !strings.HasPrefix(string(got), want) {
		t.Errorf("Render =\n%s\nwant it to start with\n%s", got, want)
	}
	if !strings.Contains(string(got), "[devel:APP_NAME]") {
		t.Error("no [devel:APP_NAME] hint")
	}
}

func TestRender_Rejects(t *testing.T) {
	key := testKey(t, 1, "")
	for _, tc := range []struct {
		name string
		in   Init
		want string
	}{
		{"no type", Init{}, `provider type "" is not a valid type name`},
		{"bad type", Init{Provider: "Fake Cloud"}, `provider type "Fake Cloud" is not a valid type name`},
		{"bad section", Init{Provider: "x", Section: "a b"}, `provider section name "a b"`},
		{"bad key", Init{Provider: "x", Settings: []Setting{{"User Name", "v"}}}, `setting name "User Name"`},
		{"reserved key", Init{Provider: "x", Settings: []Setting{{"provider", "y"}}}, "setting provider is written from its own field"},
		{"twice", Init{Provider: "x", Settings: []Setting{{"a", "1"}, {"a", "2"}}}, "setting a given twice"},
		{"newline", Init{Provider: "x", Settings: []Setting{{"secret", "hunter2\nx = y"}}}, "setting secret: the value contains a line break"},
		{"control", Init{Provider: "x", Settings: []Setting{{"secret", "hunter2\x1c"}}}, "setting secret: the value contains a line break or another control character"},
		{"spaces", Init{Provider: "x", Settings: []Setting{{"secret", " hunter2"}}}, "setting secret: the value starts or ends with spaces"},
		{"unicode space", Init{Provider: "x", Settings: []Setting{{"secret", "hunter2\u00a0"}}}, "setting secret: the value starts or ends with spaces"},
		{"bad utf8", Init{Provider: "x", Settings: []Setting{{"secret", "hunter2\xff"}}}, "not valid UTF-8"},
		{"secret and file", Init{Provider: "x", Settings: []Setting{{"secret", "hunter2"}}, SecretFile: "f"}, "not both"},
		{"bad authorized key", Init{Provider: "x", AuthorizedKeys: []string{key, "hunter2"}}, "authorized key 2 is not an SSH public key"},
		{"multi-line key", Init{Provider: "x", AuthorizedKeys: []string{key + "\n" + key}}, "authorized key 1 spans several lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a value: %v", err)
			}
			if err := Write(filepath.Join(t.TempDir(), "c"), tc.in, false); err == nil {
				t.Error("Write accepted it")
			}
		})
	}
}
