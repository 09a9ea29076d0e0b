package provider

import "testing"

func TestValidateHostname(t *testing.T) {
	long := ""
	for i := 0; i < 64; i++ {
		long += "a"
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"web1", true},
		{"web-1.example.com", true},
		{"1", true},
		{"", false},
		{"Web1", false},
		{"web_1", false},
		{"web 1", false},
		{"-web", false},
		{"web-", false},
		{"web..com", false},
		{".web", false},
		{"web.", false},
		{long, false},
		{"a;rm -rf /", false},
		{"$(id)", false},
	}
	for _, tt := range tests {
		err := ValidateHostname(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateHostname(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
