package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var hundred []time.Duration // 1ms .. 100ms
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p99.9 of 100 is the max", hundred, 99.9, 100 * time.Millisecond},
		{"max", hundred, 100, 100 * time.Millisecond},
		{"p1", hundred, 1, time.Millisecond},
		{"tiny p is the min", hundred, 0.001, time.Millisecond},
		// Nearest rank: 4 values, p50 is the 2nd, p51 the 3rd.
		{"p50 of 4", []time.Duration{10, 20, 30, 40}, 50, 20},
		{"p51 of 4", []time.Duration{10, 20, 30, 40}, 51, 30},
		{"p99 of 4", []time.Duration{10, 20, 30, 40}, 99, 40},
	}
	for _, tc := range tests {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	r := result{ok: 300, errs: 1, elapsed: 2 * time.Second, cpu: 30 * time.Millisecond}
	// Unsorted on purpose: summarize sorts a copy.
	for i := 100; i >= 1; i-- {
		r.lat = append(r.lat, time.Duration(i)*time.Millisecond)
	}
	s := summarize(r)
	if s.rps != 150 {
		t.Errorf("rps = %v, want 150 (ok requests only)", s.rps)
	}
	if s.p50 != 50*time.Millisecond || s.p99 != 99*time.Millisecond || s.max != 100*time.Millisecond {
		t.Errorf("p50, p99, max = %v, %v, %v", s.p50, s.p99, s.max)
	}
	if s.cpuPerReq != 100*time.Microsecond {
		t.Errorf("cpu per request = %v, want 100µs", s.cpuPerReq)
	}
	if r.lat[0] != 100*time.Millisecond {
		t.Error("summarize reordered the result's latencies")
	}
}

func TestResultAdd(t *testing.T) {
	var r result
	r.add(result{ok: 2, errs: 1, elapsed: time.Second, lat: []time.Duration{1, 2, 3}, cpu: 5, rss: 100, firstErr: "first"})
	r.add(result{ok: 3, elapsed: time.Second, lat: []time.Duration{4}, cpu: 7, rss: 200, firstErr: "second", cpuBy: "web 1"})
	if r.ok != 5 || r.errs != 1 || r.elapsed != 2*time.Second || len(r.lat) != 4 || r.cpu != 12 {
		t.Errorf("sums wrong: %+v", r)
	}
	if r.rss != 200 || r.firstErr != "first" || r.cpuBy != "web 1" {
		t.Errorf("rss %d (want the last, 200), firstErr %q (want the first), cpuBy %q (want the last)", r.rss, r.firstErr, r.cpuBy)
	}
}

func TestTable(t *testing.T) {
	tb := newTable("side", "req/s>")
	tb.add("portal", "12345")
	tb.add("baseline µ", "9")
	tb.add("short") // a missing cell is empty
	want := "" +
		"| side       | req/s |\n" +
		"| ---------- | ----: |\n" +
		"| portal     | 12345 |\n" +
		"| baseline µ |     9 |\n" +
		"| short      |       |\n"
	if got := tb.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormats(t *testing.T) {
	tests := []struct{ got, want string }{
		{ms(1234 * time.Microsecond), "1.23"},
		{ms(12345 * time.Microsecond), "12.3"},
		{ms(1234 * time.Millisecond), "1234"},
		{us(1500 * time.Nanosecond), "2"},
		{mb(3 << 20), "3.0"},
		{mb(0), "-"},
		{x(ratio(3, 2)), "1.50x"},
		{x(ratio(3, 0)), "0.00x"},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%d: %q, want %q", i, tc.got, tc.want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis: fields count after the
	// last ')'. utime 150 and stime 50 ticks: 2 s.
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 3 0"
	got, err := parseStatCPU(stat)
	if err != nil || got != 2*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 2s", got, err)
	}
	if _, err := parseStatCPU("1234 (x) S 1 2"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestBreakdown(t *testing.T) {
	p := procs{cpu: []int{1, 2}, names: []string{"web", "user"}}
	got := p.breakdown([]time.Duration{0, time.Second}, []time.Duration{time.Second, 3 * time.Second}, 1000)
	if want := "web 1000, user 2000"; got != want {
		t.Errorf("breakdown = %q, want %q", got, want)
	}
	if got := p.sideCPU([]time.Duration{1, 2, 40}); got != 3 {
		t.Errorf("sideCPU = %v, want 3 (the load generator's 40 left out)", got)
	}
	p.loadgen = true
	got = p.breakdown([]time.Duration{0, 0, 0}, []time.Duration{0, 0, time.Second}, 1000)
	if want := "web 0, user 0 (load generator 1000)"; got != want {
		t.Errorf("breakdown = %q, want %q", got, want)
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"row 2-c64-portal, no cache-portal-user-1": "row-2-c64-portal-no-cache-portal-user-1",
		"  A  ": "a",
		"--x--": "x",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}
