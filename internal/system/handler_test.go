package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/config"
	runtimepb "github.com/portal-go/portal/proto/runtime"
	pb "github.com/portal-go/portal/proto/system"
)

type fakeRuntime struct {
	procs []*runtimepb.Process
	err   error
}

func (f fakeRuntime) Processes(context.Context) ([]*runtimepb.Process, error) { return f.procs, f.err }
func (f fakeRuntime) Restart(context.Context, string) error                   { return f.err }
func (f fakeRuntime) Logs(context.Context, string, int) ([]string, error) {
	return []string{"a line"}, f.err
}

type fakeAudit struct {
	err      error
	mu       sync.Mutex
	recorded []*pb.AuditEntry
}

// entries returns what was recorded so far.
func (f *fakeAudit) entries() []*pb.AuditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recorded)
}

func (f *fakeAudit) List(context.Context, AuditFilter) ([]*pb.AuditEntry, int, string, error) {
	return nil, 0, "", f.err
}
func (f *fakeAudit) Hourly(context.Context) ([]*pb.HourCount, error) { return nil, f.err }
func (f *fakeAudit) Record(_ context.Context, e *pb.AuditEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, e)
}

func wantID(t *testing.T, err error, id string, code int32) {
	t.Helper()
	e := merrors.FromError(err)
	if e.Id != id || e.Code != code {
		t.Fatalf("error = %v, want %s %d", err, id, code)
	}
}

func TestRuntimeEndpoints(t *testing.T) {
	ctx := context.Background()
	// No supervisor at all, or one the registry does not hold.
	for name, rt := range map[string]Runtime{"nil": nil, "not registered": fakeRuntime{err: ErrNotSupervised}} {
		t.Run(name, func(t *testing.T) {
			h := NewHandler(Options{Registry: registry.NewMemoryRegistry(), Runtime: rt})
			var rsp pb.ListServicesResponse
			if err := h.ListServices(ctx, &pb.ListServicesRequest{}, &rsp); err != nil || rsp.Supervised {
				t.Fatalf("ListServices = %v, supervised %v", err, rsp.Supervised)
			}
			wantID(t, h.RestartService(ctx, &pb.RestartServiceRequest{Name: "web"}, &pb.RestartServiceResponse{}), "system.not_supervised", 409)
			wantID(t, h.ServiceLogs(ctx, &pb.ServiceLogsRequest{Name: "web"}, &pb.ServiceLogsResponse{}), "system.not_supervised", 409)
		})
	}
	h := NewHandler(Options{Registry: registry.NewMemoryRegistry(), Runtime: fakeRuntime{procs: []*runtimepb.Process{{Name: "web", Status: "running"}}}})
	var rsp pb.ListServicesResponse
	if err := h.ListServices(ctx, &pb.ListServicesRequest{}, &rsp); err != nil || !rsp.Supervised || len(rsp.Processes) != 1 {
		t.Fatalf("supervised ListServices = %v, %+v", err, &rsp)
	}
	// The supervisor's own errors pass through.
	notFound := merrors.NotFound("runtime.not_found", "no such service")
	h = NewHandler(Options{Registry: registry.NewMemoryRegistry(), Runtime: fakeRuntime{err: notFound}})
	wantID(t, h.RestartService(ctx, &pb.RestartServiceRequest{Name: "billing"}, &pb.RestartServiceResponse{}), "runtime.not_found", 404)
	wantID(t, h.ListServices(ctx, &pb.ListServicesRequest{}, &pb.ListServicesResponse{}), "system.unavailable", 503)
}

func TestUpdateConfig(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portal.yaml")
	cfg, err := config.OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	a := &fakeAudit{}
	h := NewHandler(Options{Config: cfg, Audit: a, History: NewHistory(store.NewMemoryStore(), nil)})
	wantID(t, h.UpdateConfig(ctx, &pb.UpdateConfigRequest{Document: "auth:\n  expireTime: 1\n"}, &pb.ConfigResponse{}), "system.bad_config", 400)
	if len(a.recorded) != 0 {
		t.Fatalf("a refused edit was audited: %+v", a.recorded)
	}
	var rsp pb.ConfigResponse
	if err := h.UpdateConfig(ctx, &pb.UpdateConfigRequest{Document: "auth:\n  expireTime: 600\n"}, &rsp); err != nil {
		t.Fatal(err)
	}
	if !rsp.Writable || rsp.Source != path || cfg.Current().Auth.ExpireTime != 600 {
		t.Errorf("response %+v, expireTime %d", &rsp, cfg.Current().Auth.ExpireTime)
	}
	if len(a.recorded) != 1 || a.recorded[0].Kind != "config_change" || a.recorded[0].Detail != "auth.expireTime: 900 -> 600" {
		t.Errorf("audited %+v", a.recorded)
	}

	static, err := config.Static(config.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	h = NewHandler(Options{Config: static, Audit: a, History: NewHistory(store.NewMemoryStore(), nil)})
	wantID(t, h.UpdateConfig(ctx, &pb.UpdateConfigRequest{Document: "{}"}, &pb.ConfigResponse{}), "system.config_read_only", 409)
}

func TestAuditErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		id   string
		code int32
	}{
		{fmt.Errorf("%w: kind", audit.ErrInvalid), "system.bad_request", 400},
		{audit.ErrBadCursor, "system.bad_request", 400},
		{fmt.Errorf("%w: redis down", audit.ErrStore), "system.unavailable", 503},
		{errors.New("anything else"), "system.unavailable", 503},
	} {
		h := NewHandler(Options{Audit: &fakeAudit{err: tc.err}})
		wantID(t, h.ListAudit(context.Background(), &pb.ListAuditRequest{}, &pb.ListAuditResponse{}), tc.id, tc.code)
	}
}
