package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toppcloud/toppcloud/internal/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden testdata/*.front.json and *.router.json files")

// goldenBackend is how a golden case describes an instance's backend: the
// conventional layout for its kind, with fields overridden when set ("-"
// clears one).
type goldenBackend struct {
	App          string `json:"app"`
	Kind         Kind   `json:"kind"`
	Upstream     string `json:"upstream"`
	StaticDir    string `json:"static_dir"`
	WritableRoot string `json:"writable_root"`
	PHPRoot      string `json:"php_root"`
	// For PHP behind a stable path: SCRIPT_FILENAME's root and the front
	// controller as php-fpm sees them.
	PHPScriptRoot      string `json:"php_script_root"`
	PHPFrontController string `json:"php_front_controller"`
}

type goldenOptions struct {
	HTTPAddr    string `json:"http_addr"`
	HTTPSAddr   string `json:"https_addr"`
	AdminSocket string `json:"admin_socket"`
	GracePeriod string `json:"grace_period"`
	Issuer      string `json:"issuer"`
	ACMEEmail   string `json:"acme_email"`
	ACMECA      string `json:"acme_ca"`
	ACMECARoot  string `json:"acme_ca_root"`
	StorageDir  string `json:"storage_dir"`
	// Balanced are OpBalance arguments, one per site.
	Balanced     []protocol.BalanceArgs `json:"balanced"`
	TrustProxies []string               `json:"trust_proxies"`
}

func override(dst *string, v string) {
	switch v {
	case "":
	case "-":
		*dst = ""
	default:
		*dst = v
	}
}

// loadGolden reads testdata/<name>.routes.json and the optional
// <name>.backends.json and <name>.options.json. Instances without a
// backend entry are python apps in the default layout.
func loadGolden(t *testing.T, name string) (*Table, map[string]Backend, Options) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".routes.json"))
	if err != nil {
		t.Fatal(err)
	}
	tb, problems, err := DecodeTable(data)
	if err != nil || len(problems) > 0 {
		t.Fatalf("%s.routes.json: %v %v", name, problems, err)
	}
	var gb map[string]goldenBackend
	if data, err := os.ReadFile(filepath.Join("testdata", name+".backends.json")); err == nil {
		if err := json.Unmarshal(data, &gb); err != nil {
			t.Fatalf("%s.backends.json: %v", name, err)
		}
	}
	backends := map[string]Backend{}
	for _, r := range tb.Served() {
		if r.Live == "" {
			continue
		}
		g, ok := gb[r.Live]
		if !ok {
			g = goldenBackend{Kind: KindPython}
		}
		if g.App == "" {
			g.App = r.App
		}
		if g.Kind == "none" {
			continue
		}
		b := nodeBackends().Backend(g.Kind, g.App, r.Live)
		b.Kind = g.Kind
		override(&b.Upstream, g.Upstream)
		override(&b.StaticDir, g.StaticDir)
		override(&b.WritableRoot, g.WritableRoot)
		override(&b.PHPRoot, g.PHPRoot)
		override(&b.PHPScriptRoot, g.PHPScriptRoot)
		override(&b.PHPFrontController, g.PHPFrontController)
		backends[r.Location.Key()] = b
	}
	var opt Options
	if data, err := os.ReadFile(filepath.Join("testdata", name+".options.json")); err == nil {
		var g goldenOptions
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatalf("%s.options.json: %v", name, err)
		}
		opt = Options{HTTPAddr: g.HTTPAddr, HTTPSAddr: g.HTTPSAddr, AdminSocket: g.AdminSocket,
			Issuer: g.Issuer, ACMEEmail: g.ACMEEmail, ACMECA: g.ACMECA, ACMECARoot: g.ACMECARoot, StorageDir: g.StorageDir}
		opt.TrustProxies = g.TrustProxies
		for _, a := range g.Balanced {
			b, err := ParseBalanced(a)
			if err != nil {
				t.Fatalf("%s.options.json: %v", name, err)
			}
			opt.Balanced = append(opt.Balanced, b)
		}
		if g.GracePeriod != "" {
			if opt.GracePeriod, err = time.ParseDuration(g.GracePeriod); err != nil {
				t.Fatal(err)
			}
		}
	}
	return tb, backends, opt
}

func goldenCases(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.routes.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".routes.json"))
	}
	return names
}

func warningsText(ws []error) []byte {
	var b bytes.Buffer
	for _, w := range ws {
		fmt.Fprintln(&b, w)
	}
	return b.Bytes()
}

// TestRender_Golden renders testdata/<case>.routes.json and compares with
// <case>.front.json and <case>.router.json (and the warnings with
// <case>.warnings.txt). Run with
// -update to rewrite them after a deliberate change, then review the diff.
func TestRender_Golden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			tb, backends, opt := loadGolden(t, name)
			got, err := Render(tb, backends, opt)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got.Front) || !json.Valid(got.Router) {
				t.Fatal("output is not valid JSON")
			}
			files := map[string][]byte{
				name + ".front.json":   got.Front,
				name + ".router.json":  got.Router,
				name + ".warnings.txt": warningsText(got.Warnings),
			}
			for file, data := range files {
				path := filepath.Join("testdata", file)
				if *update {
					if len(data) == 0 {
						_ = os.Remove(path)
						continue
					}
					if err := os.WriteFile(path, data, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if errors.Is(err, os.ErrNotExist) && len(data) == 0 {
					continue
				}
				if err != nil {
					t.Fatalf("%v (run go test -run TestRender_Golden -update)", err)
				}
				if !bytes.Equal(data, want) {
					t.Errorf("%s differs from the golden file; rerun with -update and review the diff.\n--- got:\n%s", file, data)
				}
			}
		})
	}
}

// TestRender_Deterministic: the same table, built in another order, gives
// the same bytes (map iteration must not leak into the output).
func TestRender_Deterministic(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			tb, backends, opt := loadGolden(t, name)
			first, err := Render(tb, backends, opt)
			if err != nil {
				t.Fatal(err)
			}
			shuffled := tb.Clone()
			slices.Reverse(shuffled.Routes)
			for range 20 {
				again, err := Render(shuffled, backends, opt)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(first.Front, again.Front) || !bytes.Equal(first.Router, again.Router) {
					t.Fatal("two renders of one table differ")
				}
			}
		})
	}
}

func TestRender_MissingAndBadBackends(t *testing.T) {
	tb := &Table{}
	mustSet(t, tb, "a.test", "a", "a.1")
	mustSet(t, tb, "b.test", "b", "b.1")
	mustSet(t, tb, "c.test", "c", "c.1")
	mustSet(t, tb, "d.test", "d", "d.1")
	mustSet(t, tb, "e.test", "e", "e.1")
	backends := map[string]Backend{
		"b.1": {Kind: "cobol", Upstream: "unix//x.sock"},
		"c.1": {Kind: KindPython},
		"d.1": {Kind: KindPHP, Upstream: "unix//x.sock"},
		"e.1": {Kind: KindStatic, StaticDir: "relative/static"},
	}
	got, err := Render(tb, byRoute(tb, backends), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a": "no backend", "b": "unknown backend kind", "c": "without an upstream",
		"d": "without a PHPRoot", "e": "must be absolute",
	}
	if len(got.Warnings) != len(want) {
		t.Fatalf("warnings = %v", got.Warnings)
	}
	for _, w := range got.Warnings {
		var re *RouteError
		if !errors.As(w, &re) || !strings.Contains(w.Error(), want[re.Route.App]) {
			t.Errorf("warning %v, want it to say %q", w, want[re.Route.App])
		}
	}
	// Each broken route answers 503 with the unavailable page on both
	// router servers; nothing is proxied anywhere.
	if strings.Count(string(got.Router), `"status_code": 503`) != 2*5 || strings.Contains(string(got.Router), "reverse_proxy") {
		t.Fatalf("broken routes not rendered as unavailable:\n%s", got.Router)
	}
}

func TestRender_BadOptions(t *testing.T) {
	for _, opt := range []Options{
		{HTTPAddr: "80"},
		{HTTPAddr: ":0"},
		{HTTPAddr: ":8080", HTTPSAddr: ":8080"},
		{AdminSocket: "localhost:2019"},
		{RouterAdminSocket: "run/router.sock"},
		{RouterDir: "/run/{x}"},
		{AskAddr: "0.0.0.0:2020"},
		{AskAddr: "127.0.0.1"},
		{Issuer: "letsencrypt"},
		{ACMECA: "http://acme.example/directory"},
		{ACMECARoot: "ca.pem"},
	} {
		if _, err := Render(&Table{}, nil, opt); err == nil {
			t.Errorf("Render with %+v succeeded", opt)
		}
	}
}

// TestPages_NoPlaceholders: static_response bodies go through Caddy's
// placeholder replacer, which would eat anything between braces.
func TestPages_NoPlaceholders(t *testing.T) {
	for name, page := range map[string]string{"notfound": notFoundPage, "disabled": disabledPage} {
		if strings.ContainsAny(page, "{}") {
			t.Errorf("%s page contains braces", name)
		}
		if !strings.Contains(page, "<title>") || len(page) > 4096 {
			t.Errorf("%s page: not a small HTML page", name)
		}
	}
}

// BenchmarkRender renders a node with 500 routes (100 hosts with 5 mounts
// each): the cost of every table change on the agent.
func BenchmarkRender(b *testing.B) {
	tb := &Table{}
	backends := map[string]Backend{}
	for h := range 100 {
		for m, path := range []string{"", "/blog", "/wiki", "/api", "/shop"} {
			app := fmt.Sprintf("app%d-%d", h, m)
			inst := app + ".2024-01-01_001"
			if _, err := tb.Set(loc(b, fmt.Sprintf("host%d.example.com%s", h, path)), app, inst); err != nil {
				b.Fatal(err)
			}
			backends[inst] = nodeBackends().Backend(KindPython, app, inst)
		}
	}
	b.ResetTimer()
	var size int
	for b.Loop() {
		r, err := Render(tb, byRoute(tb, backends), Options{})
		if err != nil {
			b.Fatal(err)
		}
		size = len(r.Router)
	}
	b.ReportMetric(float64(size), "bytes/config")
}

// byRoute turns backends by live instance, the way tests describe them,
// into Render's backends by route.
func byRoute(t *Table, byInstance map[string]Backend) map[string]Backend {
	out := map[string]Backend{}
	for _, r := range t.Served() {
		if b, ok := byInstance[r.Live]; ok && r.Live != "" {
			out[r.Location.Key()] = b
		}
	}
	return out
}
