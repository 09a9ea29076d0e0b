package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
)

var (
	settingKeyRE   = regexp.MustCompile(`^[a-z][a-z0-9_.]*$`)
	providerTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

// reserved keys are written by Write itself from Init's other fields.
var reserved = map[string]bool{"provider": true, "secret_file": true, "root_authorized_keys": true, "ssh_key": true}

// Write writes a new config file for in at path: commented, with mode 0600,
// atomically. An existing file is an error satisfying
// errors.Is(err, fs.ErrExist) unless force is set. The parent directory is
// created (0700) if needed. Errors never include a setting's value.
func Write(path string, in Init, force bool) error {
	data, err := Render(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := atomicfile.Write(path, data, atomicfile.Options{Perm: 0o600, Exclusive: !force}); err != nil {
		return fmt.Errorf("write config: %w (use --force to replace it)", err)
	}
	return nil
}

// Render returns the config file text for in, after checking that every
// value can be written so that Load reads it back unchanged.
func Render(in Init) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	section := in.Section
	if section == "" {
		section = DefaultProvider
	}
	var b strings.Builder
	b.WriteString(`# toppcloud configuration.
#
# Each [provider:NAME] section describes one place nodes come from;
# toppcloud uses [provider:default] unless given --provider NAME.
# Keep this file private (chmod 600): it may hold API keys.

`)
	fmt.Fprintf(&b, "[provider:%s]\n", section)
	fmt.Fprintf(&b, "provider = %s\n", in.Provider)
	for _, s := range in.Settings {
		if s.Value != "" {
			fmt.Fprintf(&b, "%s = %s\n", s.Key, s.Value)
		}
	}
	if in.SecretFile != "" {
		fmt.Fprintf(&b, "secret_file = %s\n", in.SecretFile)
	}
	if in.SSHKey != "" {
		b.WriteString("# The private key toppcloud logs in to nodes with.\n")
		fmt.Fprintf(&b, "ssh_key = %s\n", in.SSHKey)
	}
	if len(in.AuthorizedKeys) > 0 {
		b.WriteString("# Public keys installed on new nodes")
		if in.KeySource != "" {
			fmt.Fprintf(&b, " (from %s)", in.KeySource)
		}
		b.WriteString(".\nroot_authorized_keys =\n")
		for _, k := range in.AuthorizedKeys {
			fmt.Fprintf(&b, "    %s\n", strings.TrimSpace(k))
		}
	}
	b.WriteString(`
[devel]
# Settings for services when an app runs locally (toppcloud serve).
# For instance:
#
# postgis.dbname = foo
# postgis.user = postgres
# postgis.password = s3cr3t
# postgis.host = some-other-host
# mysql.dbname = foo
# files = ~/.toppcloud-files/APP_NAME
#
# Use a [devel:APP_NAME] section for settings of one application only.
# In every value, APP_NAME is replaced by the application's name
# (for example: couchdb.db = devel_APP_NAME).
`)
	return []byte(b.String()), nil
}

func (in Init) check() error {
	if !providerTypeRE.MatchString(in.Provider) {
		return fmt.Errorf("provider type %q is not a valid type name", in.Provider)
	}
	if in.Section != "" && !providerNameRE.MatchString(in.Section) {
		return fmt.Errorf("provider section name %q: use letters, digits, ., - and _", in.Section)
	}
	seen := map[string]bool{}
	for _, s := range in.Settings {
		switch {
		case !settingKeyRE.MatchString(s.Key):
			return fmt.Errorf("setting name %q: use lower-case letters, digits, _ and .", s.Key)
		case reserved[s.Key]:
			return fmt.Errorf("setting %s is written from its own field", s.Key)
		case seen[s.Key]:
			return fmt.Errorf("setting %s given twice", s.Key)
		}
		seen[s.Key] = true
		if err := checkValue(s.Value); err != nil {
			// The value may be a secret: name only the setting.
			return fmt.Errorf("setting %s: %w", s.Key, err)
		}
	}
	if in.SecretFile != "" {
		if seen["secret"] {
			return errors.New("give a secret or a secret file, not both")
		}
		if err := checkValue(in.SecretFile); err != nil {
			return fmt.Errorf("secret file name: %w", err)
		}
	}
	if err := checkValue(in.SSHKey); err != nil {
		return fmt.Errorf("SSH key path: %w", err)
	}
	for i, k := range in.AuthorizedKeys {
		if strings.ContainsAny(k, "\r\n") {
			return fmt.Errorf("authorized key %d spans several lines", i+1)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("authorized key %d is not an SSH public key", i+1)
		}
	}
	return nil
}

// checkValue rejects what an INI value line cannot carry unchanged.
func checkValue(v string) error {
	switch {
	case !utf8.ValidString(v):
		return errors.New("the value is not valid UTF-8")
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }):
		return errors.New("the value contains a line break or another control character")
	case strings.TrimSpace(v) != v:
		return errors.New("the value starts or ends with spaces, which the file cannot keep")
	}
	return nil
}
