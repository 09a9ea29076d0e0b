package openstack

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// Injection says how CreateNode gets CreateRequest.AuthorizedKeys (and
// CreateRequest.Files) onto a new server.
type Injection int

const (
	// InjectPersonality uploads /root/.ssh/authorized_keys and the request's
	// Files as Nova personality files, written into the image by the
	// hypervisor before first boot. This is Rackspace's way (the seed's).
	InjectPersonality Injection = iota + 1
	// InjectKeypair imports the first key as a Nova keypair (reusing one
	// with the same fingerprint), passes its key_name, and also sends the
	// cloud-init user data of InjectUserData so every key reaches root.
	InjectKeypair
	// InjectUserData sends only cloud-init user data: disable_root false,
	// ssh_authorized_keys with every key and write_files with the Files.
	// For clouds whose keypair API is missing or forbidden.
	InjectUserData
)

// maxPersonality is Nova's default injected_files quota (Rackspace's too);
// checked before the request so the user sees which files are too many.
const maxPersonality = 5

// maxPersonalityPath is the Compute API's limit on a personality path. The
// limit on contents is the provider's (maxPersonalitySize); Nova's refusal
// names it.
const maxPersonalityPath = 255

// authorizedKeys is the authorized_keys file for keys: one per line.
func authorizedKeys(keys []string) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			b.WriteString(k)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// personality builds the personality files: root's authorized_keys, then
// the request's files in path order. A request file at the same path is
// appended to the keys rather than replacing them.
func personality(req provider.CreateRequest) (servers.Personality, error) {
	const keyPath = "/root/.ssh/authorized_keys"
	files := map[string][]byte{}
	if keys := authorizedKeys(req.AuthorizedKeys); len(keys) > 0 {
		files[keyPath] = keys
	}
	for p, c := range req.Files {
		if !strings.HasPrefix(p, "/") || len(p) > maxPersonalityPath {
			return nil, fmt.Errorf("file %q: the path must be absolute and at most %d bytes: %w", p, maxPersonalityPath, provider.ErrInvalid)
		}
		files[p] = append(files[p], c...)
	}
	if len(files) > maxPersonality {
		return nil, fmt.Errorf("%d files to place at creation, the API takes at most %d: %w", len(files), maxPersonality, provider.ErrInvalid)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var out servers.Personality
	for _, p := range paths {
		out = append(out, &servers.File{Path: p, Contents: files[p]})
	}
	return out, nil
}

// cloudConfig is the cloud-init user data for keys and files. It is JSON
// after the "#cloud-config" line: JSON is valid YAML, and it needs no YAML
// library on either side. disable_root false makes cloud-init put the keys
// (these and the keypair's) into root's authorized_keys as they are,
// instead of the "please log in as debian" stub it writes by default.
func cloudConfig(keys []string, files map[string][]byte) ([]byte, error) {
	type writeFile struct {
		Path        string `json:"path"`
		Encoding    string `json:"encoding"`
		Content     string `json:"content"`
		Permissions string `json:"permissions"`
	}
	cfg := struct {
		DisableRoot bool        `json:"disable_root"`
		Keys        []string    `json:"ssh_authorized_keys,omitempty"`
		WriteFiles  []writeFile `json:"write_files,omitempty"`
	}{}
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			cfg.Keys = append(cfg.Keys, k)
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("file %q: path must be absolute: %w", p, provider.ErrInvalid)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		perm := "0644"
		if strings.Contains(p, "/.ssh/") {
			perm = "0600"
		}
		cfg.WriteFiles = append(cfg.WriteFiles, writeFile{Path: p, Encoding: "b64", Content: base64.StdEncoding.EncodeToString(files[p]), Permissions: perm})
	}
	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// KeypairName is the name toppcloud gives a keypair it imports: a prefix of
// the key's MD5 fingerprint (the form Nova reports), so the same key always
// gets the same name.
func KeypairName(md5Fingerprint string) string {
	hex := strings.ReplaceAll(md5Fingerprint, ":", "")
	if len(hex) > 16 {
		hex = hex[:16]
	}
	return "toppcloud-" + hex
}

// ensureKeypair returns the name of a keypair holding key: an existing one
// with the same fingerprint or key, else a new "toppcloud-<fp>" one. The
// keypair is kept after the server is gone (and after a failed create), so
// the next create reuses it instead of piling up copies.
func (d *Driver) ensureKeypair(ctx context.Context, sc *gophercloud.ServiceClient, key string) (string, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		return "", fmt.Errorf("authorized key %q is not a public key line: %w", shorten(key), provider.ErrInvalid)
	}
	fp := ssh.FingerprintLegacyMD5(pub)
	blob := string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub)))
	page, err := keypairs.List(sc, nil).AllPages(ctx)
	if err != nil {
		return "", d.apiError(ctx, "list key pairs", err)
	}
	existing, err := keypairs.ExtractKeyPairs(page)
	if err != nil {
		return "", d.apiError(ctx, "list key pairs", err)
	}
	for _, kp := range existing {
		if kp.Fingerprint == fp || sameKey(kp.PublicKey, blob) {
			return kp.Name, nil
		}
	}
	name := KeypairName(fp)
	_, err = keypairs.Create(ctx, sc, keypairs.CreateOpts{Name: name, PublicKey: blob}).Extract()
	if err != nil {
		return "", d.apiError(ctx, "import key pair "+name, err)
	}
	return name, nil
}

// sameKey compares two authorized_keys lines by type and key, ignoring
// comments.
func sameKey(line, blob string) bool {
	f := strings.Fields(line)
	b := strings.Fields(blob)
	return len(f) >= 2 && len(b) >= 2 && f[0] == b[0] && f[1] == b[1]
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
