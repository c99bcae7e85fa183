package supervisor

import (
	"context"
	"errors"
	"net/http"

	merrors "go-micro.dev/v4/errors"

	runtimepb "github.com/portal-go/portal/proto/runtime"
)

// handler serves proto/runtime. Authorization (the permission each RPC's
// line in Endpoints names) is the auth wrapper's, as on every Portal service.
type handler struct{ s *supervisor }

// List implements runtimepb.RuntimeHandler.
func (h *handler) List(ctx context.Context, req *runtimepb.ListRequest, rsp *runtimepb.ListResponse) error {
	rsp.Processes = append(rsp.Processes, h.s.List()...)
	return nil
}

// Restart implements runtimepb.RuntimeHandler.
func (h *handler) Restart(ctx context.Context, req *runtimepb.RestartRequest, rsp *runtimepb.RestartResponse) error {
	p, err := h.s.Restart(req.Name)
	if err != nil {
		return rpcError(err)
	}
	rsp.Process = p
	return nil
}

// Logs implements runtimepb.RuntimeHandler.
func (h *handler) Logs(ctx context.Context, req *runtimepb.LogsRequest, rsp *runtimepb.LogsResponse) error {
	lines, err := h.s.Logs(req.Name, int(req.Lines))
	if err != nil {
		return rpcError(err)
	}
	rsp.Lines = lines
	return nil
}

// rpcError maps the supervisor's errors to go-micro errors, at the edge.
func rpcError(err error) error {
	switch {
	case errors.Is(err, ErrUnknownService):
		return merrors.NotFound("runtime.not_found", "no such service: web, user and system are supervised")
	case errors.Is(err, ErrBadLines):
		return merrors.BadRequest("runtime.bad_lines", "%s", err.Error())
	case errors.Is(err, ErrStopping):
		return merrors.New("runtime.unavailable", "the supervisor is stopping", http.StatusServiceUnavailable)
	}
	return merrors.InternalServerError("runtime.internal", "%s", err.Error())
}
