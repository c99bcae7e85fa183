package poll

import (
	"runtime"
	"sync"
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

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if v := Receive(t, time.Second, "a value", ch); v != 7 {
		t.Fatalf("Receive: %d, want 7", v)
	}
	// Nothing sent: the test fails after d instead of hanging.
	var r recorder
	var wg sync.WaitGroup
	wg.Go(func() { Receive(&r, 50*time.Millisecond, "nothing", make(chan int)) })
	wg.Wait()
	if !r.failed {
		t.Fatal("Receive did not fail on a channel that never delivers")
	}
}

// recorder is a testing.TB that records Fatalf and ends its goroutine there,
// as testing.T does.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}
