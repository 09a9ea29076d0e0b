package ec2

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"sort"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// maxUserData is EC2's limit on user data before base64 encoding.
const maxUserData = 16 << 10

// cloudConfig is the subset of cloud-init's #cloud-config we write. It is
// written as JSON, which YAML (and so cloud-init) reads as well, so no YAML
// library is needed on either side.
type cloudConfig struct {
	// SSHAuthorizedKeys go to the image's default user (admin on Debian,
	// ubuntu on Ubuntu), the same user the EC2 key pair reaches.
	SSHAuthorizedKeys []string    `json:"ssh_authorized_keys,omitempty"`
	WriteFiles        []writeFile `json:"write_files,omitempty"`
}

type writeFile struct {
	Path        string `json:"path"`
	Content     string `json:"content"`
	Encoding    string `json:"encoding"`
	Permissions string `json:"permissions"`
}

// userData builds the instance's user data, or "" when the key pair alone
// does the job. Keys the key pair cannot carry (a second key, or an ECDSA
// key) go to ssh_authorized_keys; CreateRequest.Files go to write_files,
// mode 0600, owned by root.
func userData(keys []string, keyPairCarriesAll bool, files map[string][]byte) (string, error) {
	var cc cloudConfig
	if !keyPairCarriesAll {
		cc.SSHAuthorizedKeys = keys
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return "", fmt.Errorf("file path %q must be absolute and clean: %w", p, provider.ErrInvalid)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		cc.WriteFiles = append(cc.WriteFiles, writeFile{
			Path:        p,
			Content:     base64.StdEncoding.EncodeToString(files[p]),
			Encoding:    "b64",
			Permissions: "0600",
		})
	}
	if len(cc.SSHAuthorizedKeys) == 0 && len(cc.WriteFiles) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cc); err != nil {
		return "", fmt.Errorf("encode user data: %w", err)
	}
	if buf.Len() > maxUserData {
		return "", fmt.Errorf("user data for keys and files is %d bytes, EC2 allows %d: %w", buf.Len(), maxUserData, provider.ErrInvalid)
	}
	return buf.String(), nil
}
