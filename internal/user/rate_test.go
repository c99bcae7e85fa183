package user

import (
	"context"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	pb "github.com/portal-go/portal/proto/user"
)

// rateHarness is a harness with the given rate limits (window 60 s) and
// lockouts out of reach.
func rateHarness(t *testing.T, r config.RateSettings) *harness {
	t.Helper()
	hs := newHarness(t)
	s := testSettings()
	s.Login.MaxFailures = 1000
	s.RateLimit = r
	hs.h.cfg = mustStatic(t, s)
	return hs
}

// wantRateLimited checks a 429 user.rate_limited and returns its seconds.
func wantRateLimited(t *testing.T, err error) int {
	t.Helper()
	wantRPCError(t, err, "user.rate_limited", 429)
	l, ok := pb.LockoutOf(err)
	if !ok || l.RetryAfterSeconds < 1 || l.RetryAfterSeconds > 60 {
		t.Fatalf("detail %q: want a wait between 1 and 60 s", merrors.FromError(err).Detail)
	}
	return int(l.RetryAfterSeconds)
}

func TestRateLimitLoginPerAddress(t *testing.T) {
	hs := rateHarness(t, config.RateSettings{WindowSeconds: 60, LoginPerAddress: 3, LoginPerAccount: 100, RegisterPerAddress: 100, RegisterPerAccount: 100})
	hs.register(t, "alice", alicePW)
	hs.register(t, "bob", "bob-password-1")
	ctx := context.Background()
	// Successes count too: they are what floods the audit log unbounded.
	for i := range 3 {
		if err := tryLogin(ctx, hs, []string{"alice", "bob", "alice"}[i], []string{alicePW, "bob-password-1", alicePW}[i], "10.0.0.1"); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	n := len(hs.audit.all())
	wantRateLimited(t, tryLogin(ctx, hs, "bob", "bob-password-1", "10.0.0.1"))
	wantRateLimited(t, tryLogin(ctx, hs, "nobody", "wrong-password", "10.0.0.1"))
	if got := len(hs.audit.all()); got != n {
		t.Errorf("refused logins audited: %+v", hs.audit.all()[n:])
	}
	wantCount(t, hs, "fail/addr/10.0.0.1", 0) // refused before the password check
	// Another address is not limited.
	if err := tryLogin(ctx, hs, "bob", "bob-password-1", "10.0.0.2"); err != nil {
		t.Fatalf("bob from another address: %v", err)
	}
	// The window ends: the address may try again.
	hs.h.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	if err := tryLogin(ctx, hs, "bob", "bob-password-1", "10.0.0.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestRateLimitLoginPerAccount(t *testing.T) {
	hs := rateHarness(t, config.RateSettings{WindowSeconds: 60, LoginPerAddress: 100, LoginPerAccount: 2, RegisterPerAddress: 100, RegisterPerAccount: 100})
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	var first pb.LoginResponse
	if err := hs.h.Login(ctx, &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: "10.0.0.1"}, &first); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, tryLogin(ctx, hs, "ALICE", "wrong-password", "10.0.0.2"), "user.bad_credentials", 401)
	// Two per window for the account from untrusted devices, any address.
	wantRateLimited(t, tryLogin(ctx, hs, "alice", alicePW, "10.0.0.3"))
	// A trusted device has a bucket of its own.
	for range 2 {
		if err := hs.h.Login(ctx, &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: "10.0.0.3", DeviceToken: first.DeviceToken}, &pb.LoginResponse{}); err != nil {
			t.Fatalf("trusted device: %v", err)
		}
	}
	wantRateLimited(t, hs.h.Login(ctx, &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: "10.0.0.3", DeviceToken: first.DeviceToken}, &pb.LoginResponse{}))
	// Other accounts are not limited.
	hs.register(t, "bob", "bob-password-1")
	if err := tryLogin(ctx, hs, "bob", "bob-password-1", "10.0.0.3"); err != nil {
		t.Fatalf("bob: %v", err)
	}
}

func TestRateLimitRegister(t *testing.T) {
	hs := rateHarness(t, config.RateSettings{WindowSeconds: 60, LoginPerAddress: 100, LoginPerAccount: 100, RegisterPerAddress: 2, RegisterPerAccount: 1})
	reg := func(addr, name string) error {
		ctx := pauth.ContextWithClient(context.Background(), addr)
		return hs.h.Register(ctx, &pb.RegisterRequest{Username: name, Password: alicePW}, &pb.RegisterResponse{})
	}
	if err := reg("10.0.0.1", "alice"); err != nil {
		t.Fatal(err)
	}
	// Per name: a second try for alice, even from elsewhere, is limited
	// (not told whether the name is taken).
	wantRateLimited(t, reg("10.0.0.2", "ALICE"))
	if err := reg("10.0.0.1", "bob"); err != nil {
		t.Fatal(err)
	}
	// Per address: a third registration from 10.0.0.1 is limited.
	wantRateLimited(t, reg("10.0.0.1", "carol"))
	if err := reg("10.0.0.3", "carol"); err != nil {
		t.Fatalf("carol from another address: %v", err)
	}
	// Malformed requests are refused before counting.
	wantRPCError(t, reg("10.0.0.4", "x"), "user.bad_username", 400)
	if err := reg("10.0.0.4", "dave"); err != nil {
		t.Fatalf("dave: %v", err)
	}
}
