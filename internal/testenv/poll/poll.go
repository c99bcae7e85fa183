// Package poll is the tests' one way to wait for something: a condition
// checked every 20 ms until it holds or a generous deadline passes, never a
// fixed sleep. It imports nothing of Portal's, so that every package's tests
// can use it (testenv, which starts Portal, cannot be imported by the
// packages Portal is made of).
package poll

import (
	"testing"
	"time"
)

// interval is how often a condition is checked.
const interval = 20 * time.Millisecond

// Until calls cond every 20 ms until it holds (true) or d has passed (false).
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// Wait polls cond until it holds, failing the test after d.
func Wait(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(d, cond) {
		t.Fatalf("waited %v for %s", d, what)
	}
}

// Holds checks cond every 20 ms for the whole of d, failing the test the
// first time it does not hold.
func Holds(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if Until(d, func() bool { return !cond() }) {
		t.Fatalf("%s stopped holding", what)
	}
}

// Receive waits for a value on ch, failing the test after d: a bare
// receive would hang until the test binary's timeout instead.
func Receive[T any](t testing.TB, d time.Duration, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %v for %s", d, what)
		panic("unreachable")
	}
}
