package version

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

func TestFingerprint_IsTheRunningExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Fingerprint()
	if err != nil || got != sumOf(b) {
		t.Fatalf("Fingerprint = %s, %v; want %s", got, err, sumOf(b))
	}
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
