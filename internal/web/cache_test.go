package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"go-micro.dev/v4/cache"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
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
	g := track(t, New(Options{
		Users: users, System: &fakeSystem{}, Auth: verifier(t), Config: center,
		Cache: platform.NewNoCache(),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
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

// multiCache is a memory cache that also reads several keys at once, and
// counts how it is read.
type multiCache struct {
	cache.Cache
	gets, getManys int
}

func (m *multiCache) Get(ctx context.Context, key string) (interface{}, time.Time, error) {
	m.gets++
	return m.Cache.Get(ctx, key)
}

func (m *multiCache) GetMany(ctx context.Context, keys ...string) ([]interface{}, error) {
	m.getManys++
	out := make([]interface{}, len(keys))
	for i, k := range keys {
		out[i], _, _ = m.Cache.Get(ctx, k)
	}
	return out, nil
}

// TestMultiGetterCache: a cache that reads several keys at once is read once
// per request, for the tombstone and the verdict together, and both count.
func TestMultiGetterCache(t *testing.T) {
	users := newFakeUsers()
	center, err := config.Static(settings())
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	mc := &multiCache{Cache: platform.NewMemoryCache(time.Minute)}
	g := track(t, New(Options{
		Users: users, System: &fakeSystem{}, Auth: verifier(t), Config: center, Cache: mc,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	tok := validToken(t, "s-1")
	for i := range 3 {
		if w := serve(g, get("/api/v1/me", bearer(tok))); w.Code != http.StatusOK {
			t.Fatalf("request %d: status = %d", i, w.Code)
		}
	}
	if n := users.count("Info"); n != 1 {
		t.Errorf("Info called %d times, want 1 (the verdict read through GetMany)", n)
	}
	if mc.getManys != 3 || mc.gets != 0 {
		t.Errorf("%d GetMany and %d Get calls for 3 requests, want 3 and 0", mc.getManys, mc.gets)
	}
	if err := g.OnSessionRevoked(context.Background(), &userpb.SessionRevoked{SessionId: "s-1"}); err != nil {
		t.Fatalf("OnSessionRevoked: %v", err)
	}
	if w := serve(g, get("/api/v1/me", bearer(tok))); w.Code != http.StatusUnauthorized {
		t.Errorf("after revocation: status = %d, want 401 (the tombstone read through GetMany)", w.Code)
	}
}

// feed is a RevocationFeed a test switches.
type feed struct {
	since time.Time
	live  bool
}

func (f *feed) Live() (time.Time, bool) { return f.since, f.live }

// TestVerdictsNeedLiveRevocations: a cached verdict is trusted only while
// the gateway hears revocations, and only when it was asked for after it
// last began to hear them (what was revoked in a gap is not trusted).
func TestVerdictsNeedLiveRevocations(t *testing.T) {
	users := newFakeUsers()
	center, err := config.Static(settings())
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	f := &feed{since: time.Now(), live: true}
	g := track(t, New(Options{
		Users: users, System: &fakeSystem{}, Auth: verifier(t), Config: center,
		Cache: platform.NewMemoryCache(time.Minute), Revocations: f,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	tok := validToken(t, "s-1")
	me := func(step string, wantInfo int) {
		t.Helper()
		if w := serve(g, get("/api/v1/me", bearer(tok))); w.Code != http.StatusOK {
			t.Fatalf("%s: status = %d", step, w.Code)
		}
		if n := users.count("Info"); n != wantInfo {
			t.Fatalf("%s: Info called %d times in all, want %d", step, n, wantInfo)
		}
	}
	me("live, first", 1)
	me("live, cached", 1)
	f.live = false
	me("down", 2)
	me("down again", 3)
	f.live, f.since = true, time.Now()
	me("live again: the verdict cached before is not trusted", 4)
	me("live again, cached", 4)
}
