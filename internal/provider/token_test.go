package provider

import (
	"strings"
	"testing"
)

func TestDecodeTokenOptions(t *testing.T) {
	const def = "https://api.example.com"
	for _, tc := range []struct {
		name     string
		settings Settings
		token    string
		root     string
		err      string
	}{
		{"defaults", Settings{"secret": "  tok\n", "region": "fra1"}, "tok", def, ""},
		{"endpoint", Settings{"secret": "tok", "endpoint": "http://127.0.0.1:8080/"}, "tok", "http://127.0.0.1:8080", ""},
		{"no token", Settings{"region": "fra1"}, "", "", "no API key: set secret in the section or $EXAMPLE_KEY"},
		{"blank token", Settings{"secret": " \t"}, "", "", "no API key"},
		{"bad endpoint", Settings{"secret": "tok", "endpoint": "api.example.com"}, "", "", "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, root, err := DecodeTokenOptions(tc.settings, def, "API key", "EXAMPLE_KEY")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Token != tc.token || root != tc.root || o.Region != tc.settings["region"] {
				t.Errorf("got %+v root %q", o, root)
			}
		})
	}
}
