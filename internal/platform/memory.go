package platform

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/server"
)

// work counts the requests and calls this process has served.
var work atomic.Uint64

// Working counts one request or call served (the gateway's middleware and
// every service's handler wrapper call it): while they come, the process is
// not idle (ReturnMemoryWhenIdle). One atomic add.
func Working() { work.Add(1) }

// countWork is Working for go-micro handlers.
func countWork(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		Working()
		return next(ctx, req, rsp)
	}
}

// WorkDone is how many requests and calls Working has counted.
func WorkDone() uint64 { return work.Load() }

// freeOSMemory is debug.FreeOSMemory; tests count its calls.
var freeOSMemory = debug.FreeOSMemory

// ReturnMemoryWhenIdle gives the heap's free memory back to the operating
// system (debug.FreeOSMemory: a collection, then every free page returned)
// once no request or call has been counted for idle, and again every
// `every` while none comes, until ctx ends.
//
// Without it an idle Portal grows: the runtime keeps freed pages up to
// about a tenth above its heap goal, and the work Portal does on its own
// while idle (relays polling their stores, registrations renewed) allocates
// a little at a time until the next collection, which the goal puts far
// off. Measured on the embedded mode: 39.0 MiB 45 s after the last request,
// growing about 0.1 MiB a minute (README, Measured). A return costs one
// collection of a small heap, every few minutes, only while nothing else
// runs; the JVM's G1 does the same (JEP 346).
func ReturnMemoryWhenIdle(ctx context.Context, idle, every time.Duration) {
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	d := idleness{idle: idle, every: every, seen: work.Load(), since: time.Now()}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if d.returnNow(now, work.Load()) {
				freeOSMemory()
			}
		}
	}
}

// idleness decides when an idle process returns its memory.
type idleness struct {
	idle, every time.Duration
	seen        uint64    // the work count last looked at
	since       time.Time // when it last changed
	returned    time.Time // the last return since then; zero: none
}

// returnNow tells, at now with count requests and calls served so far,
// whether to return memory now: idle has passed since count last changed,
// and every since the last return.
func (d *idleness) returnNow(now time.Time, count uint64) bool {
	if count != d.seen {
		d.seen, d.since, d.returned = count, now, time.Time{}
		return false
	}
	if now.Sub(d.since) < d.idle || (!d.returned.IsZero() && now.Sub(d.returned) < d.every) {
		return false
	}
	d.returned = now
	return true
}
