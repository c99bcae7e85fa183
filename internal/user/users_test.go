package user

import (
	"context"
	"errors"
	"fmt"
	"testing"

	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

const adminPW = "admin-password-1"

// adminCtx makes the first admin and returns a context signed in as it.
func (hs *harness) adminCtx(t *testing.T) (context.Context, string) {
	t.Helper()
	if _, _, err := hs.h.EnsureAdmin(context.Background(), adminPW); err != nil {
		t.Fatalf("EnsureAdmin: %v", err)
	}
	ctx, acc := hs.ctxFor(t, hs.login(t, "admin", adminPW).Token)
	return ctx, acc.ID
}

func TestListAndRevokeSessions(t *testing.T) {
	hs := newHarness(t)
	adminCtx, _ := hs.adminCtx(t)
	aliceID := hs.register(t, "alice", alicePW)
	hs.register(t, "bob", "bob-password-1")
	first := hs.login(t, "alice", alicePW)
	second := hs.login(t, "alice", alicePW)
	aliceCtx, _ := hs.ctxFor(t, second.Token)
	bobCtx, _ := hs.ctxFor(t, hs.login(t, "bob", "bob-password-1").Token)

	var own pb.ListSessionsResponse
	if err := hs.h.ListSessions(aliceCtx, &pb.ListSessionsRequest{}, &own); err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	if len(own.Sessions) != 2 {
		t.Fatalf("alice has %d sessions, want 2", len(own.Sessions))
	}
	current := 0
	for _, s := range own.Sessions {
		if s.UserId != aliceID || s.CreatedAt == 0 || s.LastSeen == 0 || s.ExpiresAt <= s.CreatedAt {
			t.Errorf("session %+v", s)
		}
		if s.Current {
			current++
			if s.Id != second.SessionId {
				t.Errorf("current session %s, want %s", s.Id, second.SessionId)
			}
		}
	}
	if current != 1 {
		t.Errorf("%d sessions marked current, want 1", current)
	}

	err := hs.h.ListSessions(bobCtx, &pb.ListSessionsRequest{UserId: aliceID}, &pb.ListSessionsResponse{})
	wantRPCError(t, err, "user.forbidden", 403)
	var seen pb.ListSessionsResponse
	if err := hs.h.ListSessions(adminCtx, &pb.ListSessionsRequest{UserId: aliceID}, &seen); err != nil || len(seen.Sessions) != 2 {
		t.Fatalf("admin ListSessions(alice) = %d sessions, %v; want 2", len(seen.Sessions), err)
	}

	// Bob cannot end Alice's session, nor learn that it exists.
	err = hs.h.RevokeSession(bobCtx, &pb.RevokeSessionRequest{SessionId: first.SessionId}, &pb.RevokeSessionResponse{})
	wantRPCError(t, err, "user.session_not_found", 404)
	err = hs.h.RevokeSession(bobCtx, &pb.RevokeSessionRequest{SessionId: "no-such"}, &pb.RevokeSessionResponse{})
	wantRPCError(t, err, "user.session_not_found", 404)

	if err := hs.h.RevokeSession(aliceCtx, &pb.RevokeSessionRequest{SessionId: first.SessionId}, &pb.RevokeSessionResponse{}); err != nil {
		t.Fatalf("RevokeSession(own): %v", err)
	}
	if _, err := hs.h.repo.Session(context.Background(), first.SessionId); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("revoked session still there: %v", err)
	}
	if err := hs.h.RevokeSession(adminCtx, &pb.RevokeSessionRequest{SessionId: second.SessionId}, &pb.RevokeSessionResponse{}); err != nil {
		t.Fatalf("RevokeSession(admin): %v", err)
	}
	ev := hs.ev.revoked(t)
	if len(ev) != 2 || ev[0].SessionId != first.SessionId || ev[1].SessionId != second.SessionId {
		t.Errorf("session.revoked events %v", ev)
	}
}

func TestListUsers(t *testing.T) {
	hs := newHarness(t)
	ctx, _ := hs.adminCtx(t)
	for i := range 12 {
		hs.register(t, fmt.Sprintf("user%02d", i), "some-password-1")
	}
	hs.register(t, "Zed", "some-password-1")
	tests := []struct {
		name         string
		req          *pb.ListUsersRequest
		first, last  string
		count, total int
	}{
		{"all", &pb.ListUsersRequest{}, "admin", "Zed", 14, 14},
		{"page", &pb.ListUsersRequest{Offset: 3, Limit: 5}, "user02", "user06", 5, 14},
		{"last page", &pb.ListUsersRequest{Offset: 12, Limit: 5}, "user11", "Zed", 2, 14},
		{"past the end", &pb.ListUsersRequest{Offset: 100}, "", "", 0, 14},
		{"negative offset", &pb.ListUsersRequest{Offset: -5, Limit: 1}, "admin", "admin", 1, 14},
		{"search", &pb.ListUsersRequest{Query: "USER1"}, "user10", "user11", 2, 2},
		{"search no case", &pb.ListUsersRequest{Query: "zE"}, "Zed", "Zed", 1, 1},
		{"no match", &pb.ListUsersRequest{Query: "nobody"}, "", "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rsp pb.ListUsersResponse
			if err := hs.h.ListUsers(ctx, tc.req, &rsp); err != nil {
				t.Fatal(err)
			}
			if len(rsp.Users) != tc.count || int(rsp.Total) != tc.total {
				t.Fatalf("%d users of %d, want %d of %d", len(rsp.Users), rsp.Total, tc.count, tc.total)
			}
			if tc.count > 0 && (rsp.Users[0].Username != tc.first || rsp.Users[len(rsp.Users)-1].Username != tc.last) {
				t.Errorf("page %s..%s, want %s..%s", rsp.Users[0].Username, rsp.Users[len(rsp.Users)-1].Username, tc.first, tc.last)
			}
		})
	}
}

func TestUpdateUser(t *testing.T) {
	hs := newHarness(t)
	ctx, adminID := hs.adminCtx(t)
	aliceID := hs.register(t, "alice", alicePW)
	alice := hs.login(t, "alice", alicePW)
	_, aliceAcc := hs.ctxFor(t, alice.Token)
	yes, no := true, false

	err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"root"}}}, &pb.UpdateUserResponse{})
	wantRPCError(t, err, "user.bad_roles", 400)
	err = hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{}}, &pb.UpdateUserResponse{})
	wantRPCError(t, err, "user.bad_roles", 400)
	err = hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: "nobody", Disabled: &yes}, &pb.UpdateUserResponse{})
	wantRPCError(t, err, "user.not_found", 404)

	// Promotion: stored, and gateways told which sessions to look at again.
	var rsp pb.UpdateUserResponse
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"user", "admin", "user"}}}, &rsp); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rsp.User.Roles) != "[admin user]" {
		t.Errorf("roles %v, want [admin user]", rsp.User.Roles)
	}
	if _, _, g, err := hs.h.Check(context.Background(), "", aliceAcc); err != nil || !pauth.IsAdmin(g.Roles) {
		t.Errorf("Check after promotion = %+v, %v; want admin", g, err)
	}
	if ch := hs.ev.changed(); len(ch) != 1 || ch[0].UserId != aliceID || len(ch[0].SessionIds) != 1 || ch[0].SessionIds[0] != alice.SessionId {
		t.Errorf("user.updated events %v", ch)
	}

	// Disabling ends every session at once and refuses login.
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Disabled: &yes}, &rsp); err != nil {
		t.Fatal(err)
	}
	if !rsp.User.Disabled || rsp.SessionsEnded != 1 {
		t.Errorf("disable: %+v, %d sessions ended", rsp.User, rsp.SessionsEnded)
	}
	if err := checkSession(hs.h, aliceAcc); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Errorf("Check after disable = %v", err)
	}
	if ev := hs.ev.revoked(t); len(ev) != 1 || ev[0].SessionId != alice.SessionId {
		t.Errorf("session.revoked events %v", ev)
	}
	err = hs.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.disabled", 403)
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Disabled: &no}, &rsp); err != nil || rsp.User.Disabled {
		t.Fatalf("enable: %+v, %v", rsp.User, err)
	}
	hs.login(t, "alice", alicePW)

	// Alice is an admin too now: the first admin may step down, but Alice,
	// then the last, may not.
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: adminID, Roles: &pb.Roles{Roles: []string{"user"}}}, &rsp); err != nil {
		t.Fatalf("demote one of two admins: %v", err)
	}
	for _, req := range []*pb.UpdateUserRequest{
		{Id: aliceID, Roles: &pb.Roles{Roles: []string{"user"}}},
		{Id: aliceID, Disabled: &yes},
	} {
		err := hs.h.UpdateUser(ctx, req, &pb.UpdateUserResponse{})
		wantRPCError(t, err, "user.last_admin", 409)
	}
	err = hs.h.DeleteUser(ctx, &pb.DeleteUserRequest{Id: aliceID}, &pb.DeleteUserResponse{})
	wantRPCError(t, err, "user.last_admin", 409)
	// A no-op update of the last admin is fine.
	if err := hs.h.UpdateUser(ctx, &pb.UpdateUserRequest{Id: aliceID, Disabled: &no}, &rsp); err != nil {
		t.Errorf("no-op update: %v", err)
	}
}

func TestDeleteUser(t *testing.T) {
	hs := newHarness(t)
	ctx, _ := hs.adminCtx(t)
	bobID := hs.register(t, "bob", "bob-password-1")
	bob := hs.login(t, "bob", "bob-password-1")
	_, bobAcc := hs.ctxFor(t, bob.Token)
	hs.login(t, "bob", "bob-password-1")

	var stats pb.StatsResponse
	if err := hs.h.Stats(ctx, &pb.StatsRequest{}, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Users != 2 || stats.Admins != 1 || stats.ActiveSessions != 3 || stats.DisabledUsers != 0 {
		t.Errorf("stats %+v, want 2 users, 1 admin, 3 sessions", &stats)
	}

	var rsp pb.DeleteUserResponse
	if err := hs.h.DeleteUser(ctx, &pb.DeleteUserRequest{Id: bobID}, &rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.SessionsEnded != 2 {
		t.Errorf("%d sessions ended, want 2", rsp.SessionsEnded)
	}
	if err := checkSession(hs.h, bobAcc); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Errorf("Check after delete = %v", err)
	}
	err := hs.h.Login(context.Background(), &pb.LoginRequest{Username: "bob", Password: "bob-password-1"}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
	err = hs.h.GetUser(ctx, &pb.GetUserRequest{Id: bobID}, &pb.GetUserResponse{})
	wantRPCError(t, err, "user.not_found", 404)
	// The name is free again.
	hs.register(t, "bob", "bob-password-2")

	stats = pb.StatsResponse{}
	if err := hs.h.Stats(ctx, &pb.StatsRequest{}, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Users != 2 || stats.ActiveSessions != 1 {
		t.Errorf("stats after delete %+v, want 2 users, 1 session", &stats)
	}
}
