package ec2

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider"
)

// keyPairPrefix starts the name of every key pair the driver imports.
const keyPairPrefix = "toppcloud-"

// importable reports whether EC2's ImportKeyPair takes keys of this type.
// EC2 key pairs are RSA or ED25519; other keys reach the node through
// cloud-init user data only.
func importable(pub ssh.PublicKey) bool {
	return pub.Type() == ssh.KeyAlgoRSA || pub.Type() == ssh.KeyAlgoED25519
}

// keyPairName is the name the driver gives the EC2 key pair holding pub:
// "toppcloud-" and the first 16 hex digits of the SHA-256 of the key's wire
// encoding. The name follows from the key, so the same key is imported once
// and found again by name.
func keyPairName(pub ssh.PublicKey) string {
	sum := sha256.Sum256(pub.Marshal())
	return keyPairPrefix + hex.EncodeToString(sum[:])[:16]
}

// importedFingerprint returns the fingerprint EC2 reports for pub once
// imported with ImportKeyPair. EC2 does not use OpenSSH's fingerprints:
//   - RSA: the MD5 of the DER-encoded SubjectPublicKeyInfo (what
//     `openssl pkey -pubin -outform DER | openssl md5 -c` prints), as
//     colon-separated lower-case hex. The API reference says "RFC 4716
//     section 4" (MD5 of the SSH wire blob), but EC2 has been observed to
//     hash the DER form, as its user guide's verification steps do.
//   - ED25519: the SHA-256 of the SSH wire blob in padded standard base64,
//     without OpenSSH's "SHA256:" prefix.
func importedFingerprint(pub ssh.PublicKey) (string, error) {
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return "", fmt.Errorf("rsa key without crypto key")
		}
		der, err := x509.MarshalPKIXPublicKey(cpk.CryptoPublicKey())
		if err != nil {
			return "", fmt.Errorf("encode rsa key: %w", err)
		}
		sum := md5.Sum(der)
		parts := make([]string, len(sum))
		for i, b := range sum {
			parts[i] = hex.EncodeToString([]byte{b})
		}
		return strings.Join(parts, ":"), nil
	case ssh.KeyAlgoED25519:
		sum := sha256.Sum256(pub.Marshal())
		return base64.StdEncoding.EncodeToString(sum[:]), nil
	}
	return "", fmt.Errorf("ec2 key pairs cannot hold %s keys", pub.Type())
}

// sameFingerprint compares fingerprints as EC2 and we write them, ignoring
// case and base64 padding (tools differ on both).
func sameFingerprint(a, b string) bool {
	norm := func(s string) string {
		return strings.TrimRight(strings.TrimPrefix(strings.TrimSpace(s), "SHA256:"), "=")
	}
	a, b = norm(a), norm(b)
	if strings.Contains(a, ":") || strings.Contains(b, ":") {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// parseKeys parses authorized_keys lines; options and comments are allowed
// and kept out of what we send.
func parseKeys(lines []string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("authorized key %d: %w", i+1, err)
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

// ensureKeyPair makes sure EC2 holds pub as a key pair and returns its
// name. An existing key pair of that name is reused only when its
// fingerprint is pub's; any other content under our name is an error rather
// than something we overwrite. Key pairs are shared by every node made
// with the same key and are never deleted by the driver.
func (d *Driver) ensureKeyPair(ctx context.Context, pub ssh.PublicKey) (string, error) {
	name := keyPairName(pub)
	want, err := importedFingerprint(pub)
	if err != nil {
		return "", err
	}
	check := func() (found bool, err error) {
		out, err := d.api.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}})
		if errorCode(err) == "InvalidKeyPair.NotFound" {
			return false, nil
		}
		if err != nil {
			return false, apiError("describe key pair "+name, err)
		}
		for _, kp := range out.KeyPairs {
			if aws.ToString(kp.KeyName) != name {
				continue
			}
			if !sameFingerprint(aws.ToString(kp.KeyFingerprint), want) {
				return true, fmt.Errorf("ec2: key pair %s exists with fingerprint %s but the key has %s; delete that key pair in the EC2 console and retry: %w",
					name, aws.ToString(kp.KeyFingerprint), want, provider.ErrExists)
			}
			return true, nil
		}
		return false, nil
	}
	found, err := check()
	if err != nil || found {
		return name, err
	}
	material := ssh.MarshalAuthorizedKey(pub)
	_, err = d.api.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: material})
	if errorCode(err) == "InvalidKeyPair.Duplicate" {
		// Another toppcloud imported it between our look and our import.
		found, err = check()
		if err == nil && !found {
			err = fmt.Errorf("ec2: key pair %s reported as duplicate but not found", name)
		}
		return name, err
	}
	if err != nil {
		return "", apiError("import key pair "+name, err)
	}
	return name, nil
}

var errNoKeys = errors.New("no authorized keys given: a new EC2 node would be unreachable")
