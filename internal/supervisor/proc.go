package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// go-micro's local runtime forks each child but tells nobody its pid: not
// Read (its Service has no pid), and the status it keeps in the Service's
// Metadata is a map it writes under a lock of its own, which a reader cannot
// take. The supervisor learns pids the way ps does, from /proc (Linux).

// procDir is where the kernel shows processes.
const procDir = "/proc"

// errNoProc is returned where /proc is missing: portal up needs Linux.
var errNoProc = errors.New("supervisor: /proc not found: portal up runs on Linux")

// stat is what the supervisor reads of /proc/<pid>/stat.
type stat struct {
	state byte   // R, S, D, Z (zombie), ...
	ppid  int    // parent
	start uint64 // start time in clock ticks since boot: a reused pid has another
}

// parseStat parses the content of /proc/<pid>/stat. The second field, the
// command name in parentheses, may itself hold spaces and parentheses: the
// fields that follow start after the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("%d fields after the command", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("ppid: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("starttime: %w", err)
	}
	return stat{state: f[0][0], ppid: ppid, start: start}, nil
}

func readStat(pid int) (stat, error) { return readStatIn(procDir, pid) }

// readStatIn reads pid's stat in dir, a /proc.
func readStatIn(dir string, pid int) (stat, error) {
	b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// alive tells whether pid is still our child that started at start: not
// gone, not a zombie, not a stranger that got the pid after it.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.ppid == os.Getpid() && st.start == start
}

// findChild returns the pid and start time of this process's live child
// whose first argument is name (the runtime runs `<exe> <name>`); the newest
// when there are several. pid 0: none.
//
// A child shows an empty command line for a moment after exec.Cmd.Start has
// returned (the kernel fills it in as it loads the program: read at once,
// it was empty for 127 and 145 of 300 starts of Portal's binary). While a
// child of this process shows none and name is not found, findChild looks
// again, every 5 ms for up to childSettle: taken for a child that exited at
// once, a healthy child was restarted (TestUp, under load).
func findChild(name string) (pid int, start uint64, err error) {
	return findChildIn(procDir, name)
}

// childSettle bounds how long findChild waits for a child's command line.
const childSettle = time.Second

// findChildIn is findChild in dir, a /proc.
func findChildIn(dir, name string) (pid int, start uint64, err error) {
	deadline := time.Now().Add(childSettle)
	for {
		pid, start, unread, err := scanChildren(dir, name)
		if err != nil || pid != 0 || !unread || time.Now().After(deadline) {
			return pid, start, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scanChildren is one look through dir for findChild; unread: a child of
// this process showed an empty command line.
func scanChildren(dir, name string) (pid int, start uint64, unread bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, false, errNoProc
	}
	self := os.Getpid()
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		st, err := readStatIn(dir, p)
		if err != nil || st.ppid != self || st.state == 'Z' {
			continue // gone meanwhile, or not ours
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if len(cmdline) == 0 {
			unread = true // being exec'd
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 2 || args[1] != name {
			continue
		}
		if pid == 0 || st.start > start {
			pid, start = p, st.start
		}
	}
	return pid, start, unread, nil
}
