package provider

import (
	"fmt"
	"regexp"
	"strings"
)

var hostnameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)

// ValidateHostname checks a node name before any API call: lower-case
// letters, digits, dots and hyphens (the original's rule), and also the DNS
// rules the original did not check: at most 253 characters, labels of 1 to
// 63 characters that neither start nor end with a hyphen.
func ValidateHostname(name string) error {
	if name == "" {
		return fmt.Errorf("invalid hostname: empty")
	}
	if !hostnameRE.MatchString(name) {
		return fmt.Errorf("invalid hostname %q: use only lower-case letters, digits, dots and hyphens", name)
	}
	if len(name) > 253 {
		return fmt.Errorf("invalid hostname %q: longer than 253 characters", name)
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return fmt.Errorf("invalid hostname %q: empty label (two dots, or a leading or trailing dot)", name)
		case len(label) > 63:
			return fmt.Errorf("invalid hostname %q: label %q is longer than 63 characters", name, label)
		case strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-"):
			return fmt.Errorf("invalid hostname %q: label %q starts or ends with a hyphen", name, label)
		}
	}
	return nil
}
