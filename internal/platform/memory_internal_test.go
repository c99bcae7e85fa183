package platform

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv/poll"
)

func TestIdlenessReturnsOnlyWhenIdle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	d := idleness{idle: 30 * time.Second, every: 5 * time.Minute, seen: 7, since: t0}
	for _, step := range []struct {
		at    float64
		count uint64
		want  bool
	}{
		{10, 7, false},  // idle 10 s
		{29, 7, false},  // not yet
		{30, 7, true},   // idle 30 s: return
		{40, 7, false},  // returned 10 s ago
		{329, 7, false}, // 299 s since the return
		{330, 7, true},  // still idle, 5 min later: again
		{331, 8, false}, // a request
		{360, 8, false}, // idle 29 s
		{361, 8, true},  // idle 30 s
		{362, 9, false}, // busy again
		{365, 10, false},
		{394, 10, false},
		{395, 10, true},
	} {
		if got := d.returnNow(at(step.at), step.count); got != step.want {
			t.Fatalf("at %gs with %d served: returnNow = %v, want %v", step.at, step.count, got, step.want)
		}
	}
}

func TestReturnMemoryWhenIdle(t *testing.T) {
	var returns atomic.Int64
	saved := freeOSMemory
	freeOSMemory = func() { returns.Add(1) }
	t.Cleanup(func() { freeOSMemory = saved })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ReturnMemoryWhenIdle(ctx, 20*time.Millisecond, 60*time.Millisecond) }()
	// Idle: it returns, and returns again while idle.
	poll.Wait(t, 10*time.Second, "two returns while idle", func() bool { return returns.Load() >= 2 })
	cancel()
	<-done
}

// BenchmarkWorking is what counting a request or call costs on the hot
// path, from every core at once.
func BenchmarkWorking(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			Working()
		}
	})
}
