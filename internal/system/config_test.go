package system

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv/poll"
	pb "github.com/portal-go/portal/proto/system"
)

func newConfigHandler(t *testing.T) (*Handler, *config.Center, *fakeAudit, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portal.yaml")
	cfg, err := config.OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	a := &fakeAudit{}
	h := NewHandler(Options{Config: cfg, Audit: a, History: NewHistory(store.NewMemoryStore(), nil)})
	if err := h.SyncConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	return h, cfg, a, path
}

func history(t *testing.T, h *Handler) *pb.ConfigHistoryResponse {
	t.Helper()
	var rsp pb.ConfigHistoryResponse
	if err := h.ConfigHistory(context.Background(), &pb.ConfigHistoryRequest{}, &rsp); err != nil {
		t.Fatal(err)
	}
	return &rsp
}

// Every applied change is a version: the start, edits, a rollback (itself a
// new version, audited as a rollback); an edit from an old version is a
// conflict; an unknown version is refused.
func TestConfigHistory(t *testing.T) {
	ctx := context.Background()
	h, cfg, a, _ := newConfigHandler(t)
	if hs := history(t, h); hs.Current != 1 || len(hs.Versions) != 1 || hs.Versions[0].Origin != "built-in" {
		t.Fatalf("history at start = %+v", hs)
	}
	v1 := int64(1)
	var rsp pb.ConfigResponse
	if err := h.UpdateConfig(ctx, &pb.UpdateConfigRequest{Document: "auth:\n  expireTime: 600\n", BaseVersion: &v1}, &rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.Version != 2 {
		t.Errorf("version after an edit = %d, want 2", rsp.Version)
	}
	// A second admin, still looking at version 1: refused, nothing written.
	wantID(t, h.UpdateConfig(ctx, &pb.UpdateConfigRequest{Document: "auth:\n  expireTime: 1200\n", BaseVersion: &v1}, &pb.ConfigResponse{}), "system.config_conflict", 409)
	if cfg.Current().Auth.ExpireTime != 600 {
		t.Errorf("the conflicting edit was applied: %d", cfg.Current().Auth.ExpireTime)
	}
	wantID(t, h.RollbackConfig(ctx, &pb.RollbackConfigRequest{Version: 1, BaseVersion: &v1}, &pb.ConfigResponse{}), "system.config_conflict", 409)
	wantID(t, h.RollbackConfig(ctx, &pb.RollbackConfigRequest{Version: 99}, &pb.ConfigResponse{}), "system.config_version_unknown", 404)

	v2 := int64(2)
	if err := h.RollbackConfig(ctx, &pb.RollbackConfigRequest{Version: 1, BaseVersion: &v2}, &rsp); err != nil {
		t.Fatal(err)
	}
	if cfg.Current().Auth.ExpireTime != 900 || rsp.Version != 3 {
		t.Errorf("after the rollback: expireTime %d, version %d", cfg.Current().Auth.ExpireTime, rsp.Version)
	}
	hs := history(t, h)
	if hs.Current != 3 || len(hs.Versions) != 3 || hs.Versions[0].Version != 3 {
		t.Fatalf("history = %+v", hs)
	}
	top := hs.Versions[0]
	if top.Origin != "rollback" || top.RollbackOf != 1 || len(top.Changes) != 1 || top.Changes[0].Key != "auth.expireTime" ||
		top.Changes[0].Old != "600" || top.Changes[0].New != "900" {
		t.Errorf("the rollback's version = %+v", top)
	}
	e := a.entries()
	last := e[len(e)-1]
	if last.Kind != "config_rollback" || last.Detail != "to version 1: auth.expireTime: 600 -> 900" {
		t.Errorf("rollback audited as %+v", last)
	}
}

// A change made to the file, not through the service, is a version with no
// user, from file, and audited.
func TestConfigHistoryHearsFile(t *testing.T) {
	h, cfg, a, path := newConfigHandler(t)
	cfg.OnChange(h.ConfigChanged)
	if err := h.UpdateConfig(context.Background(), &pb.UpdateConfigRequest{Document: "auth:\n  expireTime: 600\n"}, &pb.ConfigResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("auth:\n  expireTime: 1200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, "the file's change never reached the history", func() bool { return history(t, h).Current == 3 })
	v := history(t, h).Versions[0]
	if v.Origin != "file" || v.ActorId != "" || len(v.Changes) != 1 || v.Changes[0].New != "1200" {
		t.Errorf("the file's version = %+v", v)
	}
	poll.Wait(t, 5*time.Second, "the file's change was not audited", func() bool {
		e := a.entries()
		return len(e) == 2 && e[1].Detail == "from file: auth.expireTime: 600 -> 1200"
	})
}

// The history keeps the last HistoryKeep versions; Append refuses a stale
// base; Undo takes back the head.
func TestHistoryStore(t *testing.T) {
	hs := NewHistory(store.NewMemoryStore(), nil)
	for i := int64(0); i < HistoryKeep+2; i++ {
		if ok, err := hs.Append(i, &Version{Origin: "edit", Document: "{}"}); !ok || err != nil {
			t.Fatalf("Append(%d) = %v, %v", i, ok, err)
		}
	}
	if ok, _ := hs.Append(5, &Version{}); ok {
		t.Error("Append from a stale base succeeded")
	}
	list, err := hs.List()
	if err != nil || len(list) != HistoryKeep || list[0].Version != HistoryKeep+2 || list[len(list)-1].Version != 3 {
		t.Fatalf("List = %d versions (%v), newest %d", len(list), err, list[0].Version)
	}
	if _, err := hs.Get(2); err != ErrVersionUnknown {
		t.Errorf("Get(trimmed) = %v", err)
	}
	if err := hs.Undo(HistoryKeep + 2); err != nil {
		t.Fatal(err)
	}
	if head, _ := hs.Head(); head != HistoryKeep+1 {
		t.Errorf("head after Undo = %d", head)
	}
}
