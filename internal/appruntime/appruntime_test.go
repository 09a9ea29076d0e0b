package appruntime

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/toppcloud/toppcloud/internal/appconfig"
)

func TestProcessEnv(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{EnvInstanceDir: "/app", EnvSecretFile: "/s"}
		maps.Copy(m, extra)
		return m
	}
	for _, tc := range []struct {
		name string
		p    Process
		want map[string]string
	}{
		{"python", Process{Kind: appconfig.KindPython, Runner: "main.py", RunnerName: "app", Token: "t"},
			base(map[string]string{EnvRunnerKind: "python", EnvRunner: "main.py", EnvRunnerName: "app", EnvInternalToken: "t"})},
		{"paste without name", Process{Kind: appconfig.KindPaste, Runner: "config.ini"},
			base(map[string]string{EnvRunnerKind: "paste", EnvRunner: "config.ini"})},
		{"php", Process{Kind: appconfig.KindPHP, Runner: "index.php", PHPRoot: "web"},
			base(map[string]string{EnvRunner: "index.php", EnvPHPRoot: "web"})},
		{"command", Process{Kind: appconfig.KindCommand, Runner: "server", Port: 20001},
			base(map[string]string{"PORT": "20001", "HOST": "127.0.0.1"})},
		{"static", Process{Kind: appconfig.KindStatic}, base(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Dir, tc.p.SecretFile = "/app", "/s"
			if got := tc.p.Env(); !maps.Equal(got, tc.want) {
				t.Errorf("Env() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckEnv(t *testing.T) {
	for _, tc := range []struct {
		env map[string]string
		ok  bool
	}{
		{map[string]string{"CONFIG_FILES": "/x", "_a1": ""}, true},
		{map[string]string{"1A": "x"}, false},
		{map[string]string{"A-B": "x"}, false},
		{map[string]string{"A": "x\ny"}, false},
		{map[string]string{"A": "x\x00"}, false},
	} {
		if err := CheckEnv(tc.env); (err == nil) != tc.ok {
			t.Errorf("CheckEnv(%q) = %v, want ok=%v", tc.env, err, tc.ok)
		}
	}
	if !IsConfigKey("CONFIG_PG_DBNAME") || IsConfigKey("CONFIG_pg") || IsConfigKey("SILVER_X") {
		t.Error("IsConfigKey")
	}
}

func TestIsPythonScript(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{filepath.Join(dir, "missing.py"), true},
		{write("migrate", "#!/usr/bin/env python3\nprint(1)\n"), true},
		{write("hello.sh", "#!/bin/sh\necho python\n"), false},
		{write("noshebang", "python\n"), false},
		{filepath.Join(dir, "missing"), false},
	} {
		if got := IsPythonScript(tc.path); got != tc.want {
			t.Errorf("IsPythonScript(%s) = %v, want %v", filepath.Base(tc.path), got, tc.want)
		}
	}
}

func TestNewToken(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if len(a) != 64 || a == b {
		t.Errorf("tokens %q %q", a, b)
	}
}
