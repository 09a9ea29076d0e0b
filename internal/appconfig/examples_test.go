package appconfig

import (
	"path/filepath"
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
