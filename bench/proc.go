package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux that Go runs on.
const clockTick = 10 * time.Millisecond

// cpuTime is the user plus system CPU time process pid has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime, fields 14 and 15 of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces:
// fields are counted after its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// memory is a process's resident set now and at its peak, in bytes.
func memory(pid int) (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("status %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, sc.Err()
}

// procs are the processes under test on one side of a comparison: whose CPU
// time is counted (the servers, and Redis when the side uses it), and whose
// memory is.
type procs struct {
	cpu, mem []int
	names    []string // of cpu's processes, for the breakdown
	// loadgen: the breakdown also shows this process's own CPU time, the
	// load generator's (not counted as the side's).
	loadgen bool
}

// cpuNow returns the CPU time of each of p.cpu; a process that is gone
// counts 0.
func (p procs) cpuNow() []time.Duration {
	out := make([]time.Duration, len(p.cpu), len(p.cpu)+1)
	for i, pid := range p.cpu {
		if d, err := cpuTime(pid); err == nil {
			out[i] = d
		}
	}
	if p.loadgen {
		d, _ := cpuTime(os.Getpid())
		out = append(out, d)
	}
	return out
}

// breakdown formats the CPU time each process used between before and
// after, per request.
func (p procs) breakdown(before, after []time.Duration, requests int) string {
	var parts []string
	for i := range p.cpu {
		name := strconv.Itoa(p.cpu[i])
		if i < len(p.names) {
			name = p.names[i]
		}
		parts = append(parts, fmt.Sprintf("%s %s", name, us((after[i]-before[i])/time.Duration(max(requests, 1)))))
	}
	s := strings.Join(parts, ", ")
	if n := len(p.cpu); p.loadgen && len(before) > n && len(after) > n {
		s += fmt.Sprintf(" (load generator %s)", us((after[n]-before[n])/time.Duration(max(requests, 1))))
	}
	return s
}

// sideCPU sums the CPU times of the processes under test (not the load
// generator's).
func (p procs) sideCPU(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds[:len(p.cpu)] {
		s += d
	}
	return s
}

// rss sums the resident memory of p.mem.
func (p procs) rss() int64 {
	var sum int64
	for _, pid := range p.mem {
		if r, _, err := memory(pid); err == nil {
			sum += r
		}
	}
	return sum
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where a report was measured: cores, CPU, Go, commit.
func machine() string {
	return fmt.Sprintf("%d cores (`nproc`), %s, %s %s/%s, commit %s", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, commit())
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
