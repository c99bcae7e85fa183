package user

import (
	"context"
	"testing"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// TestPasswordChangeCountsFailures: a wrong current password is a failed
// login for the account and the caller's address, audited; once locked the
// check is refused (429) even with the right password; a trusted device
// passes.
func TestPasswordChangeCountsFailures(t *testing.T) {
	hs := limitHarness(t, 3, 300)
	hs.register(t, "alice", alicePW)
	rsp := hs.login(t, "alice", alicePW)
	sessCtx, _ := hs.ctxFor(t, rsp.Token)
	ctx := pauth.ContextWithClient(sessCtx, "10.0.0.5")
	change := func(ctx context.Context, old, dev string) error {
		return hs.h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: old, NewPassword: "a-new-password-1", DeviceToken: dev}, &pb.ChangePasswordResponse{})
	}
	for i := 1; i <= 3; i++ {
		wantRPCError(t, change(ctx, "wrong-password", ""), "user.wrong_password", 403)
		wantCount(t, hs, "fail/aa/alice@10.0.0.5", i)
		wantCount(t, hs, "fail/addr/10.0.0.5", i)
	}
	if f := hs.audit.of(audit.KindLoginFailed); len(f) != 3 || f[0].ClientAddr != "10.0.0.5" || f[0].SubjectName != "alice" {
		t.Errorf("login_failed entries %+v", f)
	}
	if l := hs.audit.of(audit.KindLockout); len(l) != 1 {
		t.Errorf("lockout entries %+v, want 1", l)
	}
	wantLocked(t, change(ctx, alicePW, ""))
	// From the trusted device the owner may still change it.
	if err := change(ctx, alicePW, rsp.DeviceToken); err != nil {
		t.Fatalf("change from the trusted device: %v", err)
	}
}

func TestListAndLiftLockouts(t *testing.T) {
	hs := limitHarness(t, 2, 300)
	adminCtx, _ := hs.adminCtx(t)
	hs.register(t, "alice", alicePW)
	ctx := context.Background()
	for range 2 {
		wantRPCError(t, tryLogin(ctx, hs, "alice", "wrong-password", "10.0.0.1"), "user.bad_credentials", 401)
	}
	wantRPCError(t, tryLogin(ctx, hs, "bob", "wrong-password", "10.0.0.2"), "user.bad_credentials", 401)
	var list pb.ListLockoutsResponse
	if err := hs.h.ListLockouts(adminCtx, &pb.ListLockoutsRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	// Only what refuses logins: alice from 10.0.0.1 (2 of 2); not the
	// account (2 of 20), the address (2 of 8) or bob (1 of 2).
	if len(list.Lockouts) != 1 || list.Lockouts[0].Kind != "account_address" || list.Lockouts[0].Key != "alice@10.0.0.1" || list.Lockouts[0].Failures != 2 || list.Lockouts[0].Username != "alice" || list.Lockouts[0].Until <= hs.h.now().Unix() {
		t.Fatalf("lockouts %+v", list.Lockouts)
	}
	wantLocked(t, tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"))

	for _, bad := range []*pb.LiftLockoutRequest{{Kind: "account_address", Key: "bob@10.0.0.9"}, {Kind: "nonsense", Key: "alice@10.0.0.1"}, {Kind: "account", Key: ""}} {
		wantRPCError(t, hs.h.LiftLockout(adminCtx, bad, &pb.LiftLockoutResponse{}), "user.lockout_not_found", 404)
	}
	if err := hs.h.LiftLockout(adminCtx, &pb.LiftLockoutRequest{Kind: "account_address", Key: "alice@10.0.0.1"}, &pb.LiftLockoutResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := tryLogin(ctx, hs, "alice", alicePW, "10.0.0.1"); err != nil {
		t.Fatalf("login after the lift: %v", err)
	}
	l := hs.audit.of(audit.KindLockoutLifted)
	if len(l) != 1 || l[0].ActorName != "admin" || l[0].SubjectName != "alice" || l[0].SubjectID != hs.h.mustID(t, "alice") || l[0].Detail != "account_address alice@10.0.0.1 (2 failures)" {
		t.Errorf("lockout_lifted entries %+v", l)
	}
	list.Lockouts = nil
	if err := hs.h.ListLockouts(adminCtx, &pb.ListLockoutsRequest{}, &list); err != nil || len(list.Lockouts) != 0 {
		t.Fatalf("after the lift: %+v, %v", list.Lockouts, err)
	}
}

// TestEnsureAdminOncePerStore: the first admin is made once per store; one
// deleted is not made again, with or without a password.
func TestEnsureAdminOncePerStore(t *testing.T) {
	hs := newHarness(t)
	if created, _, err := hs.h.EnsureAdmin(t.Context(), adminPW); err != nil || !created {
		t.Fatalf("EnsureAdmin = %v, %v", created, err)
	}
	u, err := hs.h.repo.ByName(t.Context(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.h.repo.Delete(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{adminPW, ""} {
		if created, gen, err := hs.h.EnsureAdmin(t.Context(), pw); err != nil || created || gen != "" {
			t.Fatalf("EnsureAdmin(%q) after the delete = %v, %q, %v; want nothing made", pw, created, gen, err)
		}
	}
	if _, err := hs.h.repo.ByName(t.Context(), "admin"); err != ErrNotFound {
		t.Fatalf("admin came back: %v", err)
	}

	// A store with accounts from before the record: it had its admin.
	old := newHarness(t)
	old.register(t, "alice", alicePW)
	if created, _, err := old.h.EnsureAdmin(t.Context(), adminPW); err != nil || created {
		t.Fatalf("EnsureAdmin on an old store = %v, %v; want nothing made", created, err)
	}
	if done, err := old.h.repo.Bootstrapped(t.Context()); err != nil || !done {
		t.Fatalf("old store not marked: %v, %v", done, err)
	}
}
