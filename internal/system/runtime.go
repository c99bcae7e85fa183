package system

import (
	"context"
	"errors"

	"go-micro.dev/v4/client"

	"github.com/portal-go/portal/internal/supervisor"
	pb "github.com/portal-go/portal/proto/system"
)

// SupervisorRuntime is the Runtime of `portal up`: its supervisor's runtime
// service, reached through c (whose calls carry the admin's token).
func SupervisorRuntime(c client.Client) Runtime { return supervisorRuntime{c} }

type supervisorRuntime struct{ c client.Client }

func notSupervised(err error) error {
	if errors.Is(err, supervisor.ErrNotSupervised) {
		return ErrNotSupervised
	}
	return err
}

func (r supervisorRuntime) Processes(ctx context.Context) ([]*pb.Process, error) {
	procs, err := supervisor.Status(ctx, r.c)
	if err != nil {
		return nil, notSupervised(err)
	}
	out := make([]*pb.Process, 0, len(procs))
	for _, p := range procs {
		pp := &pb.Process{Name: p.Name, Status: p.Status, Pid: int32(p.PID), Restarts: int32(p.Restarts), LastError: p.LastError}
		if !p.StartedAt.IsZero() {
			pp.StartedAt = p.StartedAt.Unix()
		}
		out = append(out, pp)
	}
	return out, nil
}

func (r supervisorRuntime) Restart(ctx context.Context, name string) error {
	_, err := supervisor.Restart(ctx, r.c, name)
	return notSupervised(err)
}

func (r supervisorRuntime) Logs(ctx context.Context, name string, lines int) ([]string, error) {
	out, err := supervisor.Logs(ctx, r.c, name, lines)
	return out, notSupervised(err)
}
