package system

import (
	"context"
	"errors"

	"go-micro.dev/v4/client"

	"github.com/portal-go/portal/internal/supervisor"
	runtimepb "github.com/portal-go/portal/proto/runtime"
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

func (r supervisorRuntime) Processes(ctx context.Context) ([]*runtimepb.Process, error) {
	procs, err := supervisor.Status(ctx, r.c)
	return procs, notSupervised(err)
}

func (r supervisorRuntime) Restart(ctx context.Context, name string) error {
	_, err := supervisor.Restart(ctx, r.c, name)
	return notSupervised(err)
}

func (r supervisorRuntime) Logs(ctx context.Context, name string, lines int) ([]string, error) {
	out, err := supervisor.Logs(ctx, r.c, name, lines)
	return out, notSupervised(err)
}
