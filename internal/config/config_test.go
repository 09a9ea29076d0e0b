package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/ini"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
)

func TestLoad_Missing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.conf"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "init-config") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func load(t *testing.T, text string) *File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "toppcloud.conf")
	writeFile(t, path, text, 0o600)
	f, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

func TestLoad_Sections(t *testing.T) {
	f := load(t, `[provider:default]
provider = fakecloud
[provider:b2.x-y_z]
provider = fakelocal
[environment]
silverlining_location = /x
[keys]
a = 1
[keys:svc]
b = 2
[devel]
[devel:blog]
[weird]
[provider]
`)
	if got, want := f.ProviderNames(), []string{"default", "b2.x-y_z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ProviderNames() = %q, want %q", got, want)
	}
	want := []string{
		f.Path + ":13: unknown section [weird] ignored",
		f.Path + ":14: unknown section [provider] ignored",
	}
	if !reflect.DeepEqual(f.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", f.Warnings, want)
	}
	if f.Section("keys:svc").Value("b") != "2" || f.Section("environment") == nil {
		t.Error("other sections not exposed")
	}
}

func TestLoad_Errors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[provider:]\nprovider = x\n", ":1: [provider:]: a provider section is named [provider:NAME], NAME made of letters, digits, ., - and _"},
		{"[provider:a b]\n", ":1: [provider:a b]: a provider section is named"},
		{"secret = hunter2\n", ":1: text before the first [section] header"},
	} {
		path := filepath.Join(t.TempDir(), "c.conf")
		writeFile(t, path, tc.text, 0o600)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path+tc.want) {
			t.Errorf("Load(%q) = %v, want %q", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestLoad_ReadableSecretWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	writeFile(t, path, "[provider:default]\nprovider = fakecloud\nsecret = hunter2\n", 0o644)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "chmod 600 "+path) || strings.Contains(f.Warnings[0], "hunter2") {
		t.Errorf("Warnings = %q", f.Warnings)
	}
	// No secret in it: no warning.
	writeFile(t, path, "[provider:default]\nprovider = fakelocal\n", 0o644)
	if f, err := Load(path); err != nil || len(f.Warnings) != 0 {
		t.Errorf("Load = %v, warnings %q", err, f.Warnings)
	}
}

func TestProvider(t *testing.T) {
	k1, k2 := testKey(t, 1, "me@a"), testKey(t, 2, "")
	f := load(t, `[DEFAULT]
set_etc_hosts = yes
[provider:default]
Provider = FakeCloud
username = bob
secret = hunter2
image_name = *bookworm*
endpoint = http://127.0.0.1:1/
root_authorized_keys =
    `+k1+`
    # a comment
    `+k2+`
colour = blue
`)
	p, err := f.Provider("default", testProviders)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "default" || p.Type != "fakecloud" {
		t.Errorf("Name, Type = %q, %q", p.Name, p.Type)
	}
	if p.Get("USERNAME") != "bob" || p.Values["secret"] != "hunter2" || p.Values["set_etc_hosts"] != "yes" {
		t.Errorf("Values = %v", p.Values)
	}
	if p.Line("username") != 5 || p.Line("nope") != 3 || p.Line("set_etc_hosts") != 2 {
		t.Errorf("Line(username, nope, set_etc_hosts) = %d, %d, %d", p.Line("username"), p.Line("nope"), p.Line("set_etc_hosts"))
	}
	if got := p.AuthorizedKeys(); !reflect.DeepEqual(got, []string{k1, k2}) {
		t.Errorf("AuthorizedKeys() = %q", got)
	}
	if b, err := p.SetEtcHosts(); err != nil || !b {
		t.Errorf("SetEtcHosts() = %v, %v", b, err)
	}
	env := map[string]string{"FAKE_REGION": "syd"}
	s := p.Settings(fakeCloud, func(k string) string { return env[k] })
	if s.Get("region") != "syd" || s.Get("secret") != "hunter2" || s.Get("image_name") != "*bookworm*" {
		t.Errorf("Settings = %v", s)
	}
	if img, _ := provider.DefaultMatchers(s, fakeCloud); img != "name *bookworm*" {
		t.Errorf("legacy image_name gives matcher %q", img)
	}
	if s := p.Settings(fakeCloud, func(string) string { return "" }); s.Get("region") != "ord" {
		t.Errorf("region default not applied: %v", s)
	}
	if got := p.UnknownKeys(fakeCloud); !reflect.DeepEqual(got, []string{"colour"}) {
		t.Errorf("UnknownKeys = %q", got)
	}
	if got, want := p.UnknownKeyWarnings(fakeCloud), []string{f.Path + ":13: colour: unknown key colour in [provider:default] ignored (a typo? provider fakecloud does not use it)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UnknownKeyWarnings = %q\nwant %q", got, want)
	}
	err = p.Errorf("endpoint", "cannot reach %s", p.Get("endpoint"))
	if err.Error() != f.Path+":8: endpoint: cannot reach http://127.0.0.1:1/" {
		t.Errorf("Errorf = %v", err)
	}
}

// TestProvider_SSHKey: ssh_key from the section wins over [DEFAULT]; a
// relative path is taken from the config file's directory and ~/ from the
// home directory; where names the line that set it.
func TestProvider_SSHKey(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	f := load(t, `[DEFAULT]
ssh_key = keys/shared
[provider:own]
provider = fakelocal
ssh_key = ~/keys/deploy
[provider:inherits]
provider = fakelocal
[provider:empty]
provider = fakelocal
ssh_key =
`)
	dir := filepath.Dir(f.Path)
	for _, tc := range []struct {
		section, path, where string
	}{
		{"own", filepath.Join(home, "keys", "deploy"), "ssh_key of [provider:own] at " + f.Path + ":5"},
		{"inherits", filepath.Join(dir, "keys", "shared"), "ssh_key of [DEFAULT] at " + f.Path + ":2"},
		{"empty", "", ""},
	} {
		p, err := f.Provider(tc.section, testProviders)
		if err != nil {
			t.Fatal(err)
		}
		path, where, err := p.SSHKey()
		if err != nil || path != tc.path || where != tc.where {
			t.Errorf("[provider:%s] SSHKey() = %q, %q, %v; want %q, %q", tc.section, path, where, err, tc.path, tc.where)
		}
		if got := p.UnknownKeys(fakeLocal); len(got) != 0 {
			t.Errorf("ssh_key counted as unknown: %q", got)
		}
	}
}

func TestProvider_DefaultsAndEtcHosts(t *testing.T) {
	f := load(t, "[provider:x]\nprovider = fakelocal\n")
	p, err := f.Provider("x", testProviders)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := p.SetEtcHosts(); err != nil || b != DefaultSetEtcHosts {
		t.Errorf("SetEtcHosts() = %v, %v", b, err)
	}
	if p.AuthorizedKeys() != nil {
		t.Errorf("AuthorizedKeys() = %q", p.AuthorizedKeys())
	}
}

func TestProvider_SecretFile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rel.secret"), "  from-relative\n", 0o600)
	writeFile(t, filepath.Join(home, "tok"), "from-home\n", 0o600)
	writeFile(t, filepath.Join(dir, "open.secret"), "open\n", 0o644)
	path := filepath.Join(dir, "c.conf")
	writeFile(t, path, `[provider:rel]
provider = fakecloud
secret_file = rel.secret
[provider:home]
provider = fakecloud
secret_file = ~/tok
[provider:abs]
provider = fakecloud
secret_file = `+filepath.Join(dir, "open.secret")+`
`, 0o600)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"rel": "from-relative", "home": "from-home", "abs": "open"} {
		p, err := f.Provider(name, testProviders)
		if err != nil {
			t.Fatalf("Provider(%s): %v", name, err)
		}
		if p.Get("secret") != want {
			t.Errorf("[provider:%s] secret = %q, want %q", name, p.Get("secret"), want)
		}
		if name == "abs" {
			if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "chmod 600") || strings.Contains(p.Warnings[0], "open\n") {
				t.Errorf("Warnings = %q", p.Warnings)
			}
		} else if len(p.Warnings) != 0 {
			t.Errorf("[provider:%s] Warnings = %q", name, p.Warnings)
		}
	}
}

func TestProvider_Errors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "empty.secret"), " \n", 0o600)
	writeFile(t, filepath.Join(dir, "unreadable"), "hunter2", 0o600)
	text := `[provider:default]
provider = fakecloud
[provider:notype]
username = x
[provider:unknown]
provider = openstak
[provider:module]
provider = mymod.drivers:Driver
[provider:both]
provider = fakecloud
secret = hunter2
secret_file = x
[provider:nofile]
provider = fakecloud
secret_file = missing.secret
[provider:empty]
provider = fakecloud
secret_file = empty.secret
[provider:badkey]
provider = fakecloud
secret = hunter2
root_authorized_keys =
    ` + testKey(t, 1, "") + `
    hunter2 not a key
[provider:badbool]
provider = fakecloud
set_etc_hosts = sometimes
[provider:dir]
provider = fakecloud
secret_file = .
`
	path := filepath.Join(dir, "c.conf")
	writeFile(t, path, text, 0o600)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want string
		is   error
	}{
		{"nosuch", "no [provider:nosuch] section in " + path + "; use one of: --provider badbool, --provider badkey, --provider both, --provider default, --provider dir, --provider empty, --provider module, --provider nofile, --provider notype, --provider unknown; or add a [provider:nosuch] section with provider = TYPE to it", nil},
		{"notype", path + ":3: provider: [provider:notype] needs provider = TYPE (known types: fakecloud, fakelocal)", nil},
		{"unknown", path + `:6: provider: unknown provider type "openstak" (known types: fakecloud, fakelocal)`, nil},
		{"module", path + `:8: provider: "mymod.drivers:Driver": module:Class drivers of the original are not supported (known types: fakecloud, fakelocal)`, nil},
		{"both", path + ":12: secret_file: the section also sets secret; keep one of them", nil},
		{"nofile", path + ":15: secret_file: cannot read the secret: open " + filepath.Join(dir, "missing.secret") + ": no such file or directory", fs.ErrNotExist},
		{"empty", path + ":18: secret_file: " + filepath.Join(dir, "empty.secret") + " is empty", nil},
		{"badkey", path + ":24: root_authorized_keys: this line is not an SSH public key (such as the contents of ~/.ssh/id_ed25519.pub)", nil},
		{"badbool", path + `:27: set_etc_hosts: "sometimes" is not a boolean (use yes or no)`, nil},
		{"dir", path + ":30: secret_file: cannot read the secret: read " + dir + ": is a directory", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Provider(tc.name, testProviders)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a secret: %v", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			var ie *ini.Error
			var me *MissingProviderError
			if !errors.As(err, &ie) && !errors.As(err, &me) {
				t.Errorf("error %T is neither *ini.Error nor *MissingProviderError", err)
			}
		})
	}
}

func TestProvider_NoSections(t *testing.T) {
	f := load(t, "[devel]\n")
	_, err := f.Provider("default", testProviders)
	if err == nil || !strings.Contains(err.Error(), "it has no provider sections at all") {
		t.Errorf("error = %v", err)
	}
}

func TestDevel(t *testing.T) {
	f := load(t, `[devel]
postgis.dbname = devel_APP_NAME
files = ~/files/APP_NAME
mysql.user = root
[devel:blog]
postgis.dbname = blogdb
mysql.password = APP_NAME-pw
[devel:other]
files = /other
`)
	want := map[string]string{
		"postgis.dbname": "blogdb",
		"files":          "~/files/blog",
		"mysql.user":     "root",
		"mysql.password": "blog-pw",
	}
	if got := f.Devel("blog"); !reflect.DeepEqual(got, want) {
		t.Errorf("Devel(blog) = %v, want %v", got, want)
	}
	if got := f.Devel("wiki")["postgis.dbname"]; got != "devel_wiki" {
		t.Errorf("Devel(wiki) postgis.dbname = %q", got)
	}
	if got := load(t, "[provider:x]\nprovider = fakelocal\n").Devel("blog"); len(got) != 0 {
		t.Errorf("Devel without [devel] = %v", got)
	}
}

func TestLoad_NoWarningForDevelPassword(t *testing.T) {
	// A [devel] password is not a provider secret; mode warnings are
	// about API keys only.
	path := filepath.Join(t.TempDir(), "c.conf")
	writeFile(t, path, "[devel]\npostgis.password = x\n", 0o644)
	f, err := Load(path)
	if err != nil || len(f.Warnings) != 0 {
		t.Errorf("Load = %v, %q", err, f.Warnings)
	}
}

func TestProvider_TLS(t *testing.T) {
	dir := t.TempDir()
	certPEM := testCertPEM(t)
	writeFile(t, filepath.Join(dir, "ca.pem"), certPEM, 0o644)
	writeFile(t, filepath.Join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0o600)
	writeFile(t, filepath.Join(dir, "junk.pem"), "not pem\n", 0o644)
	for _, tc := range []struct {
		name, section string
		want          protocol.TLSSettings
		err           string
	}{
		{"cloud default", "provider = fakecloud\n", protocol.TLSSettings{Issuer: protocol.IssuerACME}, ""},
		{"local default", "provider = fakelocal\n", protocol.TLSSettings{Issuer: protocol.IssuerInternal}, ""},
		{"local with a CA", "provider = fakelocal\nacme_ca = https://ca.test/dir\nacme_ca_root = ca.pem\nacme_email = ops@example.com\n",
			protocol.TLSSettings{Issuer: protocol.IssuerACME, ACMECA: "https://ca.test/dir", ACMEEmail: "ops@example.com", ACMECARoot: certPEM}, ""},
		{"cloud internal", "provider = fakecloud\nacme_ca = internal\n", protocol.TLSSettings{Issuer: protocol.IssuerInternal}, ""},
		{"plain http CA", "provider = fakecloud\nacme_ca = http://ca.test/dir\n", protocol.TLSSettings{}, "acme_ca: \"http://ca.test/dir\": use an ACME directory URL"},
		{"bad email", "provider = fakecloud\nacme_email = ops\n", protocol.TLSSettings{}, "acme_email: \"ops\" is not an email address"},
		{"root without ACME", "provider = fakelocal\nacme_ca_root = ca.pem\n", protocol.TLSSettings{}, "acme_ca_root: is for an ACME CA"},
		{"missing root", "provider = fakecloud\nacme_ca_root = nope.pem\n", protocol.TLSSettings{}, "cannot read the CA's root certificate"},
		{"key as root", "provider = fakecloud\nacme_ca_root = key.pem\n", protocol.TLSSettings{}, "holds a PRIVATE KEY"},
		{"not PEM", "provider = fakecloud\nacme_ca_root = junk.pem\n", protocol.TLSSettings{}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "c.conf")
			writeFile(t, path, "[provider:x]\n"+tc.section, 0o600)
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.Provider("x", testProviders)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.TLS()
			if err != nil || got != tc.want {
				t.Fatalf("TLS() = %+v, %v; want %+v", got, err, tc.want)
			}
			if unknown := p.UnknownKeys(fakeCloud); len(unknown) != 0 {
				t.Errorf("acme keys reported unknown: %v", unknown)
			}
		})
	}
}

// testCertPEM returns a new self-signed certificate.
func testCertPEM(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
