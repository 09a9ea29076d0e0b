package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/ini"
	"github.com/toppcloud/toppcloud/internal/protocol"
	"github.com/toppcloud/toppcloud/internal/provider"
)

// DefaultSetEtcHosts is set_etc_hosts when a section does not say: editing
// /etc/hosts needs root, so toppcloud does it only when asked.
const DefaultSetEtcHosts = false

// Keys every provider section may have, whatever its type.
var commonKeys = map[string]bool{
	"provider": true, "secret_file": true, "root_authorized_keys": true, "set_etc_hosts": true,
	"ssh_key":    true,
	"acme_email": true, "acme_ca": true, "acme_ca_root": true,
	"image_name": true, "image_id": true, "size_id": true,
	// toppcloud-era keys, still accepted.
	"default_node": true, "remote_username": true,
}

// ProviderSection is a checked [provider:NAME] section.
type ProviderSection struct {
	// Name is NAME in [provider:NAME].
	Name string
	// Type is the provider type ("rackspace"), lower case.
	Type string
	// Values holds every key of the section, lower case, with [DEFAULT]
	// merged in and secret set from secret_file when that is used.
	Values map[string]string
	// Warnings are problems that do not stop anything (a secret file
	// others can read).
	Warnings []string

	section *ini.Section
	keys    []string
	file    string // the config file's path
	// local: the provider's nodes are on this machine (provider.Info).
	local bool
}

// Provider returns the [provider:NAME] section, checked: it has a provider
// type that providers knows, its secret_file (if any) is read, its
// root_authorized_keys are SSH public keys. Errors name the file and line
// and never include a secret.
func (f *File) Provider(name string, providers *provider.Registry) (*ProviderSection, error) {
	s := f.ini.Section("provider:" + name)
	if s == nil {
		return nil, &MissingProviderError{Path: f.Path, Name: name, Available: f.ProviderNames()}
	}
	p := &ProviderSection{Name: name, Values: map[string]string{}, section: s, file: f.Path}
	for _, k := range s.Keys() {
		p.Values[k.Name] = k.Value
		p.keys = append(p.keys, k.Name)
	}
	typ := strings.ToLower(p.Values["provider"])
	known := strings.Join(providers.Names(), ", ")
	if known == "" {
		known = "none are built in"
	}
	switch {
	case typ == "":
		return nil, s.Errorf("provider", "[provider:%s] needs provider = TYPE (known types: %s)", name, known)
	case strings.Contains(typ, ":"):
		return nil, s.Errorf("provider", "%q: module:Class drivers of the original are not supported (known types: %s)", p.Values["provider"], known)
	}
	info, ok := providers.Lookup(typ)
	if !ok {
		return nil, s.Errorf("provider", "unknown provider type %q (known types: %s)", p.Values["provider"], known)
	}
	p.Type, p.local = typ, info.Local
	if err := p.resolveSecret(filepath.Dir(p.file)); err != nil {
		return nil, err
	}
	if err := p.checkAuthorizedKeys(); err != nil {
		return nil, err
	}
	if _, err := p.SetEtcHosts(); err != nil {
		return nil, err
	}
	if _, err := p.TLS(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *ProviderSection) resolveSecret(dir string) error {
	file := p.Values["secret_file"]
	if file == "" {
		return nil
	}
	if p.Values["secret"] != "" {
		return p.Errorf("secret_file", "the section also sets secret; keep one of them")
	}
	path, err := expandPath(file, dir)
	if err != nil {
		return p.section.Errorf("secret_file", "%v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file, never its contents.
		e := p.section.Errorf("secret_file", "cannot read the secret")
		e.Err = err
		return e
	}
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		return p.Errorf("secret_file", "%s is empty", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf(
			"secret file %s can be read by other users (mode %04o); run: chmod 600 %s", path, fi.Mode().Perm(), path))
	}
	p.Values["secret"] = secret
	return nil
}

// expandPath turns ~/x into a path in the home directory and a relative
// path into one relative to dir (the config file's directory).
func expandPath(p, dir string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", p, err)
		}
		return ExpandHome(p, home), nil
	}
	if !filepath.IsAbs(p) {
		return filepath.Join(dir, p), nil
	}
	return p, nil
}

// ExpandHome turns ~ and a leading ~/ into home, as a shell does; other
// paths, and any path when home is unknown (""), are returned as they are.
func ExpandHome(p, home string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		return filepath.Join(home, p[1:])
	}
	return p
}

func (p *ProviderSection) checkAuthorizedKeys() error {
	k := p.section.Key("root_authorized_keys")
	if k == nil {
		return nil
	}
	for _, l := range k.Lines() {
		if strings.HasPrefix(l.Text, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l.Text)); err != nil {
			return k.ErrorfAt(l.Num, "this line is not an SSH public key (such as the contents of ~/.ssh/id_ed25519.pub)")
		}
	}
	return nil
}

// Get returns a value ("" when not set).
func (p *ProviderSection) Get(key string) string { return p.Values[strings.ToLower(key)] }

// Line returns the line a key is on, or the section header's line when the
// key is not set, for messages.
func (p *ProviderSection) Line(key string) int {
	if k := p.section.Key(key); k != nil {
		return k.Line
	}
	return p.section.Line
}

// Errorf returns an *ini.Error about key, located at its line (or at the
// section header). Drivers' complaints about a setting can be reported
// with it. Never pass a secret in args.
func (p *ProviderSection) Errorf(key, format string, args ...any) error {
	return p.section.Errorf(key, format, args...)
}

// AuthorizedKeys returns the lines of root_authorized_keys: public keys to
// install for the login user of new nodes.
func (p *ProviderSection) AuthorizedKeys() []string {
	k := p.section.Key("root_authorized_keys")
	if k == nil {
		return nil
	}
	var out []string
	for _, l := range k.Lines() {
		if !strings.HasPrefix(l.Text, "#") {
			out = append(out, l.Text)
		}
	}
	return out
}

// SetEtcHosts returns set_etc_hosts: whether to point the local /etc/hosts
// at new nodes and deployed hosts. DefaultSetEtcHosts when not set.
func (p *ProviderSection) SetEtcHosts() (bool, error) {
	return p.section.GetBool("set_etc_hosts", DefaultSetEtcHosts)
}

// Settings returns the values a driver gets: the section's values, then
// the options' environment variables (getenv, os.Getenv when nil), then
// their defaults (provider.Resolve).
func (p *ProviderSection) Settings(info provider.Info, getenv func(string) string) provider.Settings {
	return provider.Resolve(info.Options, p.Values, getenv)
}

// UnknownKeys returns the section's keys that neither info's options nor
// this package know, in the order Values was filled: likely typos, which
// commands show as warnings (see UnknownKeyWarnings).
func (p *ProviderSection) UnknownKeys(info provider.Info) []string {
	declared := map[string]bool{}
	for _, o := range info.Options {
		declared[o.Name] = true
	}
	var out []string
	for _, k := range p.keys {
		if !declared[k] && !commonKeys[k] {
			out = append(out, k)
		}
	}
	return out
}

// UnknownKeyWarnings returns a warning for each of UnknownKeys, naming its
// line, so a typo in the config file does not go unnoticed.
func (p *ProviderSection) UnknownKeyWarnings(info provider.Info) []string {
	var out []string
	for _, k := range p.UnknownKeys(info) {
		e := p.section.Errorf(k, "unknown key %s in [provider:%s] ignored (a typo? provider %s does not use it)", k, p.Name, info.Name)
		out = append(out, e.Error())
	}
	return out
}

// SSHKey returns ssh_key: the private key toppcloud logs in to the
// section's nodes with, its ~/ expanded and a relative path taken from the
// config file's directory; "" when not set. where says which line set it
// ("ssh_key of [provider:NAME] at FILE:LINE", or of [DEFAULT]), for
// messages.
func (p *ProviderSection) SSHKey() (path, where string, err error) {
	k := p.section.Key("ssh_key")
	if k == nil || strings.TrimSpace(k.Value) == "" {
		return "", "", nil
	}
	path, err = expandPath(strings.TrimSpace(k.Value), filepath.Dir(p.file))
	if err != nil {
		return "", "", p.section.Errorf("ssh_key", "%v", err)
	}
	in := "[provider:" + p.Name + "]"
	if k.Section == ini.DefaultSection {
		in = "[DEFAULT]"
	}
	return path, fmt.Sprintf("ssh_key of %s at %s:%d", in, p.file, k.Line), nil
}

// AcmeCAInternal as acme_ca makes nodes sign their certificates with
// their own CA (Caddy's internal issuer) instead of asking an ACME CA.
const AcmeCAInternal = "internal"

// TLS is how a section's nodes get certificates for https locations:
// acme_email, acme_ca (an ACME directory URL, or AcmeCAInternal; empty:
// Let's Encrypt, or the internal CA for local nodes, which no public CA
// can reach) and acme_ca_root (a PEM file of roots to trust for the ACME
// server, for private CAs; ~ and paths relative to the config file are
// expanded, and the file is read here).
func (p *ProviderSection) TLS() (protocol.TLSSettings, error) {
	var s protocol.TLSSettings
	s.ACMEEmail = strings.TrimSpace(p.Get("acme_email"))
	if s.ACMEEmail != "" && (!strings.Contains(s.ACMEEmail, "@") || strings.ContainsAny(s.ACMEEmail, " \t<>\"")) {
		return s, p.Errorf("acme_email", "%q is not an email address", s.ACMEEmail)
	}
	ca := strings.TrimSpace(p.Get("acme_ca"))
	switch {
	case ca == AcmeCAInternal, ca == "" && p.local:
		s.Issuer = protocol.IssuerInternal
	case ca == "":
		s.Issuer = protocol.IssuerACME
	case strings.HasPrefix(ca, "https://") && !strings.ContainsAny(ca, " {}"):
		s.Issuer, s.ACMECA = protocol.IssuerACME, ca
	default:
		return s, p.Errorf("acme_ca", "%q: use an ACME directory URL (https://...) or %q", ca, AcmeCAInternal)
	}
	if root := strings.TrimSpace(p.Get("acme_ca_root")); root != "" {
		if s.Issuer != protocol.IssuerACME {
			return s, p.Errorf("acme_ca_root", "is for an ACME CA; this section's nodes use their internal CA (set acme_ca to the CA's directory URL)")
		}
		path, err := expandPath(root, filepath.Dir(p.file))
		if err != nil {
			return s, p.Errorf("acme_ca_root", "%v", err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			e := p.section.Errorf("acme_ca_root", "cannot read the CA's root certificate")
			e.Err = err
			return s, e
		}
		if err := checkPEMCertificates(data); err != nil {
			return s, p.Errorf("acme_ca_root", "%s: %v", path, err)
		}
		s.ACMECARoot = string(data)
	}
	return s, nil
}

// checkPEMCertificates requires data to hold PEM certificates and nothing
// else that PEM decodes (no keys).
func checkPEMCertificates(data []byte) error {
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %s; want only CERTIFICATE blocks", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate in it")
	}
	return nil
}
