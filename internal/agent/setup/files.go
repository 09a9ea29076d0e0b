package setup

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

// The system configuration files setup-node lays down, as templates.
//
//go:embed files/*
var systemFiles embed.FS

// renderFile fills the template files/name with data. The templates are
// part of the binary, so a failure is a bug, reported as an error all the
// same.
func renderFile(name string, data any) ([]byte, error) {
	src, err := systemFiles.ReadFile("files/" + name)
	if err != nil {
		return nil, fmt.Errorf("built-in file %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("built-in file %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("built-in file %s: %w", name, err)
	}
	return b.Bytes(), nil
}
