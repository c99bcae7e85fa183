package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/portal-go/portal/internal/testenv"
)

// errAbort is what env's Fatalf panics with; run recovers it.
var errAbort = errors.New("bench: aborted")

// env lets the harness use internal/testenv, which starts etcd, Redis, NATS
// and Portal's processes on free loopback ports for tests and takes a
// testing.TB for it. The harness is a program, not a test: env is a TB whose
// Fatalf aborts the run (run recovers), whose Cleanup functions run when the
// run ends, last first, and whose TempDir lives under one directory removed
// at the end. Only the methods below exist; testenv uses no other (the
// embedded interface is nil, so another would panic).
type env struct {
	testing.TB
	ctx     context.Context
	verbose bool
	root    string // TempDir's parent

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	n        int // TempDir's counter
}

func newEnv(ctx context.Context, verbose bool) (*env, error) {
	root, err := os.MkdirTemp("", "portal-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{ctx: ctx, verbose: verbose, root: root}
	e.Cleanup(func() { os.RemoveAll(root) })
	return e, nil
}

// withEnv runs body with a new env and ends it: its cleanups run, last
// first, and an abort (Fatalf) becomes errAbort. Both the benchmark and the
// fault run start here.
func withEnv(ctx context.Context, verbose bool, body func(e *env) error) (err error) {
	e, err := newEnv(ctx, verbose)
	if err != nil {
		return err
	}
	defer e.close()
	defer func() {
		if r := recover(); r != nil {
			if r != errAbort {
				panic(r)
			}
			err = errAbort
		}
	}()
	return body(e)
}

// portalBinary is bin, or when it is empty the tests' shared build in
// bin/test, reused (or made).
func portalBinary(e *env, bin string) string {
	if bin == "" {
		bin = testenv.BuildPortal(e)
	}
	return bin
}

// close runs the cleanups, last first.
func (e *env) close() {
	e.mu.Lock()
	cs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

// Helper does nothing: messages carry no file and line.
func (e *env) Helper() {}

// Name names the run in testenv's messages.
func (e *env) Name() string { return "bench" }

// Context ends when the run is interrupted.
func (e *env) Context() context.Context { return e.ctx }

// Cleanup registers f to run when the run ends.
func (e *env) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// TempDir returns a new directory, removed when the run ends.
func (e *env) TempDir() string {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	dir := fmt.Sprintf("%s/%03d", e.root, n)
	if err := os.Mkdir(dir, 0o700); err != nil {
		e.Fatalf("TempDir: %v", err)
	}
	return dir
}

// Log and Logf print to stderr with -v.
func (e *env) Log(args ...any) {
	if e.verbose {
		fmt.Fprintln(os.Stderr, args...)
	}
}

// Logf prints to stderr with -v.
func (e *env) Logf(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// Errorf prints and marks the run failed.
func (e *env) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	e.Fail()
}

// Error prints and marks the run failed.
func (e *env) Error(args ...any) { e.Errorf("%s", fmt.Sprint(args...)) }

// Fail marks the run failed.
func (e *env) Fail() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed = true
}

// Failed tells whether anything failed.
func (e *env) Failed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failed
}

// Fatalf prints and aborts the run. Call it only from run's goroutine.
func (e *env) Fatalf(format string, args ...any) {
	e.Errorf(format, args...)
	panic(errAbort)
}

// Fatal prints and aborts the run.
func (e *env) Fatal(args ...any) { e.Fatalf("%s", fmt.Sprint(args...)) }

// FailNow aborts the run.
func (e *env) FailNow() { e.Fatalf("failed") }

// Skipf aborts: a server the benchmark needs is missing (testenv.Require).
func (e *env) Skipf(format string, args ...any) { e.Fatalf(format, args...) }

// Skip aborts.
func (e *env) Skip(args ...any) { e.Fatal(args...) }

// SkipNow aborts.
func (e *env) SkipNow() { e.FailNow() }

// Skipped is always false: a skip aborts.
func (e *env) Skipped() bool { return false }
