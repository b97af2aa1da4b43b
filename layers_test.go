package main

import (
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
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

// TestNodeExportsItsOwnTypes keeps node a door rather than a corridor:
// nothing the shell can reach through node's exported names (an alias, a
// field, a parameter, a result, a method) is a type of a package below
// it (protocol, mesh, manager, node/swim). node/jobs, node/attach and
// node/operator are node's own rooms and may be reached.
func TestNodeExportsItsOwnTypes(t *testing.T) {
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", "./node").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, file, ok := strings.Cut(line, "\t"); ok {
			exports[path] = file
		}
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	pkg, err := imp.Import("meshell/node")
	if err != nil {
		t.Fatal(err)
	}
	rooms := map[string]bool{"meshell/node": true, "meshell/node/jobs": true, "meshell/node/attach": true, "meshell/node/operator": true}
	for _, bad := range exposedTypes(pkg, rooms) {
		t.Errorf("node exposes %s: give node a type of its own, converted at its edge", bad)
	}
}

// exposedTypes lists the types of other meshell packages than rooms that
// pkg's exported names reach, each with the way to it.
func exposedTypes(pkg *types.Package, rooms map[string]bool) []string {
	var bad []string
	seen := map[*types.TypeName]bool{}
	var visit func(t types.Type, via string)
	visitSig := func(s *types.Signature, via string) {
		for _, tup := range []*types.Tuple{s.Params(), s.Results()} {
			for v := range tup.Variables() {
				visit(v.Type(), via)
			}
		}
	}
	visit = func(t types.Type, via string) {
		switch t := t.(type) {
		case *types.Alias:
			visit(types.Unalias(t), via)
		case *types.Named:
			obj := t.Obj()
			if obj.Pkg() == nil || !strings.HasPrefix(obj.Pkg().Path(), "meshell/") {
				return // the standard library's or a dependency's
			}
			if !rooms[obj.Pkg().Path()] {
				bad = append(bad, fmt.Sprintf("%s.%s (via %s)", obj.Pkg().Path(), obj.Name(), via))
				return
			}
			for a := range t.TypeArgs().Types() {
				visit(a, via)
			}
			if seen[obj] {
				return
			}
			seen[obj] = true
			visit(t.Underlying(), via+" → "+obj.Name())
			ms := types.NewMethodSet(types.NewPointer(t))
			for sel := range ms.Methods() {
				if sel.Obj().Exported() {
					visitSig(sel.Type().(*types.Signature), via+" → "+obj.Name()+"."+sel.Obj().Name())
				}
			}
		case *types.Pointer:
			visit(t.Elem(), via)
		case *types.Slice:
			visit(t.Elem(), via)
		case *types.Array:
			visit(t.Elem(), via)
		case *types.Chan:
			visit(t.Elem(), via)
		case *types.Map:
			visit(t.Key(), via)
			visit(t.Elem(), via)
		case *types.Signature:
			visitSig(t, via)
		case *types.Struct:
			for f := range t.Fields() {
				if f.Exported() || f.Embedded() {
					visit(f.Type(), via+"."+f.Name())
				}
			}
		case *types.Interface:
			for m := range t.Methods() {
				if m.Exported() {
					visit(m.Type(), via+"."+m.Name())
				}
			}
		}
	}
	for _, name := range pkg.Scope().Names() {
		obj := pkg.Scope().Lookup(name)
		if !obj.Exported() {
			continue
		}
		visit(obj.Type(), "node."+name)
	}
	return bad
}
