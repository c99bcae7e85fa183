package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"google.golang.org/protobuf/proto"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/system"
	systempb "github.com/portal-go/portal/proto/system"
)

// auditSystem answers ListAudit with one entry and next, recording requests.
type auditSystem struct {
	fakeSystem
	next string
	got  []*systempb.ListAuditRequest
}

func (f *auditSystem) ListAudit(_ context.Context, in *systempb.ListAuditRequest, _ ...client.CallOption) (*systempb.ListAuditResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, in)
	return &systempb.ListAuditResponse{Entries: []*systempb.AuditEntry{{Id: "e1", Kind: "login"}}, Total: 120, Next: f.next}, nil
}

func (f *auditSystem) last() *systempb.ListAuditRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[len(f.got)-1]
}

// systemClient is the client the gateway's JSON routes call through: it
// answers System.ListAudit from sys.
type systemClient struct {
	client.Client
	sys *auditSystem
}

func (c systemClient) NewRequest(service, endpoint string, req interface{}, _ ...client.RequestOption) client.Request {
	return client.NewRequest(service, endpoint, req)
}

func (c systemClient) Call(ctx context.Context, req client.Request, rsp interface{}, _ ...client.CallOption) error {
	if req.Endpoint() != "System.ListAudit" {
		return fmt.Errorf("systemClient: no %s", req.Endpoint())
	}
	out, err := c.sys.ListAudit(ctx, req.Body().(*systempb.ListAuditRequest))
	if err != nil {
		return err
	}
	proto.Merge(rsp.(proto.Message), out)
	return nil
}

// TestAuditPagesByCursor: the audit page and API pass the cursor through and
// link the next page by the cursor the log gave, not by an offset.
func TestAuditPagesByCursor(t *testing.T) {
	users := newFakeUsers()
	users.info.Roles = []string{"admin", "user"}
	users.info.Permissions = []string{"audit.read"}
	sys := &auditSystem{next: "0000000000000000042.e1"}
	center, err := config.Static(settings())
	if err != nil {
		t.Fatal(err)
	}
	g := track(t, New(Options{
		Users: users, System: sys, Auth: verifier(t), Config: center,
		Client: systemClient{sys: sys}, Endpoints: []*endpoint.Table{system.Endpoints},
		Cache: platform.NewMemoryCache(time.Minute), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	tok := validToken(t, "s-1")

	w := serve(g, get("/admin/audit?kind=login", bearer(tok)))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /admin/audit = %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	if !strings.Contains(body, `href="/admin/audit?cursor=0000000000000000042.e1&amp;kind=login"`) || !strings.Contains(body, "Older") {
		t.Fatalf("no link to the next page by cursor: %s", body)
	}
	if strings.Contains(body, `id="prev"`) || strings.Contains(body, "offset=") {
		t.Fatalf("the first page links back or by offset: %s", body)
	}
	if r := sys.last(); r.Cursor != "" || r.Kind != "login" {
		t.Fatalf("first page asked %+v", r)
	}

	w = serve(g, get("/admin/audit?kind=login&cursor=0000000000000000042.e1", bearer(tok)))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `href="/admin/audit?kind=login" id="prev"`) {
		t.Fatalf("second page = %d, no link to the newest: %s", w.Code, w.Body)
	}
	if r := sys.last(); r.Cursor != "0000000000000000042.e1" {
		t.Fatalf("second page asked cursor %q", r.Cursor)
	}

	w = serve(g, get("/api/v1/admin/audit?cursor=c1&limit=5", bearer(tok)))
	var rsp struct {
		Total int    `json:"total"`
		Next  string `json:"next"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rsp) != nil || rsp.Next != sys.next || rsp.Total != 120 {
		t.Fatalf("API = %d %s", w.Code, w.Body)
	}
	if r := sys.last(); r.Cursor != "c1" || r.Limit != 5 {
		t.Fatalf("API asked %+v", r)
	}
}
