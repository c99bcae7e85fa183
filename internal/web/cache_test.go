package web

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
)

// TestNoCacheAsksEveryRequest: with the cache off (PORTAL_CACHE=none) every
// request asks the user service about its session; with it on, only the
// first (TestSessionCacheAndRevocation).
func TestNoCacheAsksEveryRequest(t *testing.T) {
	users := newFakeUsers()
	center, err := config.Static(settings())
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	g := New(Options{
		Users: users, System: &fakeSystem{}, Auth: verifier(t), Config: center,
		Cache: platform.NewNoCache(),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	tok := validToken(t, "s-1")
	for i := range 3 {
		if w := serve(g, get("/api/v1/me", bearer(tok))); w.Code != http.StatusOK {
			t.Fatalf("request %d: status = %d", i, w.Code)
		}
	}
	if n := users.count("Info"); n != 3 {
		t.Fatalf("Info called %d times for 3 requests, want 3 (no cache)", n)
	}
}
