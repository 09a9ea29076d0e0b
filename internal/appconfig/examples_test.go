package appconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples_Valid keeps the shipped examples deployable: each parses
// and validates without warnings, with the runner kind its README claims.
func TestExamples_Valid(t *testing.T) {
	want := map[string]Kind{"python": KindPython, "php": KindPHP, "static": KindStatic, "command": KindCommand}
	for dir, kind := range want {
		t.Run(dir, func(t *testing.T) {
			path := filepath.Join("..", "..", "examples", dir)
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(path); err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
			if cfg.Runner.Kind != kind {
				t.Errorf("kind = %v, want %v", cfg.Runner.Kind, kind)
			}
		})
	}
}

// TestREADME_JobsExample keeps the README's Jobs example working when
// pasted into an app.ini.
func TestREADME_JobsExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, jobs, _ := strings.Cut(string(readme), "\n## Jobs\n")
	_, block, ok := strings.Cut(jobs, "```ini\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no ini block in the README's Jobs section")
	}
	c, err := Parse("app.ini", []byte("[production]\napp_name = blog\nrunner = main.py\n"+block))
	if err != nil {
		t.Fatalf("%s\n%v", block, err)
	}
	for _, w := range c.Warnings {
		t.Errorf("warning: %s", w)
	}
	if len(c.Crons) != 2 || len(c.Workers) != 1 {
		t.Errorf("crons %+v, workers %+v", c.Crons, c.Workers)
	}
}
