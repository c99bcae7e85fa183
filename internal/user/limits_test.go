package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	s := testSettings()
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

// readCounter reads a failure counter straight from the store.
func readCounter(t *testing.T, hs *harness, key string) (f failures, expiry time.Duration, found bool) {
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
	f, _, found := readCounter(t, hs, key)
	if n == 0 && found {
		t.Fatalf("counter %s = %+v, want none", key, f)
	}
	if n > 0 && f.Count != n {
		t.Fatalf("counter %s = %+v (found %v), want count %d", key, f, found, n)
	}
}

// TestLockoutAccountFromAddress: failures for one account from one address
// lock that account from that address only; refusals are neither counted
// nor audited.
func TestLockoutAccountFromAddress(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	before := time.Now().UTC()

	for i := 1; i <= 3; i++ {
		// Any case of the name is one account.
		name := []string{"alice", "ALICE", "Alice"}[i-1]
		wantRPCError(t, tryLogin(ctx, hs, name, "wrong-password-"+strconv.Itoa(i), "10.0.0.1"), "user.bad_credentials", 401)
		wantCount(t, hs, "fail/aa/alice@10.0.0.1", i)
		wantCount(t, hs, "fail/acct/alice", i)
		wantCount(t, hs, "fail/addr/10.0.0.1", i)
		if n := len(hs.audit.of(audit.KindLockout)); (i < 3 && n != 0) || (i == 3 && n != 1) {
			t.Fatalf("after %d failures, %d lockout entries: %+v", i, n, hs.audit.of(audit.KindLockout))
		}
	}
	f, expiry, _ := readCounter(t, hs, "fail/aa/alice@10.0.0.1")
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
		lo.Detail != "failed logins to the account from this address reached login.maxFailures (3): logins refused for 300 s" {
		t.Errorf("lockout entry %+v", lo)
	}
	if f := hs.audit.of(audit.KindLoginFailed); len(f) != 3 || f[2].SubjectName != "Alice" || f[2].SubjectID != id || f[2].Detail != "wrong password" {
		t.Errorf("login_failed entries %+v, want 3 for Alice", f)
	}

	// Locked from that address: even the right password is refused, and
	// the refusals are neither counted nor audited.
	secs := wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"))
	if secs < 290 || secs > 300 {
		t.Errorf("retry_after=%d, want just under 300", secs)
	}
	wantLocked(t, tryLogin(ctx, hs, "alice", "wrong-password-4", "10.0.0.1"))
	wantCount(t, hs, "fail/aa/alice@10.0.0.1", 3)
	if n, f := len(hs.audit.of(audit.KindLockout)), len(hs.audit.of(audit.KindLoginFailed)); n != 1 || f != 3 {
		t.Errorf("%d lockout and %d login_failed entries, want 1 and 3", n, f)
	}
	// The owner, from another address: signs in.
	if err := tryLogin(ctx, hs, "alice", alicePW, "10.0.0.2"); err != nil {
		t.Fatalf("alice from another address: %v", err)
	}
}

// TestLockoutAccountWide: the account-wide lock against untrusted devices
// needs login.accountMaxFailures (default and floor 10 x maxFailures)
// failures, which one address cannot give (it is locked at maxFailures), so
// several must; then it refuses untrusted devices from any address, and
// never a trusted device.
func TestLockoutAccountWide(t *testing.T) {
	hs := limitHarness(t, 2, 300)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	var trusted pb.LoginResponse
	if err := hs.h.Login(ctx, &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: "198.51.100.1"}, &trusted); err != nil || trusted.DeviceToken == "" {
		t.Fatalf("first login: %v, device token %q", err, trusted.DeviceToken)
	}
	// One address keeps guessing: 2 count, the rest are refused uncounted.
	for range 5 {
		_ = tryLogin(ctx, hs, "alice", "wrong-password", "203.0.113.1")
	}
	wantCount(t, hs, "fail/acct/alice", 2)
	// Nine addresses more, two each: 20 = 10 x 2.
	for i := 2; i <= 10; i++ {
		addr := "203.0.113." + strconv.Itoa(i)
		if i < 10 {
			for range 2 {
				wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", addr), "user.bad_credentials", 401)
			}
			// Below the account-wide limit: another address still signs in.
			if i == 9 {
				if err := tryLogin(ctx, hs, "alice", alicePW, "192.0.2.200"); err != nil {
					t.Fatalf("alice from a fresh address after 18 failures: %v", err)
				}
			}
			continue
		}
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", addr), "user.bad_credentials", 401)
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", addr), "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/acct/alice", 20)
	l := hs.audit.of(audit.KindLockout)
	if len(l) == 0 || !strings.Contains(l[len(l)-1].Detail, "failed logins to the account from untrusted devices reached login.accountMaxFailures (20)") {
		t.Fatalf("lockout entries %+v, want the account-wide one last", l)
	}
	// Untrusted devices: refused from any address, right password or not.
	wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "192.0.2.201"))
	// The trusted device: signs in, from any address, one of the attacker's too.
	for _, addr := range []string{"198.51.100.1", "203.0.113.1"} {
		if err := hs.h.Login(ctx, &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: addr, DeviceToken: trusted.DeviceToken}, &pb.LoginResponse{}); err != nil {
			t.Fatalf("trusted device from %s: %v", addr, err)
		}
	}
	// A success does not reset the account-wide count.
	wantCount(t, hs, "fail/acct/alice", 20)
}

// TestTrustedDevice: a device token lets its owner past the lockouts of the
// address and of the account from it; its own failures are bounded: past
// maxFailures the token counts for nothing and the client is untrusted.
func TestTrustedDevice(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	hs.register(t, "bob", "bob-password-1")
	ctx := context.Background()
	login := func(name, pw, addr, dev string) (*pb.LoginResponse, error) {
		var rsp pb.LoginResponse
		return &rsp, hs.h.Login(ctx, &pb.LoginRequest{Username: name, Password: pw, ClientAddr: addr, DeviceToken: dev}, &rsp)
	}
	first, err := login("alice", alicePW, "10.0.0.1", "")
	if err != nil {
		t.Fatal(err)
	}
	dev := first.DeviceToken
	if exp := time.Unix(first.DeviceExpiresAt, 0); time.Until(exp) < 89*24*time.Hour || time.Until(exp) > 90*24*time.Hour {
		t.Errorf("device token expires %v, want in 90 days", exp)
	}
	// An attacker at the owner's address locks it for alice (and locks
	// the address for everyone untrusted).
	for range 3 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.1"), "user.bad_credentials", 401)
	}
	wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"))
	// The owner's browser, same address: signs in, and the new token names
	// the same device.
	second, err := login("alice", alicePW, "10.0.0.1", dev)
	if err != nil {
		t.Fatalf("trusted device at a locked address: %v", err)
	}
	if d, ok := hs.h.trustedDevice(second.DeviceToken, hs.h.mustID(t, "alice")); !ok || d == "" {
		t.Fatalf("the renewed device token is not trusted")
	} else if d0, _ := hs.h.trustedDevice(dev, hs.h.mustID(t, "alice")); d0 != d {
		t.Errorf("device id changed from %q to %q", d0, d)
	}

	// Not a trusted device: for another account, altered, or expired.
	for _, tc := range []struct {
		name, tok string
	}{{"bob with alice's token", dev}, {"altered", dev[:len(dev)-2] + "AA"}, {"garbage", "x.y"}} {
		user, pw := "alice", alicePW
		if strings.HasPrefix(tc.name, "bob") {
			user, pw = "bob", "bob-password-1"
		}
		for range 3 {
			_ = tryLogin(ctx, hs, user, "wrong-password", "10.0.0.1")
		}
		if _, err := login(user, pw, "10.0.0.1", tc.tok); err == nil {
			t.Errorf("%s: trusted at a locked address", tc.name)
		}
	}
	hs.h.now = func() time.Time { return time.Now().Add(deviceTTL + time.Minute) }
	if _, ok := hs.h.trustedDevice(dev, hs.h.mustID(t, "alice")); ok {
		t.Errorf("an expired device token is trusted")
	}
	hs.h.now = time.Now

	// The device's own failures: counted per device, not per address or
	// account; at maxFailures the token is locked out.
	devID, _ := hs.h.trustedDevice(dev, hs.h.mustID(t, "alice"))
	acctBefore, _, _ := readCounter(t, hs, "fail/acct/alice")
	for i := 1; i <= 3; i++ {
		if _, err := login("alice", "wrong-password", "10.0.0.9", dev); err == nil {
			t.Fatal("wrong password accepted")
		}
		wantCount(t, hs, "fail/dev/"+devID, i)
	}
	wantCount(t, hs, "fail/aa/alice@10.0.0.9", 0)
	if f, _, _ := readCounter(t, hs, "fail/acct/alice"); f.Count != acctBefore.Count {
		t.Errorf("a trusted device's failures counted for the account: %d -> %d", acctBefore.Count, f.Count)
	}
	// Locked out, the token is ignored: the client is untrusted, so it
	// meets the address's counters (the guessing stays bounded) ...
	for range 3 {
		_, err := login("alice", "wrong-password", "10.0.0.9", dev)
		wantRPCError(t, err, "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/dev/"+devID, 3)
	_, err = login("alice", alicePW, "10.0.0.9", dev)
	wantLocked(t, err)
	// ... and the owner still signs in from elsewhere.
	if _, err := login("alice", alicePW, "10.0.0.10", ""); err != nil {
		t.Fatalf("alice from another address: %v", err)
	}
}

// TestDeviceTokensNeedTheKey: an auth that cannot derive a key issues no
// device token and trusts none.
func TestDeviceTokensNeedTheKey(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	dev := hs.login(t, "alice", alicePW).DeviceToken
	other := newHarness(t) // other keys: another Portal
	other.register(t, "alice", alicePW)
	if _, ok := other.h.trustedDevice(dev, other.h.mustID(t, "alice")); ok {
		t.Errorf("a device token of another key is trusted")
	}
}

func TestLockoutExpires(t *testing.T) {
	// A lockout of a few seconds, not one: under -race on a loaded machine
	// the RPC between the last failure and the locked attempt can take
	// longer than a second, and the lock would be over before it is seen.
	const lockout = 4
	hs := limitHarness(t, 2, lockout)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", ""), "user.bad_credentials", 401)
	}
	if secs := wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "")); secs < 1 || secs > lockout {
		t.Errorf("retry_after=%d, want 1..%d", secs, lockout)
	}
	// Nothing deletes the counter but its record's expiry.
	deadline := time.Now().Add(5 * lockout * time.Second)
	for {
		err := tryLogin(ctx, hs, "alice", alicePW, "")
		if err == nil {
			break
		}
		wantLocked(t, err)
		if time.Now().After(deadline) {
			t.Fatalf("still locked %ds into a %ds lockout", 5*lockout, lockout)
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
	// The account from that address starts again; the address and the
	// account-wide count keep theirs.
	wantCount(t, hs, "fail/aa/alice@10.0.0.1", 0)
	wantCount(t, hs, "fail/addr/10.0.0.1", 2)
	wantCount(t, hs, "fail/acct/alice", 2)
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.1"), "user.bad_credentials", 401)
	}
	if err := tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"); err != nil {
		t.Fatalf("login after the reset and 2 more failures: %v", err)
	}
	// A disabled account's right password is no failure either.
	wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.1"), "user.bad_credentials", 401)
	u, err := hs.h.repo.ByName(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := hs.h.repo.Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"), "user.disabled", 403)
	wantCount(t, hs, "fail/aa/alice@10.0.0.1", 0)
}

// TestLockoutAddress: failures spread over accounts from one address lock
// the address (login.addressMaxFailures) for every untrusted login.
func TestLockoutAddress(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	s := *hs.h.cfg.Current()
	if s.Login.AddressLimit() != 12 {
		t.Fatalf("addressMaxFailures default %d, want 4 x 3", s.Login.AddressLimit())
	}
	s.Login.AddressMaxFailures = 3
	hs.h.cfg = mustStatic(t, s)
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
	if l := hs.audit.of(audit.KindLockout); len(l) != 1 || !strings.Contains(l[0].Detail, "from this address reached login.addressMaxFailures (3)") || l[0].SubjectName != "dave" {
		t.Errorf("lockout entries %+v, want one for the address, on dave", l)
	}
	// A fourth account, right password, from that address: refused.
	wantLocked(t, tryLogin(ctx, hs, "erin", "erin-password", "192.0.2.7"))
	// From elsewhere it works.
	if err := tryLogin(ctx, hs, "erin", "erin-password", "192.0.2.8"); err != nil {
		t.Fatalf("erin from another address: %v", err)
	}
	// Callers that name no address share one ("unknown"): they do not
	// escape the limits.
	for _, n := range []string{"bob", "carol", "dave"} {
		wantRPCError(t, tryLogin(ctx, hs, n, "wrong-password", ""), "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/addr/unknown", 3)
	wantLocked(t, tryLogin(ctx, hs, "erin", "erin-password", ""))
	// Unknown names count too, per name, lowercased.
	for range 3 {
		wantRPCError(t, tryLogin(ctx, hs, "NoBody", "wrong-password", "192.0.2.9"), "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/aa/nobody@192.0.2.9", 3)
	wantLocked(t, tryLogin(ctx, hs, "nobody", "wrong-password", "192.0.2.9"))
}

func mustStatic(t *testing.T, s config.Settings) *config.Center {
	t.Helper()
	c, err := config.Static(s)
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	return c
}

func TestLockoutGarbageNotStored(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	ctx := context.Background()
	for i, name := range []string{"", "x", "a b<c>", "alicé", strings.Repeat("n", 33), "../../etc", "fail/acct/x"} {
		for range 4 { // past maxFailures: never locked, no account counter stored
			wantRPCError(t, tryLogin(ctx, hs, name, "wrong-password", "10.1.0."+strconv.Itoa(i)), "user.bad_credentials", 401)
		}
	}
	// Malformed passwords count as failures (of a valid name).
	wantRPCError(t, tryLogin(ctx, hs, "zed", "short", "10.2.0.1"), "user.bad_credentials", 401)
	keys, err := hs.h.repo.st.List(store.ListPrefix("fail/a"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if fmt.Sprint(keys) != "[fail/aa/zed@10.2.0.1 fail/acct/zed fail/addr/10.1.0.0 fail/addr/10.1.0.1 fail/addr/10.1.0.2 fail/addr/10.1.0.3 fail/addr/10.1.0.4 fail/addr/10.1.0.5 fail/addr/10.1.0.6 fail/addr/10.2.0.1]" {
		t.Fatalf("counters %q, want only zed's and the addresses'", keys)
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
	if *dp != productionHashParams {
		t.Errorf("dummy hash params %+v, want %+v", dp, productionHashParams)
	}
	// And in these tests (CheapHashesForTests), what the cheap one does.
	if up, _, _, err := argon2id.DecodeHash(unknownUserHash); err != nil || *up != *hashParams {
		t.Errorf("unknown users' hash params %+v (%v), want %+v", up, err, hashParams)
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
		err := rpcError(fmt.Errorf("login: %w", &waitError{cause: ErrLocked, retryAfter: tc.wait}))
		me, ok := err.(*merrors.Error)
		if !ok || me.Id != "user.locked" || me.Code != 429 || me.Status != "Too Many Requests" {
			t.Fatalf("rpcError(locked) = %#v", err)
		}
		if l, ok := pb.LockoutOf(err); !ok || l.Message != "too many failed logins" || int(l.RetryAfterSeconds) != tc.secs {
			t.Errorf("wait %v: detail %q, want a Lockout of %d s", tc.wait, me.Detail, tc.secs)
		}
	}
	if !errors.Is(&waitError{cause: ErrLocked}, ErrLocked) {
		t.Errorf("waitError is not ErrLocked")
	}
	err := rpcError(&waitError{cause: ErrRateLimited, retryAfter: 30 * time.Second})
	if l, ok := pb.LockoutOf(err); merrors.FromError(err).Id != "user.rate_limited" || !ok || l.Message != "too many attempts" || l.RetryAfterSeconds != 30 {
		t.Errorf("rpcError(rate limited) = %v", err)
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
	s := testSettings()
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

func TestCounterAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "unknown",
		"192.0.2.7":            "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::9":      "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"::ffff:192.0.2.7":     "::ffff:192.0.2.7",
		"not-an-address":       "not-an-address",
	} {
		if got := counterAddr(in); got != want {
			t.Errorf("counterAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLockoutIPv6Network: the addresses of one IPv6 /64 are one client for
// the counters, so hopping between them gains no guesses.
func TestLockoutIPv6Network(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	adminCtx, _ := hs.adminCtx(t)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "2001:db8:0:1::"+strconv.Itoa(i)), "user.bad_credentials", 401)
	}
	wantCount(t, hs, "fail/aa/alice@2001:db8:0:1::/64", 3)
	wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "2001:db8:0:1::99"))
	if err := tryLogin(ctx, hs, "alice", alicePW, "2001:db8:0:2::1"); err != nil {
		t.Fatalf("alice from another /64: %v", err)
	}
	// The lockout's key names the network; an admin lifts it by that key.
	if err := hs.h.LiftLockout(adminCtx, &pb.LiftLockoutRequest{Kind: "account_address", Key: "alice@2001:db8:0:1::/64"}, &pb.LiftLockoutResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := tryLogin(ctx, hs, "alice", alicePW, "2001:db8:0:1::99"); err != nil {
		t.Fatalf("after the lift: %v", err)
	}
}
