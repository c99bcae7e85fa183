package main

import (
	"strings"
	"testing"
)

// A run with a pass, a skip with a reason and a failure: the failure's
// output and the skip's reason are printed, and counted.
func TestSummarise(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA/sub","Elapsed":9}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":2.25}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"    x_test.go:9: \n"}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"## SKIPPED: etcd not found\n"}`,
		`{"Action":"output","Package":"p","Test":"TestS","Output":"--- SKIP: TestS (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestS"}`,
		`{"Action":"output","Package":"p","Test":"TestF","Output":"    x_test.go:12: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestF","Elapsed":3}`,
		`{"Action":"fail","Package":"p","Elapsed":1.5}`,
		`not json: a build error`,
	}, "\n")
	var out strings.Builder
	r, err := summarise(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if r.passed != 2 || r.failed != 1 || len(r.skipped) != 1 || !r.pkgFailed {
		t.Fatalf("result %+v", r)
	}
	for _, want := range []string{"x_test.go:12: boom", "p TestS: x_test.go:9: etcd not found", "not json: a build error", "2 passed, 1 failed, 1 skipped\n", "FAIL\tp\t1.5s",
		"     3.0s  p TestF\n     2.2s  p TestA\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "p TestA/sub") {
		t.Errorf("a subtest is listed among the slowest:\n%s", out.String())
	}
	if strings.Contains(out.String(), "=== RUN") {
		t.Errorf("a passing test's output was printed:\n%s", out.String())
	}
}

// A package killed by -timeout: the panic is printed in the output of a
// test that never ended, with no fail event of its own; the summary shows
// it under the package's FAIL.
func TestSummariseTimeout(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestHang"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 15m0s\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t900.0s\n"}`,
		`{"Action":"fail","Package":"p","Elapsed":900}`,
	}, "\n")
	var out strings.Builder
	r, err := summarise(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !r.pkgFailed {
		t.Fatalf("result %+v", r)
	}
	for _, want := range []string{"--- TestHang did not end:\n", "panic: test timed out after 15m0s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
