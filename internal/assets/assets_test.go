package assets

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	changed, err := Install(dir)
	if err != nil || !changed {
		t.Fatalf("first install: changed %v, %v", changed, err)
	}
	for _, rel := range []string{ScriptRunner, GunicornConfig, PHPPrepend, "python/" + PythonModule + ".py",
		"python/silversupport/secret.py", "python/silversupport/env.py"} {
		st, err := os.Stat(Path(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %o", rel, st.Mode().Perm())
		}
	}
	changed, err = Install(dir)
	if err != nil || changed {
		t.Errorf("second install: changed %v, %v", changed, err)
	}
	// A stale file goes, an edited one is restored, caches stay.
	stale := filepath.Join(dir, "python", "old_module.py")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(Path(dir, PHPPrepend), []byte("edited"), 0o644)
	cache := filepath.Join(dir, "python", "__pycache__", "x.pyc")
	os.MkdirAll(filepath.Dir(cache), 0o755)
	os.WriteFile(cache, []byte("x"), 0o644)
	changed, err = Install(dir)
	if err != nil || !changed {
		t.Fatalf("third install: changed %v, %v", changed, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale file kept")
	}
	if _, err := os.Stat(cache); err != nil {
		t.Error("byte-code cache removed")
	}
	want, _ := fs.ReadFile(FS(), PHPPrepend)
	if got, _ := os.ReadFile(Path(dir, PHPPrepend)); string(got) != string(want) {
		t.Error("edited file not restored")
	}
}

// TestPythonCompiles byte-compiles every Python file with the node's
// interpreter, so a syntax error never reaches a node.
func TestPythonCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := t.TempDir()
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-m", "compileall", "-q", filepath.Join(dir, PythonDir)).CombinedOutput()
	if err != nil {
		t.Fatalf("compileall: %v\n%s", err, out)
	}
}

func TestPHPLints(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not installed")
	}
	data, _ := fs.ReadFile(FS(), PHPPrepend)
	f := filepath.Join(t.TempDir(), "prepend.php")
	os.WriteFile(f, data, 0o644)
	if out, err := exec.Command(php, "-l", f).CombinedOutput(); err != nil {
		t.Fatalf("php -l: %v\n%s", err, out)
	}
}
