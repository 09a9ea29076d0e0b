package service

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/toppcloud/toppcloud/internal/agent/host"
)

// Credentials are a login to a service. They are generated on the node
// once, kept in a root-only file, and given to the app's environment
// only: never to the client, never in a log.
type Credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// NewPassword returns a fresh random password: 26 characters of
// [A-Z2-7] (128 bits), safe in URLs, SQL literals and config files
// without quoting.
func NewPassword() string { return rand.Text() }

// AppCredentials returns app's credentials for the service name, made
// with user and a new password the first time and read back after that
// (from app.CredentialsDir()/NAME.json, root 0600 in a root 0700
// directory).
func AppCredentials(h *host.Host, app App, name, user string) (Credentials, error) {
	if _, err := h.EnsureDir(app.CredentialsDir(), host.Attr{Mode: 0o700}); err != nil {
		return Credentials{}, err
	}
	return LoadCredentials(h, path.Join(app.CredentialsDir(), name+".json"), user)
}

// LoadCredentials reads the credentials kept at node path p, or makes
// them (user, a new password) and writes them there, root 0600, when p
// does not exist yet. A file that names another user is an error: it is
// not this toppcloud's, or it was edited.
func LoadCredentials(h *host.Host, p, user string) (Credentials, error) {
	data, err := h.ReadFile(p)
	switch {
	case err == nil:
		var c Credentials
		if err := json.Unmarshal(data, &c); err != nil {
			return Credentials{}, fmt.Errorf("credentials %s: %w (move the file away to make new ones)", p, err)
		}
		if c.User != user || c.Password == "" {
			return Credentials{}, fmt.Errorf("credentials %s are for user %q, not %q (move the file away to make new ones)", p, c.User, user)
		}
		// Mode and owner as they must be, whatever happened to the file.
		if _, err := h.WriteFile(p, data, host.Attr{Mode: 0o600}); err != nil {
			return Credentials{}, err
		}
		return c, nil
	case errors.Is(err, fs.ErrNotExist):
		c := Credentials{User: user, Password: NewPassword()}
		data, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return Credentials{}, err
		}
		if _, err := h.WriteFile(p, append(data, '\n'), host.Attr{Mode: 0o600}); err != nil {
			return Credentials{}, err
		}
		return c, nil
	default:
		return Credentials{}, fmt.Errorf("credentials %s: %w", p, err)
	}
}
