package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// side is one of the two things a comparison measures.
type side struct {
	name  string
	call  func(context.Context) error // one request
	procs procs                       // whose CPU and memory count
	// redis, when set, counts the commands Redis has processed.
	redis func() int64
	// profile, when set, is asked to profile the processes under test over
	// the next d (it returns a function that waits until it has).
	profile func(d time.Duration, label string) (wait func())
}

// plan is how long and how hard each comparison runs.
type plan struct {
	warmup   time.Duration // per side, before the first slice at a concurrency
	duration time.Duration // measured time per side at a concurrency, over all rounds
	rounds   int           // slices per side, interleaved a b a b
	max      int64         // bound on the requests of one slice (0: none)
	profileC int           // the concurrency whose first slices are profiled
}

// measure runs one slice of s.
func measure(ctx context.Context, s side, conc int, d time.Duration, max int64) result {
	var r0 int64
	if s.redis != nil {
		r0 = s.redis()
	}
	c0 := s.procs.cpuNow()
	r := load(ctx, conc, d, max, s.call)
	c1 := s.procs.cpuNow()
	if s.redis != nil {
		r.redis = s.redis() - r0
	}
	r.cpu = s.procs.sideCPU(c1) - s.procs.sideCPU(c0)
	r.cpuBy = s.procs.breakdown(c0, c1, r.ok)
	r.rss = s.procs.rss()
	r.side = s.name
	return r
}

// compare measures a and b at each concurrency: a warm-up of each, then
// p.rounds slices of each, interleaved (a b a b), so that a change in the
// machine's load touches both alike. It returns one pair per concurrency.
func compare(ctx context.Context, label string, p plan, a, b side, concs []int) [][2]result {
	var out [][2]result
	slice := p.duration / time.Duration(max(p.rounds, 1))
	for _, conc := range concs {
		var pair [2]result
		for i, s := range []side{a, b} {
			pair[i] = result{side: s.name, conc: conc}
			if p.warmup > 0 {
				w := measure(ctx, s, conc, p.warmup, p.max)
				progress("%s c%d warm-up %s: %.0f req/s, %d errors", label, conc, s.name, float64(w.ok)/w.elapsed.Seconds(), w.errs)
			}
		}
		for round := range max(p.rounds, 1) {
			for i, s := range []side{a, b} {
				if ctx.Err() != nil {
					return out
				}
				var wait func()
				if s.profile != nil && conc == p.profileC && round == 0 {
					wait = s.profile(slice, fmt.Sprintf("%s-c%d-%s", label, conc, s.name))
				}
				r := measure(ctx, s, conc, slice, p.max)
				if wait != nil {
					wait()
				}
				sm := summarize(r)
				progress("%s c%d round %d/%d %s: %.0f req/s, p50 %s ms, p99 %s ms, max %s ms, %d errors %s; Redis cmd/req %.2f; CPU us/req: %s",
					label, conc, round+1, p.rounds, s.name, sm.rps, ms(sm.p50), ms(sm.p99), ms(sm.max), r.errs, r.firstErr, sm.redisPerReq, r.cpuBy)
				pair[i].add(r)
			}
		}
		out = append(out, pair)
	}
	return out
}

// progress reports on stderr, so that stdout holds the tables only.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
