// Package system is the admin plane: what the registry holds, and (as it
// grows) users, config and audit. Every endpoint but Health needs an admin.
package system

import (
	"context"
	"net/http"
	"sort"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// Handler implements the System RPC service.
type Handler struct {
	reg   registry.Registry
	users userpb.UserService
}

// NewHandler builds the handler on the registry it reports and the user
// service that vouches for sessions.
func NewHandler(reg registry.Registry, users userpb.UserService) *Handler {
	return &Handler{reg: reg, users: users}
}

// Health reports whether the registry answers.
func (h *Handler) Health(ctx context.Context, req *pb.HealthRequest, rsp *pb.HealthResponse) error {
	if _, err := h.reg.ListServices(); err != nil {
		return merrors.New("system.unavailable", "registry: "+err.Error(), http.StatusServiceUnavailable)
	}
	rsp.Status = "ok"
	return nil
}

// ListServices returns every registered service with its nodes and endpoints,
// sorted by name.
func (h *Handler) ListServices(ctx context.Context, req *pb.ListServicesRequest, rsp *pb.ListServicesResponse) error {
	list, err := h.reg.ListServices()
	if err != nil {
		return merrors.New("system.unavailable", "registry: "+err.Error(), http.StatusServiceUnavailable)
	}
	for _, s := range list {
		// ListServices gives names only; GetService gives nodes and endpoints
		// (one entry per version).
		versions, err := h.reg.GetService(s.Name)
		if err != nil {
			continue // gone between the two calls
		}
		for _, v := range versions {
			out := &pb.Service{Name: v.Name, Version: v.Version}
			for _, n := range v.Nodes {
				out.Nodes = append(out.Nodes, &pb.Node{Id: n.Id, Address: n.Address, Metadata: n.Metadata})
			}
			for _, e := range v.Endpoints {
				out.Endpoints = append(out.Endpoints, e.Name)
			}
			sort.Strings(out.Endpoints)
			rsp.Services = append(rsp.Services, out)
		}
	}
	sort.Slice(rsp.Services, func(i, j int) bool {
		a, b := rsp.Services[i], rsp.Services[j]
		return a.Name < b.Name || (a.Name == b.Name && a.Version < b.Version)
	})
	return nil
}

// CheckSession implements auth.SessionChecker by asking the user service,
// which owns sessions, with the caller's own token.
func (h *Handler) CheckSession(ctx context.Context, acc *auth.Account) error {
	_, err := h.users.Info(ctx, &userpb.InfoRequest{})
	if err == nil {
		return nil
	}
	if e := merrors.FromError(err); e.Code == http.StatusUnauthorized {
		return pauth.ErrSessionEnded
	}
	return merrors.New("system.unavailable", "user service: "+err.Error(), http.StatusServiceUnavailable)
}
