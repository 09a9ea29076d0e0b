// Package configtmpl renders an application's config.template directory
// into a configuration directory (`toppcloud create-config`), as the
// original did: the template directory's template.ini lists the
// variables in a [variables] section (name = description); every other
// file and directory is copied, with +name+ in file and directory names
// replaced by the variable's value, and files ending in .tmpl rendered
// and written without the suffix. Existing files with other content are
// kept as FILE.1 (FILE.2, ...) before being replaced.
//
// Templates are Go templates (text/template; html/template, which
// escapes, for .html and .htm files) in which every variable is also a
// function, so the original's Tempita form {{name}} reads the same, and
// {{.name}}, {{if name}}...{{end}} and pipelines work as in Go. Tempita's
// own control words ({{endif}}, {{py:...}}) do not: write Go's. The
// variable dot is "." as in the original.
package configtmpl

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/toppcloud/toppcloud/internal/atomicfile"
	"github.com/toppcloud/toppcloud/internal/ini"
)

// InfoFile is the template directory's description of its variables.
const InfoFile = "template.ini"

// Variable is one [variables] entry.
type Variable struct {
	Name        string
	Description string
}

// Template is a loaded template directory.
type Template struct {
	Dir string
	// Variables in template.ini order; none without a template.ini.
	Variables []Variable
	// HasInfo is false when there is no template.ini.
	HasInfo bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Load reads dir's template.ini.
func Load(dir string) (*Template, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("config.template: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("config.template %s is not a directory", dir)
	}
	t := &Template{Dir: dir}
	name := filepath.Join(dir, InfoFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	t.HasInfo = true
	f, err := ini.Parse(name, data)
	if err != nil {
		return nil, err
	}
	if s := f.Section("variables"); s != nil {
		for _, k := range s.Keys() {
			if !nameRE.MatchString(k.Name) {
				return nil, k.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", k.Name)
			}
			t.Variables = append(t.Variables, Variable{Name: k.Name, Description: k.Value})
		}
	}
	return t, nil
}

// ParseAssignments reads VAR=VALUE arguments.
func ParseAssignments(args []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !nameRE.MatchString(k) {
			return nil, fmt.Errorf("%q is not VAR=VALUE", a)
		}
		vars[k] = v
	}
	return vars, nil
}

// Missing lists the variables of t that vars does not set.
func (t *Template) Missing(vars map[string]string) []Variable {
	var out []Variable
	for _, v := range t.Variables {
		if _, ok := vars[v.Name]; !ok {
			out = append(out, v)
		}
	}
	return out
}

// Change is one file Render wrote.
type Change struct {
	// Path is relative to the output directory.
	Path string
	// Backup is where the previous content went ("" for a new file).
	Backup string
}

// Result says what Render did.
type Result struct {
	Written   []Change
	Unchanged []string
}

type file struct {
	src, rel string
	mode     fs.FileMode
	render   bool
	data     []byte
}

// Render renders the template into out with vars (dot is added). Every
// file is rendered before anything is written, so a template error
// changes nothing.
func (t *Template) Render(out string, vars map[string]string) (Result, error) {
	all := map[string]string{"dot": "."}
	for k, v := range vars {
		all[k] = v
	}
	var files []file
	err := filepath.WalkDir(t.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(t.Dir, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") || rel == InfoFile {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		outRel, err := substituteName(filepath.ToSlash(rel), all)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only files and directories can be in a template", p)
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		f := file{src: p, rel: outRel, mode: st.Mode().Perm()}
		if base, ok := strings.CutSuffix(outRel, ".tmpl"); ok {
			f.rel, f.render = base, true
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("config template %s: %w", t.Dir, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	for i := range files {
		f := &files[i]
		data, err := os.ReadFile(f.src)
		if err != nil {
			return Result{}, err
		}
		if f.render {
			if data, err = render(f.src, f.rel, data, all); err != nil {
				return Result{}, err
			}
		}
		f.data = data
	}
	var res Result
	for _, f := range files {
		target := filepath.Join(out, filepath.FromSlash(f.rel))
		old, err := os.ReadFile(target)
		if err == nil && bytes.Equal(old, f.data) {
			res.Unchanged = append(res.Unchanged, f.rel)
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, err
		}
		c := Change{Path: f.rel}
		if err == nil {
			if c.Backup, err = backup(target); err != nil {
				return res, err
			}
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return res, err
		}
		if err := atomicfile.WriteFile(target, f.data, f.mode); err != nil {
			return res, fmt.Errorf("write %s: %w", target, err)
		}
		res.Written = append(res.Written, c)
	}
	return res, nil
}

// backup renames target to the first free target.N and returns the
// new name, relative to target's directory.
func backup(target string) (string, error) {
	for n := 1; ; n++ {
		b := fmt.Sprintf("%s.%d", target, n)
		if _, err := os.Lstat(b); errors.Is(err, fs.ErrNotExist) {
			// Copy rather than rename: the file is replaced atomically
			// next, and never missing in between.
			if err := copyFile(target, b); err != nil {
				return "", fmt.Errorf("keep %s: %w", target, err)
			}
			return filepath.Base(b), nil
		} else if err != nil {
			return "", err
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, in)
	return errors.Join(cerr, out.Close())
}

var plusRE = regexp.MustCompile(`\+([A-Za-z_][A-Za-z0-9_]*)\+`)

// substituteName replaces +name+ in a path.
func substituteName(rel string, vars map[string]string) (string, error) {
	var missing error
	out := plusRE.ReplaceAllStringFunc(rel, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = fmt.Errorf("%s: no variable %s (set it with %s=VALUE)", rel, name, name)
			return m
		}
		return v
	})
	if missing != nil {
		return "", missing
	}
	for _, elem := range strings.Split(out, "/") {
		if elem == "" || elem == "." || elem == ".." || strings.ContainsRune(elem, 0) {
			return "", fmt.Errorf("%s: becomes %q, not a path inside the output directory", rel, out)
		}
	}
	return out, nil
}

// render executes one template; .html and .htm get html/template's
// escaping, as Tempita's HTML templates had.
func render(src, rel string, data []byte, vars map[string]string) ([]byte, error) {
	funcs := map[string]any{}
	for k, v := range vars {
		funcs[k] = func() string { return v }
	}
	var b bytes.Buffer
	ext := strings.ToLower(filepath.Ext(rel))
	if ext == ".html" || ext == ".htm" {
		t, err := htmltemplate.New(filepath.Base(src)).Funcs(funcs).Option("missingkey=error").Parse(string(data))
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", src, err)
		}
		if err := t.Execute(&b, vars); err != nil {
			return nil, fmt.Errorf("template %s: %w", src, err)
		}
		return b.Bytes(), nil
	}
	t, err := template.New(filepath.Base(src)).Funcs(funcs).Option("missingkey=error").Parse(string(data))
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", src, err)
	}
	if err := t.Execute(&b, vars); err != nil {
		return nil, fmt.Errorf("template %s: %w", src, err)
	}
	return b.Bytes(), nil
}
