package agent

import (
	"slices"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/instance"
	"github.com/toppcloud/toppcloud/internal/agent/layout"
	"github.com/toppcloud/toppcloud/internal/protocol"
)

func TestSandboxProperties(t *testing.T) {
	l := layout.Default()
	dropIn := []byte("# comment\n[Service]\nType=notify\nUser=app-blog\nGroup=app-blog\nEnvironmentFile=/etc/x\nWorkingDirectory=/var/www/blog.1\n" +
		"ExecStartPre=+/usr/bin/install -d x\nReadWritePaths=-/run/toppcloud/blog.1\nExecStart=/usr/bin/gunicorn\nKillSignal=SIGTERM\n" +
		"BindReadOnlyPaths=/var/www/blog.1 /var/lib/toppcloud/secret\nBindPaths=-/var/lib/toppcloud/apps/blog/files\n")
	props := sandboxProperties(instance.TemplateUnit(l), dropIn)
	for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=", "PrivateTmp=yes",
		"BindPaths=-/var/lib/toppcloud/apps/blog/files", "BindReadOnlyPaths=/var/www/blog.1 /var/lib/toppcloud/secret"} {
		if !slices.Contains(props, want) {
			t.Errorf("no %q in %q", want, props)
		}
	}
	if !slices.ContainsFunc(props, func(p string) bool { return strings.HasPrefix(p, "TemporaryFileSystem=") }) {
		t.Error("the template's hidden directories are missing")
	}
	for _, p := range props {
		k, _, _ := strings.Cut(p, "=")
		if slices.Contains(runExcluded, k) {
			t.Errorf("%s was passed on", p)
		}
		if strings.HasPrefix(p, "Description") || strings.HasPrefix(p, "WantedBy") || strings.HasPrefix(p, "StartLimit") {
			t.Errorf("a [Unit] or [Install] line was passed on: %s", p)
		}
	}
}

func TestScriptStatus(t *testing.T) {
	for _, tc := range []struct {
		show     string
		fallback int
		want     int
	}{
		{"ExecMainCode=1\nExecMainStatus=7\n", 1, 7},
		{"ExecMainCode=2\nExecMainStatus=15\n", 1, 143},
		{"ExecMainCode=0\nExecMainStatus=0\n", 1, 1},
		{"", -1, protocol.ExitFailed},
	} {
		if got := scriptStatus(tc.show, tc.fallback); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.show, got, tc.want)
		}
	}
}
