package supervisor

import (
	"context"
	"errors"
	"fmt"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	runtimepb "github.com/portal-go/portal/proto/runtime"
)

// ErrNotSupervised means no supervisor ("runtime" service) is registered:
// Portal does not run under portal up.
var ErrNotSupervised = errors.New("supervisor: not running under portal up")

// The client side of the runtime service, for the admin plane. Each call
// needs an admin's token in ctx's metadata: a handler's ctx carries its
// caller's, and go-micro passes it on. Errors other than ErrNotSupervised
// are the go-micro errors the call returned (403 for a non-admin, 404
// runtime.not_found for an unknown service, ...).

// Status lists the supervised services, sorted by name, in their one wire
// shape (runtimepb.Process, which the system service passes on as is).
func Status(ctx context.Context, c client.Client) ([]*runtimepb.Process, error) {
	if err := supervised(c); err != nil {
		return nil, err
	}
	rsp, err := runtimepb.NewRuntimeService(ServiceName, c).List(ctx, &runtimepb.ListRequest{})
	if err != nil {
		return nil, err
	}
	return rsp.Processes, nil
}

// Restart restarts the service name (web, user or system) and returns its
// state as the restart begins; Status tells when it runs again.
func Restart(ctx context.Context, c client.Client, name string) (*runtimepb.Process, error) {
	if err := supervised(c); err != nil {
		return nil, err
	}
	rsp, err := runtimepb.NewRuntimeService(ServiceName, c).Restart(ctx, &runtimepb.RestartRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return rsp.Process, nil
}

// Logs returns the last lines (0: 100, at most 1000) the service name wrote,
// oldest first. A password a line held is shown as [redacted].
func Logs(ctx context.Context, c client.Client, name string, lines int) ([]string, error) {
	if err := supervised(c); err != nil {
		return nil, err
	}
	rsp, err := runtimepb.NewRuntimeService(ServiceName, c).Logs(ctx, &runtimepb.LogsRequest{Name: name, Lines: int64(lines)})
	if err != nil {
		return nil, err
	}
	return rsp.Lines, nil
}

// supervised asks c's registry whether a runtime service is registered.
func supervised(c client.Client) error {
	reg := c.Options().Registry
	if reg == nil {
		return ErrNotSupervised
	}
	list, err := reg.GetService(ServiceName)
	if errors.Is(err, registry.ErrNotFound) {
		return ErrNotSupervised
	}
	if err != nil {
		return fmt.Errorf("supervisor: registry: %w", err)
	}
	for _, s := range list {
		if len(s.Nodes) > 0 {
			return nil
		}
	}
	return ErrNotSupervised
}
