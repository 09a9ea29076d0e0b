package provider

import (
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuthorizedKey is one line of CreateRequest.AuthorizedKeys, parsed once,
// with the fingerprints provider key APIs compare.
type AuthorizedKey struct {
	// Line is the authorized_keys line, trimmed.
	Line string
	Key  ssh.PublicKey
	// MD5 is the colon-separated hex MD5 fingerprint ("aa:bb:..."), the
	// form DigitalOcean, Hetzner, Vultr and Nova show.
	MD5 string
	// SHA256 is OpenSSH's "SHA256:..." fingerprint.
	SHA256 string
}

// Name is the name toppcloud gives the key when it registers it with a
// provider: "toppcloud-" and the first 12 hex digits of the MD5
// fingerprint, so the same key always gets the same name.
func (k AuthorizedKey) Name() string {
	return "toppcloud-" + strings.ReplaceAll(k.MD5, ":", "")[:12]
}

// ParseAuthorizedKeys parses key lines. A line that is not a public key is
// an ErrInvalid *APIError naming providerName, so it is reported before any
// API call.
func ParseAuthorizedKeys(providerName string, lines []string) ([]AuthorizedKey, error) {
	var out []AuthorizedKey
	for _, line := range lines {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, &APIError{Provider: providerName, Op: "parse authorized key", Message: err.Error(), Kind: ErrInvalid}
		}
		out = append(out, AuthorizedKey{
			Line:   strings.TrimSpace(line),
			Key:    pub,
			MD5:    strings.TrimPrefix(ssh.FingerprintLegacyMD5(pub), "MD5:"),
			SHA256: ssh.FingerprintSHA256(pub),
		})
	}
	return out, nil
}

// APIRoot returns the API root a driver talks to: endpoint (the section's
// `endpoint`, without a trailing slash) when set, else def. An endpoint
// that is not an http(s) URL is an error that shows def as an example.
func APIRoot(endpoint, def string) (string, error) {
	if endpoint == "" {
		return def, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("endpoint %q is not an http(s) URL (use the API root, e.g. %s)", endpoint, def)
	}
	return strings.TrimRight(endpoint, "/"), nil
}
