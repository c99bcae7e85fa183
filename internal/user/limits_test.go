package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/config"
	pb "github.com/portal-go/portal/proto/user"
)

// limitHarness is a harness whose config says login.maxFailures = maxFail and
// login.lockoutSeconds = lockout.
func limitHarness(t *testing.T, maxFail, lockout int) *harness {
	t.Helper()
	hs := newHarness(t)
	s := config.Defaults()
	s.Login = config.LoginSettings{MaxFailures: maxFail, LockoutSeconds: lockout}
	cfg, err := config.Static(s)
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	hs.h.cfg = cfg
	return hs
}

func tryLogin(ctx context.Context, hs *harness, name, pw, addr string) error {
	return hs.h.Login(ctx, &pb.LoginRequest{Username: name, Password: pw, ClientAddr: addr}, &pb.LoginResponse{})
}

// wantLocked checks a user.locked error and returns its retry_after seconds.
func wantLocked(t *testing.T, err error) int {
	t.Helper()
	wantRPCError(t, err, "user.locked", 429)
	l, ok := pb.LockoutOf(err)
	if !ok {
		t.Fatalf("detail %q is no Lockout", merrors.FromError(err).Detail)
	}
	return int(l.RetryAfterSeconds)
}

// counter reads a failure counter straight from the store.
func counter(t *testing.T, hs *harness, key string) (f failures, expiry time.Duration, found bool) {
	t.Helper()
	recs, err := hs.h.repo.st.Read(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return f, 0, false
	}
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if err := json.Unmarshal(recs[0].Value, &f); err != nil {
		t.Fatalf("counter %s = %q: %v", key, recs[0].Value, err)
	}
	return f, recs[0].Expiry, true
}

func wantCount(t *testing.T, hs *harness, key string, n int) {
	t.Helper()
	f, _, found := counter(t, hs, key)
	if n == 0 && found {
		t.Fatalf("counter %s = %+v, want none", key, f)
	}
	if n > 0 && f.Count != n {
		t.Fatalf("counter %s = %+v (found %v), want count %d", key, f, found, n)
	}
}

func TestLockoutAccount(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	before := time.Now().UTC()

	for i := 1; i <= 3; i++ {
		// Any case of the name is one account.
		name := []string{"alice", "ALICE", "Alice"}[i-1]
		wantRPCError(t, tryLogin(ctx, hs, name, "wrong-password-"+strconv.Itoa(i), "10.0.0.1"), "user.bad_credentials", 401)
		wantCount(t, hs, "fail/acct/alice", i)
		wantCount(t, hs, "fail/addr/10.0.0.1", i)
		if n := len(hs.audit.of(audit.KindLockout)); (i < 3 && n != 0) || (i == 3 && n != 1) {
			t.Fatalf("after %d failures, %d lockout entries: %+v", i, n, hs.audit.of(audit.KindLockout))
		}
	}
	f, expiry, _ := counter(t, hs, "fail/acct/alice")
	if f.Start.Before(before.Add(-time.Second)) || f.Start.After(time.Now()) {
		t.Errorf("window start %v, want about %v", f.Start, before)
	}
	// The record expires by itself, lockoutSeconds after the last failure.
	if expiry <= 290*time.Second || expiry > 300*time.Second {
		t.Errorf("counter record expiry %v, want just under 300s", expiry)
	}
	id := hs.h.mustID(t, "alice")
	lo := hs.audit.of(audit.KindLockout)[0]
	if lo.SubjectName != "Alice" || lo.SubjectID != id || lo.ClientAddr != "10.0.0.1" ||
		lo.Detail != "failed logins per account and address reached login.maxFailures (3): logins refused for 300 s" {
		t.Errorf("lockout entry %+v", lo)
	}
	if f := hs.audit.of(audit.KindLoginFailed); len(f) != 3 || f[2].SubjectName != "Alice" || f[2].SubjectID != id || f[2].Detail != "wrong password" {
		t.Errorf("login_failed entries %+v, want 3 for Alice", f)
	}

	// Locked: even the right password is refused, from any address, and the
	// refusals are neither counted nor audited.
	for _, addr := range []string{"10.0.0.1", "10.0.0.2", ""} {
		secs := wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, addr))
		if secs < 290 || secs > 300 {
			t.Errorf("retry_after=%d, want just under 300", secs)
		}
	}
	wantLocked(t, tryLogin(ctx, hs, "alice", "wrong-password-4", "10.0.0.2"))
	wantCount(t, hs, "fail/acct/alice", 3)
	wantCount(t, hs, "fail/addr/10.0.0.2", 0)
	if n, f := len(hs.audit.of(audit.KindLockout)), len(hs.audit.of(audit.KindLoginFailed)); n != 1 || f != 3 {
		t.Errorf("%d lockout and %d login_failed entries, want 1 and 3", n, f)
	}
}

func TestLockoutExpires(t *testing.T) {
	hs := limitHarness(t, 2, 1)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", ""), "user.bad_credentials", 401)
	}
	if secs := wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "")); secs != 1 {
		t.Errorf("retry_after=%d, want 1", secs)
	}
	// Nothing deletes the counter but its record's expiry.
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := tryLogin(ctx, hs, "alice", alicePW, "")
		if err == nil {
			break
		}
		wantLocked(t, err)
		if time.Now().After(deadline) {
			t.Fatalf("still locked 3s into a 1s lockout")
		}
		time.Sleep(50 * time.Millisecond) // pacing between polls
	}
	wantCount(t, hs, "fail/acct/alice", 0)
}

func TestLockoutResetOnSuccess(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.1"), "user.bad_credentials", 401)
	}
	if err := tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"); err != nil {
		t.Fatalf("login after 2 of 3 failures: %v", err)
	}
	// The account starts again; the address keeps its count.
	wantCount(t, hs, "fail/acct/alice", 0)
	wantCount(t, hs, "fail/addr/10.0.0.1", 2)
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.9"), "user.bad_credentials", 401)
	}
	if err := tryLogin(ctx, hs, "alice", alicePW, "10.0.0.9"); err != nil {
		t.Fatalf("login after the reset and 2 more failures: %v", err)
	}
	// A disabled account's right password is no failure either.
	wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", ""), "user.bad_credentials", 401)
	u, err := hs.h.repo.ByName(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := hs.h.repo.Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, tryLogin(ctx, hs, "alice", alicePW, ""), "user.disabled", 403)
	wantCount(t, hs, "fail/acct/alice", 0)
}

func TestLockoutAddress(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	for _, n := range []string{"bob", "carol", "dave", "erin"} {
		hs.register(t, n, n+"-password")
	}
	ctx := context.Background()
	// One wrong password each for three accounts, from one address.
	for _, n := range []string{"bob", "carol", "dave"} {
		wantRPCError(t, tryLogin(ctx, hs, n, "wrong-password", "192.0.2.7"), "user.bad_credentials", 401)
		wantCount(t, hs, "fail/acct/"+n, 1)
	}
	wantCount(t, hs, "fail/addr/192.0.2.7", 3)
	if l := hs.audit.of(audit.KindLockout); len(l) != 1 || !strings.Contains(l[0].Detail, "per address reached") || l[0].SubjectName != "dave" {
		t.Errorf("lockout entries %+v, want one for the address, on dave", l)
	}
	// A fourth account, right password, from that address: refused.
	wantLocked(t, tryLogin(ctx, hs, "erin", "erin-password", "192.0.2.7"))
	// From elsewhere, or without an address (no address counter), it works.
	if err := tryLogin(ctx, hs, "erin", "erin-password", "192.0.2.8"); err != nil {
		t.Fatalf("erin from another address: %v", err)
	}
	if err := tryLogin(ctx, hs, "bob", "bob-password", ""); err != nil {
		t.Fatalf("bob without an address: %v", err)
	}
	// Unknown names count too, per name, lowercased.
	for range 3 {
		wantRPCError(t, tryLogin(ctx, hs, "NoBody", "wrong-password", ""), "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/acct/nobody", 3)
	wantLocked(t, tryLogin(ctx, hs, "nobody", "wrong-password", ""))
}

func TestLockoutGarbageNotStored(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	ctx := context.Background()
	for _, name := range []string{"", "x", "a b<c>", "alicé", strings.Repeat("n", 33), "../../etc", "fail/acct/x"} {
		for range 4 { // past maxFailures: never locked, nothing stored
			wantRPCError(t, tryLogin(ctx, hs, name, "wrong-password", ""), "user.bad_credentials", 401)
		}
	}
	// Malformed passwords count as failures (of a valid name).
	wantRPCError(t, tryLogin(ctx, hs, "zed", "short", ""), "user.bad_credentials", 401)
	keys, err := hs.h.repo.st.List(store.ListPrefix("fail/"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[fail/acct/zed]" {
		t.Fatalf("counters %q, want only fail/acct/zed", keys)
	}
	// The address is cut to size like the session's.
	wantRPCError(t, tryLogin(ctx, hs, "x", "wrong-password", strings.Repeat("1", 100)), "user.bad_credentials", 401)
	wantCount(t, hs, "fail/addr/"+strings.Repeat("1", 64), 1)
}

// TestLockoutConcurrent: guesses sent at once learn no more than maxFailures
// results; the others are refused, before or after their hash.
func TestLockoutConcurrent(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	const n = 12
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- tryLogin(context.Background(), hs, "alice", "wrong-password-"+strconv.Itoa(i), "")
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	count := map[string]int{}
	for err := range errs {
		count[merrors.FromError(err).Id]++
	}
	if count["user.bad_credentials"] != 3 || count["user.locked"] != n-3 {
		t.Fatalf("outcomes %v, want 3 user.bad_credentials and %d user.locked", count, n-3)
	}
	wantCount(t, hs, "fail/acct/alice", 3)
	if l := hs.audit.of(audit.KindLockout); len(l) != 1 {
		t.Errorf("lockout entries %+v, want 1", l)
	}
}

// TestLoginComparesForUnknownUsers: a login for an unknown name reaches the
// password comparison as a known name's does (against dummyHash, of the same
// cost), while a locked login does not. Deterministic, no timing: with a
// cancelled context, entering checkPassword fails at once with ErrBusy (503).
func TestLoginComparesForUnknownUsers(t *testing.T) {
	hs := limitHarness(t, 2, 300)
	hs.register(t, "alice", alicePW)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, name := range []string{"alice", "nobody"} {
		wantRPCError(t, tryLogin(cancelled, hs, name, alicePW, "10.0.0.1"), "user.unavailable", 503)
		// No verdict, nothing counted.
		wantCount(t, hs, "fail/acct/"+name, 0)
		wantCount(t, hs, "fail/addr/10.0.0.1", 0)
	}
	// The dummy hash costs what a real one does.
	dp, _, _, err := argon2id.DecodeHash(dummyHash)
	if err != nil {
		t.Fatal(err)
	}
	if *dp != *hashParams {
		t.Errorf("dummy hash params %+v, want %+v", dp, hashParams)
	}
	// Locked, known or not: refused before the comparison (429, not 503).
	for _, name := range []string{"alice", "nobody"} {
		for range 2 {
			wantRPCError(t, tryLogin(context.Background(), hs, name, "wrong-password", ""), "user.bad_credentials", 401)
		}
		wantLocked(t, tryLogin(cancelled, hs, name, alicePW, ""))
	}
}

func TestLockedRPCError(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		secs int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1200 * time.Millisecond, 2}, {300 * time.Second, 300}} {
		err := rpcError(fmt.Errorf("login: %w", &lockedError{retryAfter: tc.wait}))
		me, ok := err.(*merrors.Error)
		if !ok || me.Id != "user.locked" || me.Code != 429 || me.Status != "Too Many Requests" {
			t.Fatalf("rpcError(locked) = %#v", err)
		}
		if l, ok := pb.LockoutOf(err); !ok || l.Message != "too many failed logins" || int(l.RetryAfterSeconds) != tc.secs {
			t.Errorf("wait %v: detail %q, want a Lockout of %d s", tc.wait, me.Detail, tc.secs)
		}
	}
	if !errors.Is(&lockedError{}, ErrLocked) {
		t.Errorf("lockedError is not ErrLocked")
	}
}

// failingCounters is a store whose counters cannot be read.
type failingCounters struct{ store.Store }

func (s failingCounters) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	if strings.HasPrefix(key, "fail/") {
		return nil, errors.New("connection refused")
	}
	return s.Store.Read(key, opts...)
}

// TestLockoutStoreDown: without its counters, Login fails closed (503).
func TestLockoutStoreDown(t *testing.T) {
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	hs := newHarnessOn(t, failingCounters{st})
	hs.register(t, "alice", alicePW)
	wantRPCError(t, tryLogin(context.Background(), hs, "alice", alicePW, "10.0.0.1"), "user.unavailable", 503)
}

// benchHandler is a handler on a memory store with the given limits; it
// mints no tokens (the benchmarks never log in).
func benchHandler(b *testing.B, maxFail int) *harness {
	st := store.NewMemoryStore()
	b.Cleanup(func() { _ = st.Close() })
	s := config.Defaults()
	s.Login = config.LoginSettings{MaxFailures: maxFail, LockoutSeconds: 300}
	cfg, err := config.Static(s)
	if err != nil {
		b.Fatal(err)
	}
	hs := &harness{h: NewHandler(NewRepo(st), nil, cfg, Events{Revoked: &events{}, Changed: &events{}}, slog.New(slog.DiscardHandler))}
	if err := hs.h.Register(context.Background(), &pb.RegisterRequest{Username: "alice", Password: alicePW}, &pb.RegisterResponse{}); err != nil {
		b.Fatal(err)
	}
	return hs
}

// BenchmarkLoginLocked is the cost of a refused login (two counter reads on
// the memory store); BenchmarkLoginWrongPassword that of a counted failure (a
// password comparison, then two counter writes).
func BenchmarkLoginLocked(b *testing.B) {
	hs := benchHandler(b, 1)
	_ = tryLogin(context.Background(), hs, "alice", "wrong-password", "10.0.0.1")
	for b.Loop() {
		if err := tryLogin(context.Background(), hs, "alice", alicePW, "10.0.0.1"); merrors.FromError(err).Id != "user.locked" {
			b.Fatalf("Login = %v, want user.locked", err)
		}
	}
}

func BenchmarkLoginWrongPassword(b *testing.B) {
	hs := benchHandler(b, 1000)
	for b.Loop() {
		if err := tryLogin(context.Background(), hs, "alice", "wrong-password", ""); merrors.FromError(err).Id != "user.bad_credentials" {
			b.Fatalf("Login = %v, want user.bad_credentials", err)
		}
	}
}

func BenchmarkLoginUnknownUser(b *testing.B) {
	hs := benchHandler(b, 1000)
	for b.Loop() {
		if err := tryLogin(context.Background(), hs, "nobody", "wrong-password", ""); merrors.FromError(err).Id != "user.bad_credentials" {
			b.Fatalf("Login = %v, want user.bad_credentials", err)
		}
	}
}
