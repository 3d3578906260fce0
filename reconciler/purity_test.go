package reconciler

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureCoreDoesNoIO keeps this package what doc.go says it is: Plan and
// its rules see the node only through Desired and Observed and time only
// through the now they are given. Every import of a non-test file must be
// on the list below (no os, io, net, syscall, log, no package of this
// module: the IO lives in reconciler/shell), and no file reads the clock or
// sleeps. A new import that does no IO is added here on purpose.
func TestPureCoreDoesNoIO(t *testing.T) {
	allowed := map[string]bool{
		"encoding/json":                         true, // hash.go: the spec hash
		"fmt":                                   true,
		"hash/fnv":                              true,
		"sort":                                  true,
		"strconv":                               true,
		"strings":                               true,
		"sync":                                  true, // hash.go: a pool of encoders
		"time":                                  true, // time.Time and Duration values; the clock is checked below
		"k8s.io/api/core/v1":                    true,
		"k8s.io/apimachinery/pkg/apis/meta/v1":  true,
		"k8s.io/apimachinery/pkg/types":         true,
		"k8s.io/apimachinery/pkg/util/duration": true,
	}
	// Functions of package time that read the clock or wait.
	clock := map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
		"AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		timeName := ""
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %q: the pure core imports no IO package (put the IO in reconciler/shell, or add a pure import to the list in this test)", name, path)
			}
			if path == "time" {
				timeName = "time"
				if imp.Name != nil {
					timeName = imp.Name.Name
				}
			}
		}
		if timeName == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && clock[sel.Sel.Name] {
				t.Errorf("%s: time.%s reads the clock or waits: take now as an argument", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no source file found: the test must run in the package's folder")
	}
}
