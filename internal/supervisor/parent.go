package supervisor

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// envSupervisorPID tells a child the pid of the supervisor that started it.
const envSupervisorPID = "PORTAL_SUPERVISOR_PID"

// parentPoll is how often a child checks that its supervisor lives.
const parentPoll = time.Second

// WithSupervisor returns a context that also ends when this process was
// started by portal up's supervisor and that supervisor is gone. go-micro's
// runtime gives each child a process group of its own and no parent-death
// signal, so a supervisor killed with SIGKILL would leave its children
// running, holding the gateway's port and the store's file. Outside portal
// up it returns ctx.
func WithSupervisor(ctx context.Context, log *slog.Logger) context.Context {
	pid, err := strconv.Atoi(os.Getenv(envSupervisorPID))
	if err != nil || pid <= 1 {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		t := time.NewTicker(parentPoll)
		defer t.Stop()
		for os.Getppid() == pid {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		log.Warn("the supervisor that started this process is gone: stopping", "supervisor_pid", pid)
	}()
	return ctx
}
