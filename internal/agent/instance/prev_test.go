package instance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toppcloud/toppcloud/internal/agent/layout"
)

func TestPrevUnits_Golden(t *testing.T) {
	l := layout.Default()
	for name, inst := range goldenInstances(t, l) {
		golden(t, "prev-"+name+".service.conf", inst.prevServiceDropIn())
	}
	inst := goldenInstances(t, l)["python"]
	if got, want := string(inst.prevAppDropIn()), "BindsTo=toppcloud-prev@blog.2024-01-02_001.service\n"; !strings.HasSuffix(got, want) {
		t.Errorf("prev.conf = %q, want it to end in %q", got, want)
	}
	// The prev socket fits a unix socket path wherever the instance's
	// own does.
	if p, s := PrevSocketPath(l, inst.Name), l.Socket(inst.Name); len(p) > len(s) {
		t.Errorf("prev socket %s is longer than %s", p, s)
	}
}

func TestPrevUnits_SystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	l := layout.Default()
	if _, err := os.Stat(l.SocketProxyd); err != nil {
		t.Skip(l.SocketProxyd + " is not installed")
	}
	for name, inst := range goldenInstances(t, l) {
		dir := t.TempDir()
		svc := filepath.Join(dir, PrevServiceName(inst.Name))
		sock := filepath.Join(dir, PrevSocketName(inst.Name))
		files := map[string][]byte{
			svc:                                     prevServiceUnit(l),
			filepath.Join(svc+".d", "x.conf"):       inst.prevServiceDropIn(),
			sock:                                    prevSocketUnit(l),
			filepath.Join(dir, UnitName(inst.Name)): TemplateUnit(l),
			// A command app's prev proxy requires its own proxy's socket.
			filepath.Join(dir, ProxySocketName(inst.Name)):  proxySocketUnit(l),
			filepath.Join(dir, ProxyServiceName(inst.Name)): proxyServiceUnit(l),
		}
		for p, data := range files {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(analyze, "verify", sock, svc).CombinedOutput()
		// The app unit has no drop-in here (no ExecStart): only the
		// prev units' own lines are checked.
		var bad []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "toppcloud-app@") && !strings.Contains(line, "ExecStart=") {
				bad = append(bad, line)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: systemd-analyze verify: %v\n%s", name, err, strings.Join(bad, "\n"))
		}
	}
}
