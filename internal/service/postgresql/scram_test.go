package postgresql

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestScram_KnownAnswer(t *testing.T) {
	// RFC 7677 section 3: password "pencil", this salt, 4096 iterations;
	// the server's signature over the example exchange must come out of
	// the ServerKey in our verifier.
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramWith("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(v, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"), ":")
	if len(parts) != 2 {
		t.Fatalf("verifier %s", v)
	}
	serverKey, _ := base64.StdEncoding.DecodeString(parts[1])
	auth := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte(auth))
	if got := base64.StdEncoding.EncodeToString(m.Sum(nil)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", got)
	}
	if !scramMatches(v, "pencil") || scramMatches(v, "pencil2") {
		t.Error("match is wrong")
	}
}

func TestScram_RoundTrip(t *testing.T) {
	v1, _ := scramVerifier("secret")
	v2, _ := scramVerifier("secret")
	if v1 == v2 {
		t.Error("two verifiers with the same salt")
	}
	for _, v := range []string{v1, v2} {
		if !scramMatches(v, "secret") {
			t.Errorf("%s does not match", v)
		}
	}
	for _, bad := range []string{"", "md5abc", "SCRAM-SHA-256$x:y$z:w", "SCRAM-SHA-256$4096:!!$a:b", v1[:len(v1)-4]} {
		if scramMatches(bad, "secret") {
			t.Errorf("%q matched", bad)
		}
	}
}
