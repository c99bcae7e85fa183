// Command testsummary reads `go test -json` on stdin and prints what a
// person needs: each package's result line, the whole output of every
// failed test (and of a package that failed outside its tests, such as a
// build error), and at the end the slowest top-level tests (what to look at
// when the suite grows slow), every skipped test with its reason, then a
// closing "N passed, N failed, N skipped" line. It exits 1 when a test or
// package failed, or, with -fail-on-skip (as CI runs it), when any test
// was skipped.
//
//	go test -json ./... | go run ./scripts/testsummary [-fail-on-skip]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of go test -json (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// result is what the run came to.
type result struct {
	passed, failed int
	skipped        []string // "pkg TestX: reason"
	pkgFailed      bool
	timed          []timed // top-level tests that passed or failed
}

// timed is a top-level test and how long it took.
type timed struct {
	name    string // "pkg TestX"
	elapsed float64
}

// slowest is how many of the slowest top-level tests the summary names.
const slowest = 10

func main() {
	failOnSkip := flag.Bool("fail-on-skip", false, "exit 1 when any test was skipped")
	flag.Parse()
	r, err := summarise(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if r.failed > 0 || r.pkgFailed || (*failOnSkip && len(r.skipped) > 0) {
		if *failOnSkip && len(r.skipped) > 0 {
			fmt.Fprintln(os.Stdout, "FAIL: tests were skipped (-fail-on-skip)")
		}
		os.Exit(1)
	}
}

// summarise reads events from in and writes the report to out.
func summarise(in io.Reader, out io.Writer) (result, error) {
	var r result
	outputs := map[string][]string{} // package+"\x00"+test -> its output lines
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or the build may print plain text).
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + "\x00" + e.Test
		if (e.Action == "pass" || e.Action == "fail") && e.Test != "" && !strings.Contains(e.Test, "/") {
			r.timed = append(r.timed, timed{e.Package + " " + e.Test, e.Elapsed})
		}
		switch e.Action {
		case "output":
			outputs[key] = append(outputs[key], e.Output)
		case "pass":
			if e.Test != "" {
				r.passed++
			} else {
				fmt.Fprintf(out, "ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(outputs, key)
		case "skip":
			if e.Test != "" {
				r.skipped = append(r.skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(outputs[key])))
			} else {
				fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
			}
			delete(outputs, key)
		case "fail":
			if e.Test != "" {
				r.failed++
			} else {
				r.pkgFailed = true
			}
			if e.Test == "" {
				// A package that fails outside its tests (a build error,
				// a panic, -timeout) leaves tests that never ended: their
				// output says which were running, and the panic is in one.
				printUnfinished(out, outputs, e.Package)
			}
			fmt.Fprint(out, strings.Join(outputs[key], ""))
			if e.Test == "" {
				fmt.Fprintf(out, "FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(outputs, key)
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	fmt.Fprintln(out)
	if len(r.timed) > 0 {
		sort.SliceStable(r.timed, func(i, j int) bool { return r.timed[i].elapsed > r.timed[j].elapsed })
		fmt.Fprintln(out, "SLOWEST (top-level tests; a package runs its tests one at a time unless they call t.Parallel):")
		for _, x := range r.timed[:min(slowest, len(r.timed))] {
			fmt.Fprintf(out, "  %6.1fs  %s\n", x.elapsed, x.name)
		}
	}
	if len(r.skipped) > 0 {
		sort.Strings(r.skipped)
		fmt.Fprintf(out, "SKIPPED (%d):\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Fprintf(out, "  %s\n", s)
		}
	} else {
		fmt.Fprintln(out, "SKIPPED: none")
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", r.passed, r.failed, len(r.skipped))
	return r, nil
}

// printUnfinished prints, and forgets, the output of every test of pkg
// that has not ended, in name order.
func printUnfinished(out io.Writer, outputs map[string][]string, pkg string) {
	var keys []string
	for k := range outputs {
		if p, test, _ := strings.Cut(k, "\x00"); p == pkg && test != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		_, test, _ := strings.Cut(k, "\x00")
		fmt.Fprintf(out, "--- %s did not end:\n%s", test, strings.Join(outputs[k], ""))
		delete(outputs, k)
	}
}

// skipReason is what a skipped test printed, less go test's own lines and
// banner decoration, on one line.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") || strings.Trim(l, "#") == "" {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "## SKIPPED:"))
		parts = append(parts, l)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}
