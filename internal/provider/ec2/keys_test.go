package ec2

import (
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/toppcloud/toppcloud/internal/provider/providertest"
)

// Vectors computed outside Go, the way EC2's user guide verifies imported
// keys:
//
//	RSA:     ssh-keygen -e -m PKCS8 -f k.pub | openssl pkey -pubin -outform DER | openssl md5 -c
//	ED25519: cut -d' ' -f2 k.pub | base64 -d | openssl dgst -sha256 -binary | base64
//
// The RSA key's OpenSSH MD5 fingerprint (RFC 4716, what the API reference
// names) is b1:93:ee:d1:cc:05:10:c6:3c:5b:04:9e:1f:89:8d:9a: EC2 does not
// report that one.
const vectorRSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCxy1O26+EYhK1lBD+thsf0X7ojeWEq4ZBGHB1Az9mf6KaigLJx3nt/3utq/xlza1weLGwW4Rroats7h7jXAuWJCIkcQMYyOKDjQjZGub/vKsPArDwkUuv8SgLVf+vG2dUYqcfm2F9E9SbvtctDOFQmfU+X7ThM9p9XAN5zNQTunQ== vector"

func TestImportedFingerprint_Vectors(t *testing.T) {
	tests := []struct {
		key, want string
	}{
		{vectorRSA, "2a:12:27:fc:13:47:64:42:f3:be:0f:46:83:5a:74:35"},
		{providertest.TestKey, "+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU="},
	}
	for _, tt := range tests {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(tt.key))
		if err != nil {
			t.Fatal(err)
		}
		got, err := importedFingerprint(pub)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("importedFingerprint(%s) = %s, want %s", pub.Type(), got, tt.want)
		}
		if !sameFingerprint(got, tt.want) {
			t.Errorf("sameFingerprint(%s, %s) = false", got, tt.want)
		}
	}
}

func TestSameFingerprint(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU=", "+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU", true},
		{"+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU=", "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU", true},
		{"+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU=", "+diy3wvvv6tujjhbpzisf/zlda0zpmsvhdkr4uvcoqu=", false},
		{"2a:12:27:fc:13:47:64:42:f3:be:0f:46:83:5a:74:35", "2A:12:27:FC:13:47:64:42:F3:BE:0F:46:83:5A:74:35", true},
		{"2a:12:27:fc:13:47:64:42:f3:be:0f:46:83:5a:74:35", "b1:93:ee:d1:cc:05:10:c6:3c:5b:04:9e:1f:89:8d:9a", false},
	}
	for _, tt := range tests {
		if got := sameFingerprint(tt.a, tt.b); got != tt.want {
			t.Errorf("sameFingerprint(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestKeyPairName_Stable(t *testing.T) {
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(providertest.TestKey))
	// Same key, other comment: same name.
	pub2, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(providertest.TestKey[:len(providertest.TestKey)-len("toppcloud-test")] + "someone@else"))
	if keyPairName(pub) != keyPairName(pub2) {
		t.Errorf("name depends on the comment: %s vs %s", keyPairName(pub), keyPairName(pub2))
	}
	if n := keyPairName(pub); len(n) != len("toppcloud-")+16 {
		t.Errorf("keyPairName = %q", n)
	}
}
