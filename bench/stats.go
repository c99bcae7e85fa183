package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// result is what one side of a comparison did at one concurrency, summed
// over its interleaved slices.
type result struct {
	side     string
	conc     int
	ok, errs int
	elapsed  time.Duration   // wall time of the slices
	lat      []time.Duration // every request's latency, errors included
	cpu      time.Duration   // CPU time of the processes under test
	rss      int64           // their resident memory at the end, bytes
	firstErr string          // the first error, to show what went wrong
	cpuBy    string          // CPU time per request of each process (the last slice)
	redis    int64           // commands Redis processed, -1 when not counted
}

// add merges the slice s into r.
func (r *result) add(s result) {
	r.ok += s.ok
	r.errs += s.errs
	r.elapsed += s.elapsed
	r.lat = append(r.lat, s.lat...)
	r.cpu += s.cpu
	r.redis += s.redis
	if s.rss > 0 {
		r.rss = s.rss
	}
	if r.firstErr == "" {
		r.firstErr = s.firstErr
	}
	if s.cpuBy != "" {
		r.cpuBy = s.cpuBy
	}
}

// summary is a result reduced to the table's numbers.
type summary struct {
	rps           float64 // successful requests per second
	p50, p99, max time.Duration
	cpuPerReq     time.Duration // CPU time per successful request
	redisPerReq   float64       // Redis commands per successful request
}

func summarize(r result) summary {
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	s := summary{p50: percentile(lat, 50), p99: percentile(lat, 99), max: percentile(lat, 100)}
	if r.elapsed > 0 {
		s.rps = float64(r.ok) / r.elapsed.Seconds()
	}
	if r.ok > 0 {
		s.cpuPerReq = r.cpu / time.Duration(r.ok)
		s.redisPerReq = float64(r.redis) / float64(r.ok)
	}
	return s
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value that at least p percent of the
// values are at or below. It is 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(p / 100 * float64(n))
	if float64(rank) < p/100*float64(n) {
		rank++ // ceil, without float rounding surprises for whole ranks
	}
	rank = max(rank, 1)
	rank = min(rank, n)
	return sorted[rank-1]
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// ms formats a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// us formats a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

// mb formats bytes as MiB.
func mb(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

// x formats a ratio.
func x(r float64) string { return fmt.Sprintf("%.2fx", r) }

// yesNo marks whether a target was met.
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// table is a markdown table whose columns are padded to line up in plain
// text too.
type table struct {
	header []string
	right  []bool
	rows   [][]string
}

// newTable starts a table; a header ending in ">" is a right-aligned column
// (the ">" is not shown).
func newTable(header ...string) *table {
	t := &table{}
	for _, h := range header {
		r := strings.HasSuffix(h, ">")
		t.header = append(t.header, strings.TrimSuffix(h, ">"))
		t.right = append(t.right, r)
	}
	return t
}

// add appends a row; missing cells are left empty, extra ones dropped.
func (t *table) add(cells ...string) {
	row := make([]string, len(t.header))
	copy(row, cells)
	t.rows = append(t.rows, row)
}

// String renders the table as GitHub markdown.
func (t *table) String() string {
	width := make([]int, len(t.header))
	for i, h := range t.header {
		width[i] = max(utf8.RuneCountInString(h), 3)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	line(t.header)
	b.WriteString("|")
	for i := range t.header {
		if t.right[i] {
			b.WriteString(" " + strings.Repeat("-", width[i]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", width[i]) + " |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}
