package portal

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testSlots bounds how many of the package's tests other than the browser
// tests run at once: -test.parallel of them (go test -parallel).
var testSlots chan struct{}

// released is what -test.parallel becomes: more than the package's
// parallel tests, so that go test releases them all at once and the two
// kinds of slot (testSlots, and the browser tests' browserSlots) decide
// what runs.
const released = 1000

// ScheduleParallel, called by TestMain once the flags are parsed, takes
// -test.parallel for the package's own test slots and lets go test release
// every parallel test at once. go test hands out its slots in an order of
// the scheduler's choosing (mostly the last declared first), and the
// browser tests, the package's longest chain (two Chromiums, about 200 s of
// browser time), started anywhere from 10 to 60 s into the run, behind
// short tests; now they start at once, in their own slots, beside the
// others.
func ScheduleParallel() error {
	f := flag.Lookup("test.parallel")
	n, err := strconv.Atoi(f.Value.String())
	if err != nil || n < 1 {
		return fmt.Errorf("-test.parallel %q: want a positive number", f.Value.String())
	}
	testSlots = make(chan struct{}, n)
	return f.Value.Set(strconv.Itoa(released))
}

// Parallel marks t parallel, then waits for one of testSlots and holds it
// until t and its cleanups end. Every test of the package that is not a
// browser test calls it instead of t.Parallel; a browser test calls
// t.Parallel and takes a browser slot instead.
func Parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	TakeSlot(t, testSlots, "test")
}

// TakeSlot waits for one of slots and holds it until t and its cleanups
// end; what names the kind of slot when t ends first.
func TakeSlot(t *testing.T, slots chan struct{}, what string) {
	t.Helper()
	select {
	case slots <- struct{}{}:
		t.Cleanup(func() { <-slots })
	case <-t.Context().Done():
		t.Fatalf("no %s slot before the test ended", what)
	}
}

// parallel is Parallel, for the package's internal tests.
func parallel(t *testing.T) {
	t.Helper()
	Parallel(t)
}

// TestParallelTestsTakeASlot: a test of this package that calls t.Parallel
// itself, and is not a browser test, would run outside testSlots, beside
// every other test at once (-test.parallel is ScheduleParallel's released
// here).
func TestParallelTestsTakeASlot(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("test files: %v, %v", files, err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			var own, browser bool
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch fun := call.Fun.(type) {
				case *ast.SelectorExpr:
					own = own || fun.Sel.Name == "Parallel" && len(call.Args) == 0
				case *ast.Ident:
					browser = browser || fun.Name == "browserSlot"
				}
				return true
			})
			if own && !browser {
				t.Errorf("%s: %s calls t.Parallel; call parallel(t), which also takes one of the package's test slots", fset.Position(fn.Pos()), fn.Name.Name)
			}
		}
	}
}
