package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShellImportsOnlyNode keeps the layering: main and repl reach the
// cluster through node alone, never through a package below it.
func TestShellImportsOnlyNode(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, ".", "./repl").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{"meshell/node": true, "meshell/repl": true}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("go list printed %q, want a line for main and one for repl", out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "meshell/") && !allowed[imp] {
				t.Errorf("%s imports %s: go through meshell/node (give node a type or function for what it needs)", f[0], imp)
			}
		}
	}
}
