package supervisor

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/runtime"

	runtimepb "github.com/portal-go/portal/proto/runtime"
)

// Statuses of a supervised service.
const (
	// StatusStarting: forked and not registered yet, being restarted, or
	// waiting out the backoff before a restart.
	StatusStarting = "starting"
	// StatusRunning: its node (with its pid) is in the registry.
	StatusRunning = "running"
	// StatusStopped: stopped by the supervisor, which is shutting down.
	StatusStopped = "stopped"
	// StatusError: it kept exiting (or failing to start) soon after each
	// start and is no longer restarted; LastError says why. Runtime.Restart
	// tries again.
	StatusError = "error"
)

// The restart policy.
const (
	// firstBackoff is the wait before restarting a service that exited; it
	// doubles with each consecutive quick exit, up to maxBackoff.
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	// stableAfter: a process that lived this long was not a quick exit, and
	// its exit starts the count again.
	stableAfter = 30 * time.Second
	// maxQuickRestarts: after this many restarts in a row that each ended
	// in a quick exit, the next quick exit leaves the service in
	// StatusError: a crash loop is not retried forever.
	maxQuickRestarts = 6
	// stopGrace is how long a child has after SIGTERM (it drains: up to
	// 1 s in the registry, 10 s of HTTP shutdown, 8 s of RPC) before the
	// supervisor sends SIGKILL.
	stopGrace = 20 * time.Second
)

// backoff is the wait before the start that follows the n-th consecutive
// quick exit (n >= 1); ok false means give up.
func backoff(n int) (d time.Duration, ok bool) {
	if n > maxQuickRestarts {
		return 0, false
	}
	d = firstBackoff << (n - 1)
	if d > maxBackoff {
		d = maxBackoff
	}
	return d, true
}

// child is one supervised service.
type child struct {
	name string
	svc  *runtime.Service // the runtime's record; its Metadata is the runtime's: never read
	opts []runtime.CreateOption
	out  *output
	log  *slog.Logger

	op sync.Mutex // held through a start, restart or stop: one at a time

	mu        sync.Mutex // guards what follows
	created   bool       // the runtime has it (Create succeeded)
	busy      bool       // an operation runs or is about to: the monitor leaves it alone
	status    string
	pid       int
	pstart    uint64 // the process's start time in /proc: tells a reused pid
	startedAt time.Time
	restarts  int
	quick     int       // consecutive quick exits
	lastErr   string    // LastError
	exitErr   string    // the exit status the runtime logged for the last exit
	goneAt    time.Time // when the monitor first found the process gone
	retryAt   time.Time // when to start it again; zero: not scheduled
}

// process returns what List reports, in the one shape a process record
// has (proto/runtime's Process: the runtime service answers with it and the
// system service passes it on). Called with mu held.
func (c *child) process() *runtimepb.Process {
	p := &runtimepb.Process{Name: c.name, Status: c.status, Pid: int64(c.pid), Restarts: int64(c.restarts), LastError: c.lastErr}
	if !c.startedAt.IsZero() {
		p.StartedAt = c.startedAt.Unix()
	}
	return p
}

// noteExit records the exit status go-micro's runtime logged for c's process
// ("exit status 1", "signal: killed"): the runtime reports it nowhere else
// that can be read safely.
func (c *child) noteExit(status string) {
	c.mu.Lock()
	c.exitErr = status
	c.mu.Unlock()
}

// exitReason adds what is known of an exit to what.
func exitReason(what, status, lastLine string) string {
	if status != "" {
		what += " (" + status + ")"
	}
	if lastLine != "" {
		what += ": " + lastLine
	}
	return what
}

// launch starts c's process through the runtime and records its pid: Create
// the first time; later Update, which sends SIGTERM to the old process group
// (if any), waits for it to exit and forks again. Called with c.op held and
// c.busy set, which it clears.
func (s *supervisor) launch(c *child, restart bool) {
	c.mu.Lock()
	created, oldPid, oldStart := c.created, c.pid, c.pstart
	c.exitErr, c.goneAt = "", time.Time{}
	c.mu.Unlock()

	var err error
	if !created {
		err = s.rt.Create(c.svc, c.opts...)
	} else {
		// The runtime waits for the old process without a bound: SIGKILL
		// it if SIGTERM does not end it.
		cancel := s.killAfter(c, oldPid, oldStart)
		err = s.rt.Update(c.svc)
		cancel()
	}
	began := time.Now()
	var pid int
	var start uint64
	if err == nil {
		pid, start, err = findChild(c.name)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	if !created && err == nil {
		c.created = true
	}
	if restart {
		c.restarts++
	}
	if err != nil {
		c.pid = 0
		c.failed("start: " + err.Error())
		return
	}
	if pid != 0 {
		// Found alive: an exit status logged so far was the old process's.
		c.exitErr = ""
	}
	// pid 0: it exited at once; the monitor reports it as an exit.
	c.status, c.pid, c.pstart, c.startedAt = StatusStarting, pid, start, began
	c.log.Info("started", "pid", pid, "restarts", c.restarts)
}

// failed records that c's process is gone (or never started) for reason,
// counts a quick exit and sets when to start it again (StatusStarting), or
// gives up (StatusError). Called with mu held.
func (c *child) failed(reason string) {
	c.lastErr = reason
	c.quick++
	d, ok := backoff(c.quick)
	if !ok {
		c.status, c.retryAt = StatusError, time.Time{}
		c.log.Error("not restarted: it exited soon after each of its last starts; Runtime.Restart starts it again",
			"quick_exits", c.quick, "last_error", reason)
		return
	}
	c.status, c.retryAt = StatusStarting, time.Now().Add(d)
	c.log.Warn("restarting", "in", d, "last_error", reason)
}

// check is the monitor's look at c: has its process exited, has it
// registered, is a restart due.
func (s *supervisor) check(c *child) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.busy:
	case !c.retryAt.IsZero():
		// Waiting out the backoff.
		if !time.Now().Before(c.retryAt) {
			c.retryAt = time.Time{}
			s.goRestart(c, false)
		}
	case c.status == StatusStarting || c.status == StatusRunning:
		if !alive(c.pid, c.pstart) {
			pid := c.pid
			c.exited()
			if pid != 0 && c.pid == 0 { // the exit is recorded
				s.goForget(c.name, pid)
			}
			return
		}
		if c.status == StatusStarting {
			pid := c.pid
			c.mu.Unlock()
			ok := s.registered(c.name, pid)
			c.mu.Lock()
			if ok && !c.busy && c.status == StatusStarting && c.pid == pid {
				c.status = StatusRunning
				c.log.Info("running", "pid", pid)
			}
		}
	}
}

// exited handles the exit of c's process, which the monitor found gone.
// Called with mu held.
func (c *child) exited() {
	// The runtime logs the exit status just after it reaps the process,
	// which is when /proc stops showing it: give the line one more look
	// to arrive (none comes for an exit status 0).
	if c.goneAt.IsZero() {
		c.goneAt = time.Now()
		if c.exitErr == "" {
			return
		}
	}
	lived := c.goneAt.Sub(c.startedAt)
	if lived >= stableAfter {
		c.quick = 0
	}
	reason := exitReason("exited after "+lived.Round(time.Millisecond).String(), c.exitErr, c.out.lastError())
	c.exitErr, c.pid, c.goneAt = "", 0, time.Time{}
	c.failed(reason)
}

// goRestart restarts c in the background unless the supervisor is stopping.
// Called with c.mu held; reset clears the count of quick exits (an admin's
// restart gives a given-up service its chances back).
func (s *supervisor) goRestart(c *child, reset bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	c.busy = true
	if reset {
		c.quick = 0
		c.retryAt = time.Time{}
	}
	c.status = StatusStarting
	s.ops.Add(1)
	go func() {
		defer s.ops.Done()
		c.op.Lock()
		defer c.op.Unlock()
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			c.mu.Lock()
			c.busy = false
			c.mu.Unlock()
			return
		}
		s.launch(c, true)
	}()
	return true
}

// stopChild stops c for good (the runtime's Delete: SIGTERM, wait), with
// SIGKILL after stopGrace.
func (s *supervisor) stopChild(c *child) {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	c.busy = true
	created, pid, start := c.created, c.pid, c.pstart
	c.mu.Unlock()
	var err error
	if created {
		cancel := s.killAfter(c, pid, start)
		err = s.rt.Delete(c.svc)
		cancel()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status, c.pid = StatusStopped, 0
	if err != nil {
		c.lastErr = "stop: " + err.Error()
		c.log.Warn("stop", "err", err)
		return
	}
	c.log.Info("stopped", "pid", pid)
}

// killAfter sends SIGKILL to pid's process group if that process still runs
// stopGrace from now; cancel stops the timer.
func (s *supervisor) killAfter(c *child, pid int, start uint64) (cancel func()) {
	if !alive(pid, start) {
		return func() {}
	}
	t := time.AfterFunc(stopGrace, func() {
		if alive(pid, start) {
			c.log.Warn("still running after SIGTERM: SIGKILL", "pid", pid, "grace", stopGrace)
			if err := killGroup(pid); err != nil {
				c.log.Error("SIGKILL", "pid", pid, "err", err)
			}
		}
	})
	return func() { t.Stop() }
}

// registered tells whether the registry lists a node of service name run by
// pid (platform puts the pid in every node's metadata).
func (s *supervisor) registered(name string, pid int) bool {
	nodes, err := nodesOf(s.reg, name, pid)
	return err == nil && len(nodes) > 0
}

// nodesOf returns the nodes of name in reg whose metadata names pid, each
// as a registry.Service of its own.
func nodesOf(reg registry.Registry, name string, pid int) ([]*registry.Service, error) {
	services, err := reg.GetService(name)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	want := strconv.Itoa(pid)
	var out []*registry.Service
	for _, svc := range services {
		for _, n := range svc.Nodes {
			if n.Metadata["pid"] == want {
				out = append(out, &registry.Service{Name: svc.Name, Version: svc.Version, Nodes: []*registry.Node{n}})
			}
		}
	}
	return out, nil
}

// goForget takes the nodes of name that pid registered out of the registry,
// in the background: a child that died without deregistering (SIGKILL, a
// crash) stays listed until its registration TTL runs out (up to 10 s), and
// callers meanwhile reach a dead address, or whatever listens there next
// (another process's server, which answered a call meant for user with
// "the session has ended" in TestUp).
func (s *supervisor) goForget(name string, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	s.ops.Add(1)
	go func() {
		defer s.ops.Done()
		if err := s.forget(name, pid); err != nil {
			s.log.Warn("a dead child's node not taken out of the registry; it leaves with its TTL", "service", name, "pid", pid, "err", err)
		}
	}()
}

// forget deregisters the nodes of name whose metadata names pid.
func (s *supervisor) forget(name string, pid int) error {
	nodes, err := nodesOf(s.reg, name, pid)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := s.reg.Deregister(n); err != nil {
			return err
		}
	}
	return nil
}
