package provider

import (
	"fmt"
	"strings"
)

// TokenOptions are the settings of a [provider:NAME] section for a cloud
// that authenticates with one API token (DigitalOcean, Hetzner, Linode,
// Vultr).
type TokenOptions struct {
	Token    string `config:"secret"`
	Region   string `config:"region"`
	Endpoint string `config:"endpoint"`
	Image    string `config:"image"`
	Size     string `config:"size"`
}

// DecodeTokenOptions decodes s for such a cloud, without any network
// I/O. The token must be there after trimming; the error names it as
// what (e.g. "API token") and where else it may come from (envVar).
// root is the API root: the section's endpoint, or def.
func DecodeTokenOptions(s Settings, def, what, envVar string) (o TokenOptions, root string, err error) {
	if err := s.Decode(&o); err != nil {
		return o, "", err
	}
	o.Token = strings.TrimSpace(o.Token)
	if o.Token == "" {
		return o, "", fmt.Errorf("no %s: set secret in the section or $%s", what, envVar)
	}
	root, err = APIRoot(o.Endpoint, def)
	return o, root, err
}
