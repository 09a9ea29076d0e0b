package appconfig

import "fmt"

// Kind is how an application is run on a node.
type Kind int

const (
	// KindUnknown is the zero Kind; a parsed Config never has it.
	KindUnknown Kind = iota
	// KindPython: a .py runner defining a WSGI application, run by
	// gunicorn through our bootstrap.
	KindPython
	// KindPaste: a Paste Deploy .ini runner, loaded by the same bootstrap.
	KindPaste
	// KindPHP: platform = php; php-fpm behind the web server.
	KindPHP
	// KindCommand: any executable that listens on $PORT.
	KindCommand
	// KindStatic: no runner, only static/; no process runs.
	KindStatic
)

var kindNames = [...]string{"unknown", "python", "paste", "php", "command", "static"}

// String returns the kind's name: python, paste, php, command or static.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// MarshalText encodes the kind by name, for JSON.
func (k Kind) MarshalText() ([]byte, error) {
	if k <= KindUnknown || int(k) >= len(kindNames) {
		return nil, fmt.Errorf("appconfig: cannot encode %v", k)
	}
	return []byte(k.String()), nil
}

// UnmarshalText decodes a kind name.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if i > 0 && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("appconfig: unknown runner kind %q", b)
}
