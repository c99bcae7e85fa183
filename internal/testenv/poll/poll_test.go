package poll

import (
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	if !Until(5*time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Until stopped after %d calls, want 3", n)
	}
	began := time.Now()
	if Until(100*time.Millisecond, func() bool { return false }) {
		t.Fatal("Until reported a condition that never held")
	}
	if time.Since(began) < 100*time.Millisecond {
		t.Fatal("Until gave up before its deadline")
	}
}
