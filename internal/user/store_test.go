package user

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"

	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// storeGetter is a Getter over a go-micro store that records each call's
// keys, or fails when err is set.
type storeGetter struct {
	st    store.Store
	calls [][]string
	err   error
}

func (g *storeGetter) Get(keys ...string) ([][]byte, error) {
	g.calls = append(g.calls, keys)
	if g.err != nil {
		return nil, g.err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if recs, err := g.st.Read(k); err == nil && len(recs) > 0 {
			out[i] = recs[0].Value
		}
	}
	return out, nil
}

// TestRepoGetter: with a Getter, a session and its user are read in one
// call, with the same results and errors as through the store.
func TestRepoGetter(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	g := &storeGetter{st: st}
	plain, fast := NewRepo(st), NewRepo(st).WithGetter(g)

	u := &User{ID: "u-1", Username: "alice", Roles: []string{"user"}, CreatedAt: time.Unix(100, 0).UTC()}
	if err := plain.Create(ctx, u); err != nil {
		t.Fatalf("Create: %v", err)
	}
	s := &Session{ID: "s-1", UserID: "u-1", ExpiresAt: time.Now().Add(time.Hour).UTC().Round(time.Second)}
	if err := plain.CreateSession(ctx, s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}

	for name, r := range map[string]*Repo{"store": plain, "getter": fast} {
		gs, gu, err := r.SessionAndUser(ctx, "s-1", "u-1")
		if err != nil {
			t.Fatalf("%s: SessionAndUser: %v", name, err)
		}
		if gs.ID != s.ID || !gs.ExpiresAt.Equal(s.ExpiresAt) || gu.Username != "alice" || !slices.Equal(gu.Roles, u.Roles) {
			t.Errorf("%s: got %+v, %+v", name, gs, gu)
		}
		if _, _, err := r.SessionAndUser(ctx, "s-none", "u-1"); !errors.Is(err, ErrSessionEnded) {
			t.Errorf("%s: missing session: %v, want ErrSessionEnded", name, err)
		}
		if _, _, err := r.SessionAndUser(ctx, "s-none", "u-none"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: missing user and session: %v, want ErrNotFound (the user is checked first)", name, err)
		}
		if got, err := r.Get(ctx, "u-1"); err != nil || got.Username != "alice" {
			t.Errorf("%s: Get: %v, %v", name, got, err)
		}
	}
	want := [][]string{
		{"session/s-1", "user/u-1"}, {"session/s-none", "user/u-1"}, {"session/s-none", "user/u-none"}, {"user/u-1"},
	}
	if !slices.EqualFunc(g.calls, want, slices.Equal[[]string]) {
		t.Errorf("getter calls %q, want %q (one per read)", g.calls, want)
	}

	g.err = errors.New("connection refused")
	if _, _, err := fast.SessionAndUser(ctx, "s-1", "u-1"); !errors.Is(err, ErrStoreUnavailable) {
		t.Errorf("getter failing: %v, want ErrStoreUnavailable", err)
	}
}

// infoRequest is the least of a server.Request the auth wrapper reads.
type infoRequest struct{ server.Request }

// checkOnly is the handler's Check, without what it hands the handler.
type checkOnly struct{ h *Handler }

func (c checkOnly) Check(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, pauth.Grant, error) {
	_, acc, g, err := c.h.Check(ctx, tok, acc)
	return ctx, acc, g, err
}

func (infoRequest) Service() string  { return "user" }
func (infoRequest) Endpoint() string { return "User.Info" }

// TestInfoReusesCheckedRecords: behind the auth wrapper, an Info call reads
// the session and the user once (Check hands the handler what it read), not
// twice; with a checker that only checks, twice.
func TestInfoReusesCheckedRecords(t *testing.T) {
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	hs := newHarnessOn(t, st)
	hs.register(t, "alice", "alice-password")
	tok := hs.login(t, "alice", "alice-password").Token
	g := &storeGetter{st: st}
	hs.h.repo = NewRepo(st).WithGetter(g)

	info := func(ctx context.Context, _ server.Request, rsp interface{}) error {
		return hs.h.Info(ctx, &pb.InfoRequest{}, rsp.(*pb.InfoResponse))
	}
	ctx := pauth.ContextWithToken(context.Background(), tok)
	for _, tc := range []struct {
		name  string
		fn    server.HandlerFunc
		reads int
	}{
		{"Check", pauth.HandlerWrapper(hs.jwt, Endpoints, hs.h)(info), 1},
		{"a check that leaves the context alone", pauth.HandlerWrapper(hs.jwt, Endpoints, checkOnly{hs.h})(info), 2},
	} {
		g.calls = nil
		var rsp pb.InfoResponse
		if err := tc.fn(ctx, infoRequest{}, &rsp); err != nil {
			t.Fatalf("%s: Info: %v", tc.name, err)
		}
		if rsp.Username != "alice" || rsp.SessionId == "" {
			t.Errorf("%s: Info = %+v", tc.name, &rsp)
		}
		if len(g.calls) != tc.reads {
			t.Errorf("%s: %d reads %q, want %d", tc.name, len(g.calls), g.calls, tc.reads)
		}
	}
}

// TestRepoPingAsksGetter: with a Getter, Ping fails when the Getter does,
// though the store answers: the Getter serves logins, so readiness (the
// gateway's /readyz, the registration check) must wait for it too.
func TestRepoPingAsksGetter(t *testing.T) {
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	g := &storeGetter{st: st}
	r := NewRepo(st).WithGetter(g)
	if err := r.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	g.err = errors.New("EOF")
	if err := r.Ping(context.Background()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Ping with the Getter failing = %v, want ErrStoreUnavailable", err)
	}
}
