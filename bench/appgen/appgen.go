// Package appgen writes generated applications for the benchmarks: a
// tree of source-like text and incompressible files, deterministic for a
// seed, so bench/transfer and bench/deploy measure the same kind of tree.
package appgen

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Stats describe a generated application.
type Stats struct {
	Files       int
	Bytes       int64
	RandomBytes int64
}

// ChangedFile is the 10 KB file ChangeFile rewrites.
const ChangedFile = "app/views/changed.py"

// words make the text files: source-like lines that compress about as
// well as real code (zstd: 3-5x).
var words = strings.Fields(`def return self import from class if else elif for in while try except
finally with as yield lambda None True False request response render template context user
session query filter order_by get post put delete json dumps loads status headers path
config settings logger debug info warning error value values items keys append extend
len range str int float dict list tuple set open read write close os sys time datetime
function var const let this document window addEventListener querySelector innerHTML
margin padding color background border display flex grid width height font size px em`)

// Generate writes an application of about files files and total bytes
// under dir: mostly small source-like text files in ~150 directories,
// some medium ones, and random (incompressible, like images and archives)
// files making up about 40% of the bytes. Deterministic for a seed. With
// app set it is also a real WSGI application of that name (app.ini and
// app.py), which an update starts; without, app.ini is filler text.
func Generate(dir, app string, files int, total int64, seed uint64) (Stats, error) {
	return GenerateMix(dir, app, files, total, 0.4, seed)
}

// GenerateMix is Generate with random (between 0 and 1) the share of the
// bytes in incompressible files.
func GenerateMix(dir, app string, files int, total int64, random float64, seed uint64) (Stats, error) {
	if random < 0 || random > 1 {
		return Stats{}, fmt.Errorf("appgen: random share %g is not between 0 and 1", random)
	}
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var dirs []string
	for i := range 150 {
		d := fmt.Sprintf("app/mod%02d", i%30)
		if i >= 30 {
			d = fmt.Sprintf("%s/sub%02d", d, i/30)
		}
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "static/img", "static/js", "static/css", "lib/python/pkg")

	type spec struct {
		path   string
		size   int64
		random bool
	}
	var specs []spec
	specs = append(specs, spec{path: "app.ini", size: 120}, spec{path: ChangedFile, size: 10 << 10})
	textBudget := int64(float64(total) * (1 - random))
	randomBudget := total - textBudget
	nRandom := files / 10
	nText := files - nRandom - len(specs)
	// Text: sizes from a skewed distribution, scaled to the budget.
	textSizes := make([]float64, nText)
	var sum float64
	for i := range textSizes {
		x := rnd.Float64()
		textSizes[i] = 300 + 60000*x*x*x
		sum += textSizes[i]
	}
	budget := float64(textBudget - specs[0].size - specs[1].size)
	for i, s := range textSizes {
		d := dirs[rnd.IntN(len(dirs)-3)]
		ext := []string{".py", ".html", ".js", ".css", ".txt"}[rnd.IntN(5)]
		specs = append(specs, spec{path: fmt.Sprintf("%s/f%04d%s", d, i, ext), size: int64(s / sum * budget)})
	}
	randSizes := make([]float64, nRandom)
	sum = 0
	for i := range randSizes {
		x := rnd.Float64()
		randSizes[i] = 1000 + 1e6*x*x*x*x
		sum += randSizes[i]
	}
	for i, s := range randSizes {
		d := []string{"static/img", "static/js", "lib/python/pkg"}[rnd.IntN(3)]
		specs = append(specs, spec{path: fmt.Sprintf("%s/blob%04d.bin", d, i), size: int64(s / sum * float64(randomBudget)), random: true})
	}

	if app != "" {
		// The application itself: the generated app.ini is replaced by
		// a real one, and a runner is added.
		specs[0].size = 0
		specs = append(specs, spec{path: "app.py", size: 0})
	}
	var st Stats
	// Checked-out trees are older than a few seconds: set mtimes an hour
	// back, or the manifest cache would rightly distrust files written
	// within its racy window and rehash them on the next update.
	past := time.Now().Add(-time.Hour)
	for _, sp := range specs {
		p := filepath.Join(dir, filepath.FromSlash(sp.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return st, err
		}
		var data []byte
		switch {
		case app != "" && sp.path == "app.ini":
			data = []byte("[production]\napp_name = " + app + "\nrunner = app.py\n")
		case app != "" && sp.path == "app.py":
			data = []byte(appPy)
		case sp.random:
			data = randomBytes(rnd, sp.size)
			st.RandomBytes += sp.size
		default:
			data = text(rnd, sp.size)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return st, err
		}
		if err := os.Chtimes(p, past, past); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += int64(len(data))
	}
	return st, nil
}

func randomBytes(rnd *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rnd.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func text(rnd *rand.Rand, n int64) []byte {
	var b strings.Builder
	for int64(b.Len()) < n {
		indent := rnd.IntN(4) * 4
		b.WriteString(strings.Repeat(" ", indent))
		for k := 2 + rnd.IntN(8); k > 0; k-- {
			b.WriteString(words[rnd.IntN(len(words))])
			if rnd.IntN(5) == 0 {
				fmt.Fprintf(&b, "_%d", rnd.IntN(100))
			}
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()[:n])
}

// ChangeFile rewrites ChangedFile with new text of the same size and
// returns that size.
func ChangeFile(dir string, seed uint64) (int64, error) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	data := text(rnd, 10<<10)
	return int64(len(data)), os.WriteFile(filepath.Join(dir, filepath.FromSlash(ChangedFile)), data, 0o644)
}

// appPy is the generated application's runner.
const appPy = `def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'bench app\n']
`
