package config

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

func firstRunOpts(t *testing.T, goos string) FirstRunOptions {
	return FirstRunOptions{
		Home:       t.TempDir(),
		GOOS:       goos,
		Providers:  []provider.Info{fakeCloud, fakeLocal},
		Rand:       bytes.NewReader(bytes.Repeat([]byte{7}, 64)),
		KeyComment: "me@test",
	}
}

func TestFirstRun_Cloud(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	key := testKey(t, 3, "me@laptop")
	writeFile(t, filepath.Join(opts.Home, ".ssh", "id_rsa.pub"), testKey(t, 4, "rsa")+"\n", 0o644)
	writeFile(t, filepath.Join(opts.Home, ".ssh", "id_ed25519.pub"), key+"\n", 0o644)
	p := &script{
		answers: []string{"2", "  bob ", ""}, // type by number, username, region default
		secrets: []string{"hunter2"},
	}
	in, err := FirstRun(bg, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := Init{
		Section:        "default",
		Provider:       "fakecloud",
		Settings:       []Setting{{"username", "bob"}, {"secret", "hunter2"}, {"region", "ord"}},
		AuthorizedKeys: []string{key},
		KeySource:      filepath.Join(opts.Home, ".ssh", "id_ed25519.pub"),
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("Init = %+v\nwant %+v", in, want)
	}
	wantLog := []string{
		"say Where should toppcloud create nodes?",
		"say   1) fakelocal  nodes on this machine",
		"say   2) fakecloud  a cloud for tests",
		"ask Provider type [fakelocal]",
		"ask username (account user name) []",
		"secret secret (API key or token)",
		"ask region (region or data centre) [ord]",
		"say Using ~/.ssh/id_ed25519.pub",
	}
	if !reflect.DeepEqual(p.log, wantLog) {
		t.Errorf("dialogue:\n%s\nwant:\n%s", strings.Join(p.log, "\n"), strings.Join(wantLog, "\n"))
	}
	for _, l := range p.log {
		if strings.Contains(l, "hunter2") {
			t.Errorf("the secret was shown: %q", l)
		}
	}
}

// TestFirstRun_RecordsThePrivateHalf: the found .pub's private half,
// when it sits beside it, becomes ssh_key; a generated key is recorded too.
func TestFirstRun_RecordsThePrivateHalf(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	dir := filepath.Join(opts.Home, ".ssh")
	writeFile(t, filepath.Join(dir, "id_ed25519.pub"), testKey(t, 1, "")+"\n", 0o644)
	writeFile(t, filepath.Join(dir, "id_ed25519"), "private\n", 0o600)
	p := &script{answers: []string{"1"}}
	in, err := FirstRun(bg, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "id_ed25519"); in.SSHKey != want {
		t.Errorf("SSHKey = %q, want %q", in.SSHKey, want)
	}
	if last := p.log[len(p.log)-1]; last != "say Logging in to nodes with ~/.ssh/id_ed25519" {
		t.Errorf("last message %q", last)
	}

	opts = firstRunOpts(t, "linux")
	in, err = FirstRun(bg, &script{answers: []string{"1"}, confirms: []bool{true}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if in.SSHKey == "" || in.SSHKey != in.GeneratedKey {
		t.Errorf("generated key: SSHKey %q, GeneratedKey %q", in.SSHKey, in.GeneratedKey)
	}
}

func TestExpandHome(t *testing.T) {
	for _, tc := range []struct{ p, home, want string }{
		{"~/keys/deploy", "/home/u", "/home/u/keys/deploy"},
		{"~", "/home/u", "/home/u"},
		{"~other/x", "/home/u", "~other/x"},
		{"keys/deploy", "/home/u", "keys/deploy"},
		{"~/keys/deploy", "", "~/keys/deploy"},
	} {
		if got := ExpandHome(tc.p, tc.home); got != tc.want {
			t.Errorf("ExpandHome(%q, %q) = %q, want %q", tc.p, tc.home, got, tc.want)
		}
	}
}

func TestPrivateKeyBeside(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), "x", 0o600)
	writeFile(t, filepath.Join(dir, "a.pub"), "x", 0o644)
	writeFile(t, filepath.Join(dir, "b.pub"), "x", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "c"), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "a.pub"): filepath.Join(dir, "a"),
		filepath.Join(dir, "b.pub"): "", // no private half
		filepath.Join(dir, "c.pub"): "", // a directory is no key
		filepath.Join(dir, "a"):     "", // not a .pub
		".pub":                      "", // nothing before .pub
	} {
		if got := PrivateKeyBeside(path); got != want {
			t.Errorf("PrivateKeyBeside(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestFirstRun_ProviderChoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		goos    string
		answers []string
		want    string
		wantErr bool
	}{
		{"default is local on linux", "linux", []string{""}, "fakelocal", false},
		{"by name, any case", "linux", []string{"FakeCloud", "u", ""}, "fakecloud", false},
		{"retry after a wrong answer", "linux", []string{"9", "nope", "1"}, "fakelocal", false},
		{"give up after three", "linux", []string{"9", "8", "7", "1"}, "", true},
		{"no local off linux", "darwin", []string{"", "u", ""}, "fakecloud", false},
		{"local by name off linux is refused", "darwin", []string{"fakelocal", "fakelocal", "fakelocal"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := firstRunOpts(t, tc.goos)
			writeFile(t, filepath.Join(opts.Home, ".ssh", "id_ed25519.pub"), testKey(t, 1, "")+"\n", 0o644)
			p := &script{answers: tc.answers, secrets: []string{"s"}}
			in, err := FirstRun(bg, p, opts)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; chose %q", in.Provider)
				}
				return
			}
			if err != nil || in.Provider != tc.want {
				t.Errorf("FirstRun = %q, %v; want %q", in.Provider, err, tc.want)
			}
		})
	}
}

func TestFirstRun_RequiredOption(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	writeFile(t, filepath.Join(opts.Home, ".ssh", "id_ed25519.pub"), testKey(t, 1, "")+"\n", 0o644)
	p := &script{answers: []string{"fakecloud", "", "bob", ""}, secrets: []string{"", "s3"}}
	in, err := FirstRun(bg, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Setting{{"username", "bob"}, {"secret", "s3"}, {"region", "ord"}}; !reflect.DeepEqual(in.Settings, want) {
		t.Errorf("Settings = %v", in.Settings)
	}
	if n := strings.Count(strings.Join(p.log, "\n"), "is required."); n != 2 {
		t.Errorf("told %d times that a value is required:\n%s", n, strings.Join(p.log, "\n"))
	}
	// Never answered: an error, not a loop.
	p = &script{answers: []string{"fakecloud", "", "", ""}}
	if _, err := FirstRun(bg, p, opts); err == nil {
		t.Error("FirstRun without a username succeeded")
	}
}

func TestFirstRun_GeneratesKey(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	p := &script{answers: []string{"1"}, confirms: []bool{true}}
	in, err := FirstRun(bg, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(opts.Home, ".ssh", GeneratedKeyName)
	if in.GeneratedKey != priv || in.KeySource != priv+".pub" || len(in.AuthorizedKeys) != 1 {
		t.Fatalf("Init = %+v", in)
	}
	for path, mode := range map[string]fs.FileMode{filepath.Dir(priv): 0o700 | fs.ModeDir, priv: 0o600, priv + ".pub": 0o644} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, mode)
		}
	}
	data, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("private key is not in OpenSSH format:\n%.40s", data)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(in.AuthorizedKeys[0]))
	if err != nil || !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) || comment != "me@test" {
		t.Errorf("public key %q does not match the private key (%v)", in.AuthorizedKeys[0], err)
	}
	pubFile, _ := os.ReadFile(priv + ".pub")
	if strings.TrimSpace(string(pubFile)) != in.AuthorizedKeys[0] {
		t.Errorf(".pub file %q differs from %q", pubFile, in.AuthorizedKeys[0])
	}
	wantSay := []string{
		"say No SSH public key found (~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub).",
		"confirm Create the key pair ~/.ssh/toppcloud_ed25519 for toppcloud? [true]",
		"say Created ~/.ssh/toppcloud_ed25519 and ~/.ssh/toppcloud_ed25519.pub",
	}
	if got := p.log[len(p.log)-3:]; !reflect.DeepEqual(got, wantSay) {
		t.Errorf("dialogue end:\n%s", strings.Join(got, "\n"))
	}

	// A second first run finds the generated key and does not make another.
	p = &script{answers: []string{"1"}}
	in2, err := FirstRun(bg, p, opts)
	if err != nil || in2.GeneratedKey != "" || !reflect.DeepEqual(in2.AuthorizedKeys, in.AuthorizedKeys) {
		t.Errorf("second run: %+v, %v", in2, err)
	}
}

func TestFirstRun_DeclinesKey(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	p := &script{answers: []string{"1"}, confirms: []bool{false}}
	in, err := FirstRun(bg, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if in.AuthorizedKeys != nil || in.GeneratedKey != "" {
		t.Errorf("Init = %+v", in)
	}
	if _, err := os.Stat(filepath.Join(opts.Home, ".ssh")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("~/.ssh was created: %v", err)
	}
	if last := p.log[len(p.log)-1]; !strings.Contains(last, "root_authorized_keys") {
		t.Errorf("last message %q does not say how to add a key", last)
	}
}

func TestFirstRun_BadKeyFileOffersGeneration(t *testing.T) {
	opts := firstRunOpts(t, "linux")
	writeFile(t, filepath.Join(opts.Home, ".ssh", "id_ed25519.pub"), "garbage\n", 0o644)
	p := &script{answers: []string{"1"}, confirms: []bool{false}}
	if _, err := FirstRun(bg, p, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(p.log, "\n"), "say Not using "+filepath.Join(opts.Home, ".ssh", "id_ed25519.pub")+": line 1 is not an SSH public key") {
		t.Errorf("dialogue:\n%s", strings.Join(p.log, "\n"))
	}
}

func TestFirstRun_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := FirstRun(ctx, &script{answers: []string{"1"}}, firstRunOpts(t, "linux"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("FirstRun(cancelled) = %v", err)
	}
}

func TestFirstRun_NoProviders(t *testing.T) {
	opts := firstRunOpts(t, "windows")
	opts.Providers = []provider.Info{fakeLocal}
	if _, err := FirstRun(bg, &script{}, opts); err == nil {
		t.Error("FirstRun with nothing to offer succeeded")
	}
}

func TestFindPublicKey(t *testing.T) {
	home := t.TempDir()
	if _, _, err := FindPublicKey(home); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FindPublicKey(empty) = %v", err)
	}
	rsa := testKey(t, 1, "rsa-ish")
	writeFile(t, filepath.Join(home, ".ssh", "id_rsa.pub"), rsa+"\n", 0o644)
	path, keys, err := FindPublicKey(home)
	if err != nil || path != filepath.Join(home, ".ssh", "id_rsa.pub") || !reflect.DeepEqual(keys, []string{rsa}) {
		t.Errorf("FindPublicKey = %q, %q, %v", path, keys, err)
	}
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519.pub"), "-----BEGIN OPENSSH PRIVATE KEY-----\nsecretstuff\n", 0o644)
	_, _, err = FindPublicKey(home)
	if err == nil || !strings.Contains(err.Error(), "private key") || strings.Contains(err.Error(), "secretstuff") {
		t.Errorf("FindPublicKey(private key in .pub) = %v", err)
	}
}

func TestReadAuthorizedKeys(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	k1, k2 := testKey(t, 1, "a"), testKey(t, 2, "b")
	writeFile(t, filepath.Join(home, "two.pub"), "# mine\n"+k1+"\n\n"+k2+"\n", 0o644)
	writeFile(t, filepath.Join(home, "bad.pub"), k1+"\nnope\n", 0o644)
	for _, tc := range []struct {
		arg     string
		want    []string
		wantErr string
	}{
		{filepath.Join(home, "two.pub"), []string{k1, k2}, ""},
		{"~/two.pub", []string{k1, k2}, ""},
		{"  " + k1 + "  ", []string{k1}, ""},
		{filepath.Join(home, "bad.pub"), nil, "bad.pub: line 2 is not an SSH public key"},
		{filepath.Join(home, "none.pub"), nil, "no such file"},
		{"ssh-ed25519 notbase64", nil, "neither a file nor an SSH public key line"},
		{"", nil, "no public key given"},
	} {
		got, err := ReadAuthorizedKeys(tc.arg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ReadAuthorizedKeys(%q) = %q, %v; want error %q", tc.arg, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ReadAuthorizedKeys(%q) = %q, %v", tc.arg, got, err)
		}
	}
}

func TestGenerateKey_NeverOverwrites(t *testing.T) {
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh", GeneratedKeyName), "old", 0o600)
	if _, _, err := GenerateKey(home, "", nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKey over an existing key = %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(home, ".ssh", GeneratedKeyName)); string(data) != "old" {
		t.Error("existing key was replaced")
	}
}
