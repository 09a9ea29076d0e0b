package configtmpl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRender(t *testing.T) {
	tmpl := writeTree(t, map[string]string{
		"template.ini":          "[variables]\ndb_name = The database name\nsite = The site's host name\n",
		"settings.ini.tmpl":     "[db]\nname = {{db_name}}\nurl = postgresql:///{{.db_name}}\n{{if site}}site = {{site}}{{end}}\nfile = x{{dot}}txt\n",
		"page.html.tmpl":        "<p>{{site}}</p>\n",
		"static.txt":            "copied {{db_name}} as is\n",
		"+site+/host.conf.tmpl": "host {{site}}\n",
		"sub/+db_name+.sql":     "-- schema\n",
		".hidden":               "skipped",
		".git/config":           "skipped",
	})
	tp, err := Load(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	want := []Variable{{"db_name", "The database name"}, {"site", "The site's host name"}}
	if !reflect.DeepEqual(tp.Variables, want) || !tp.HasInfo {
		t.Fatalf("Variables = %v", tp.Variables)
	}
	vars := map[string]string{"db_name": "blog", "site": "<b>&co</b>"}
	if m := tp.Missing(map[string]string{"site": "x"}); len(m) != 1 || m[0].Name != "db_name" {
		t.Errorf("Missing = %v", m)
	}
	out := filepath.Join(t.TempDir(), "conf")
	res, err := tp.Render(out, vars)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(out, "settings.ini")); got != "[db]\nname = blog\nurl = postgresql:///blog\nsite = <b>&co</b>\nfile = x.txt\n" {
		t.Errorf("settings.ini = %q", got)
	}
	if got := read(t, filepath.Join(out, "page.html")); got != "<p>&lt;b&gt;&amp;co&lt;/b&gt;</p>\n" {
		t.Errorf("page.html = %q (HTML templates escape)", got)
	}
	if got := read(t, filepath.Join(out, "static.txt")); got != "copied {{db_name}} as is\n" {
		t.Errorf("static.txt = %q", got)
	}
	if got := read(t, filepath.Join(out, "<b>&co</b>", "host.conf")); got != "host <b>&co</b>\n" {
		t.Errorf("+site+ dir: %q", got)
	}
	read(t, filepath.Join(out, "sub", "blog.sql"))
	for _, p := range []string{"template.ini", ".hidden", ".git"} {
		if _, err := os.Stat(filepath.Join(out, p)); err == nil {
			t.Errorf("%s copied", p)
		}
	}
	if st, _ := os.Stat(filepath.Join(out, "static.txt")); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v not kept", st.Mode())
	}
	if len(res.Written) != 5 || len(res.Unchanged) != 0 {
		t.Errorf("first render: %+v", res)
	}

	// Again with the same values: nothing changes. With another: the old
	// file is kept as .1, then .2.
	res, err = tp.Render(out, vars)
	if err != nil || len(res.Written) != 0 || len(res.Unchanged) != 5 {
		t.Fatalf("second render: %+v %v", res, err)
	}
	for i, name := range []string{"wiki", "shop"} {
		vars["db_name"] = name
		res, err = tp.Render(out, vars)
		if err != nil {
			t.Fatal(err)
		}
		backup := "settings.ini." + string(rune('1'+i))
		found := false
		for _, c := range res.Written {
			if c.Path == "settings.ini" && c.Backup == backup {
				found = true
			}
		}
		if !found {
			t.Errorf("render %d: %+v, want settings.ini kept as %s", i, res.Written, backup)
		}
	}
	if got := read(t, filepath.Join(out, "settings.ini.1")); !strings.Contains(got, "name = blog") {
		t.Errorf(".1 = %q", got)
	}
	if got := read(t, filepath.Join(out, "settings.ini.2")); !strings.Contains(got, "name = wiki") {
		t.Errorf(".2 = %q", got)
	}
	if got := read(t, filepath.Join(out, "settings.ini")); !strings.Contains(got, "name = shop") {
		t.Errorf("settings.ini = %q", got)
	}
}

func TestRender_ErrorsChangeNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		vars  map[string]string
		want  string
	}{
		{"unknown variable in a template", map[string]string{"a.tmpl": "{{nope}}"}, nil, `"nope" not defined`},
		{"bad syntax", map[string]string{"a.tmpl": "{{if x}}"}, map[string]string{"x": "1"}, "a.tmpl"},
		{"unknown variable in a name", map[string]string{"+who+.txt": ""}, nil, "no variable who"},
		{"a name leaving the output", map[string]string{"+who+/x": ""}, map[string]string{"who": ".."}, "not a path inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.files["ok.txt"] = "fine"
			tp, err := Load(writeTree(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			_, err = tp.Render(out, tc.vars)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a failed render wrote files")
			}
		})
	}
}

func TestLoad(t *testing.T) {
	tp, err := Load(writeTree(t, map[string]string{"a": ""}))
	if err != nil || tp.HasInfo || len(tp.Variables) != 0 {
		t.Errorf("no template.ini: %+v %v", tp, err)
	}
	if _, err := Load(writeTree(t, map[string]string{"template.ini": "[variables]\nbad-name = x\n"})); err == nil || !strings.Contains(err.Error(), "bad-name") {
		t.Errorf("bad name: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("missing directory accepted")
	}
}

func TestParseAssignments(t *testing.T) {
	got, err := ParseAssignments([]string{"a=1", "b=x=y", "c="})
	if err != nil || !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "x=y", "c": ""}) {
		t.Errorf("= %v %v", got, err)
	}
	for _, bad := range []string{"a", "=1", "a-b=1"} {
		if _, err := ParseAssignments([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
