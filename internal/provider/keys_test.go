package provider

import (
	"errors"
	"testing"
)

func TestParseAuthorizedKeys(t *testing.T) {
	const line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"
	keys, err := ParseAuthorizedKeys("x", []string{"  " + line + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	k := keys[0]
	if k.Line != line || len(k.MD5) != 47 || k.SHA256[:7] != "SHA256:" {
		t.Errorf("parsed %+v", k)
	}
	if got := k.Name(); len(got) != len("toppcloud-")+12 || got[:10] != "toppcloud-" {
		t.Errorf("Name() = %q", got)
	}
	if _, err := ParseAuthorizedKeys("x", []string{"ssh-rsa garbage"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad key: err = %v, want ErrInvalid", err)
	}
}

func TestAPIRoot(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "https://api.example.com"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://x.test", "https://x.test"},
	}
	for _, tt := range tests {
		got, err := APIRoot(tt.in, "https://api.example.com")
		if err != nil || got != tt.want {
			t.Errorf("APIRoot(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"ftp://x", "127.0.0.1:8080", "http://"} {
		if _, err := APIRoot(bad, "https://api.example.com"); err == nil {
			t.Errorf("APIRoot(%q): want an error", bad)
		}
	}
}
