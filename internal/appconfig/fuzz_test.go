package appconfig

import "testing"

// FuzzParse checks that no app.ini makes Parse panic and that a config it
// accepts has a known runner kind and a valid app name.
// Run with: go test -fuzz=FuzzParse ./internal/appconfig
func FuzzParse(f *testing.F) {
	f.Add([]byte(base + "runner = main.py#app\nupdate_fetch =\n  /x\n  script:bin/y 'a b'\npackages = a\n  b\n"))
	f.Add([]byte(base + "platform = php\nrunner = index.php\nphp_root = www\nservice.files =\nconfig.checker = a.b:c\n"))
	f.Add([]byte("[production]\napp_name = X\nversion = 1\ndefault_host = h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("app.ini", data)
		if err != nil {
			return
		}
		if c.Runner.Kind == KindUnknown {
			t.Fatalf("accepted config has no runner kind: %+v", c.Runner)
		}
		if err := CheckAppName(c.AppName); err != nil {
			t.Fatalf("accepted app name: %v", err)
		}
	})
}
