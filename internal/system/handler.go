// Package system is the admin plane's own parts: the live config, what the
// registry holds and the supervisor runs, the audit log and the overview.
// Accounts and roles are the user service's. Every endpoint but Health needs
// the permission its line in Endpoints names: the auth wrapper checks it,
// with the caller's permissions as the user service reports them now.
package system

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"sync"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	runtimepb "github.com/portal-go/portal/proto/runtime"
	pb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// ErrNotSupervised: no supervisor (portal up) runs the services.
var ErrNotSupervised = errors.New("system: the services are not run by a supervisor")

// Runtime is the supervisor's view of the processes it runs.
type Runtime interface {
	// Processes returns them, or ErrNotSupervised.
	Processes(ctx context.Context) ([]*runtimepb.Process, error)
	// Restart restarts one, or returns ErrNotSupervised.
	Restart(ctx context.Context, name string) error
	// Logs returns the last lines one wrote, or ErrNotSupervised.
	Logs(ctx context.Context, name string, lines int) ([]string, error)
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	User, Kind string
	// Cursor is the next of the previous page; empty for the newest.
	Cursor string
	Limit  int
}

// Audit is the audit log the service keeps and the events it records.
type Audit interface {
	// List returns a page of entries, newest first, how many match, and the
	// cursor of the next (older) page ("" when none).
	List(ctx context.Context, f AuditFilter) (entries []*pb.AuditEntry, total int, next string, err error)
	// Hourly counts logins and failed logins per hour over the last 24 hours,
	// oldest first.
	Hourly(ctx context.Context) ([]*pb.HourCount, error)
	// Record notes an event (a config change); it never fails the caller.
	Record(ctx context.Context, e *pb.AuditEntry)
}

// Options are what the handler needs.
type Options struct {
	Registry registry.Registry
	Users    userpb.UserService
	Config   *config.Center
	// History is the config's history, kept in the service's store.
	History *History
	Audit   Audit
	// Runtime, when nil, means no supervisor.
	Runtime Runtime
}

// Handler implements the System RPC service.
type Handler struct {
	Options
	// configMu orders this instance's config changes: each reads the head
	// version, claims the next and writes the source as one step.
	configMu sync.Mutex
}

// NewHandler builds the handler.
func NewHandler(o Options) *Handler {
	return &Handler{Options: o}
}

func unavailable(what string, err error) error {
	return merrors.New("system.unavailable", what+": "+err.Error(), http.StatusServiceUnavailable)
}

// Health reports whether the registry answers.
func (h *Handler) Health(ctx context.Context, req *pb.HealthRequest, rsp *pb.HealthResponse) error {
	if _, err := h.Registry.ListServices(); err != nil {
		return unavailable("registry", err)
	}
	rsp.Status = "ok"
	return nil
}

// ListServices returns every registered service with its nodes and endpoints,
// sorted by name, and the supervisor's processes when there is one.
func (h *Handler) ListServices(ctx context.Context, req *pb.ListServicesRequest, rsp *pb.ListServicesResponse) error {
	services, err := h.services()
	if err != nil {
		return err
	}
	rsp.Services = services
	if h.Runtime == nil {
		return nil
	}
	procs, err := h.Runtime.Processes(ctx)
	switch {
	case errors.Is(err, ErrNotSupervised):
	case err != nil:
		return unavailable("supervisor", err)
	default:
		rsp.Supervised, rsp.Processes = true, procs
	}
	return nil
}

func (h *Handler) services() ([]*pb.Service, error) {
	list, err := h.Registry.ListServices()
	if err != nil {
		return nil, unavailable("registry", err)
	}
	var out []*pb.Service
	for _, s := range list {
		// ListServices gives names only; GetService gives nodes and endpoints
		// (one entry per version).
		versions, err := h.Registry.GetService(s.Name)
		if err != nil {
			continue // gone between the two calls
		}
		for _, v := range versions {
			svc := &pb.Service{Name: v.Name, Version: v.Version}
			for _, n := range v.Nodes {
				svc.Nodes = append(svc.Nodes, &pb.Node{Id: n.Id, Address: n.Address, Metadata: n.Metadata})
			}
			for _, e := range v.Endpoints {
				svc.Endpoints = append(svc.Endpoints, e.Name)
			}
			sort.Strings(svc.Endpoints)
			sort.Slice(svc.Nodes, func(i, j int) bool { return svc.Nodes[i].Id < svc.Nodes[j].Id })
			out = append(out, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Name < b.Name || (a.Name == b.Name && a.Version < b.Version)
	})
	return out, nil
}

// RestartService asks the supervisor to restart a service.
func (h *Handler) RestartService(ctx context.Context, req *pb.RestartServiceRequest, rsp *pb.RestartServiceResponse) error {
	if h.Runtime == nil {
		return merrors.New("system.not_supervised", ErrNotSupervised.Error(), http.StatusConflict)
	}
	err := h.Runtime.Restart(ctx, req.Name)
	if errors.Is(err, ErrNotSupervised) {
		return merrors.New("system.not_supervised", ErrNotSupervised.Error(), http.StatusConflict)
	}
	return err // the supervisor's own error (404 for an unknown name) passes through
}

// ServiceLogs returns the last lines a supervised service wrote.
func (h *Handler) ServiceLogs(ctx context.Context, req *pb.ServiceLogsRequest, rsp *pb.ServiceLogsResponse) error {
	if h.Runtime == nil {
		return merrors.New("system.not_supervised", ErrNotSupervised.Error(), http.StatusConflict)
	}
	lines, err := h.Runtime.Logs(ctx, req.Name, int(req.Lines))
	if errors.Is(err, ErrNotSupervised) {
		return merrors.New("system.not_supervised", ErrNotSupervised.Error(), http.StatusConflict)
	} else if err != nil {
		return err
	}
	rsp.Lines = lines
	return nil
}

// ListAudit pages through the audit log.
func (h *Handler) ListAudit(ctx context.Context, req *pb.ListAuditRequest, rsp *pb.ListAuditResponse) error {
	entries, total, next, err := h.Audit.List(ctx, AuditFilter{User: req.User, Kind: req.Kind, Cursor: req.Cursor, Limit: int(req.Limit)})
	if err != nil {
		return auditError(err)
	}
	rsp.Entries, rsp.Total, rsp.Next = entries, int32(total), next
	return nil
}

// Overview counts users, sessions and services, and logins per hour over the
// last day.
func (h *Handler) Overview(ctx context.Context, req *pb.OverviewRequest, rsp *pb.OverviewResponse) error {
	stats, err := h.Users.Stats(ctx, &userpb.StatsRequest{})
	if err != nil {
		return err
	}
	rsp.Users, rsp.DisabledUsers, rsp.ActiveSessions = stats.Users, stats.DisabledUsers, stats.ActiveSessions
	services, err := h.services()
	if err != nil {
		return err
	}
	up := map[string]bool{}
	for _, s := range services {
		if len(s.Nodes) > 0 {
			up[s.Name] = true
		}
		rsp.Nodes += int32(len(s.Nodes))
	}
	rsp.ServicesUp = int32(len(up))
	if rsp.Hours, err = h.Audit.Hourly(ctx); err != nil {
		return auditError(err)
	}
	return nil
}

// record notes an admin's action in the audit log.
func (h *Handler) record(ctx context.Context, kind, subjectID, subjectName, detail string) {
	e := &pb.AuditEntry{Kind: kind, SubjectId: subjectID, SubjectName: subjectName, Detail: detail, ClientAddr: pauth.ClientFromContext(ctx)}
	if acc, ok := auth.AccountFromContext(ctx); ok {
		e.ActorId, e.ActorName = acc.ID, acc.Metadata[pauth.MetaUsername]
	}
	h.Audit.Record(ctx, e)
}
