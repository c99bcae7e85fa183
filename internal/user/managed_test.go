package user

import (
	"context"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/mail"
	pb "github.com/portal-go/portal/proto/user"
)

func TestAdminCreatesUsers(t *testing.T) {
	ah := newAcctHarness(t, nil)
	adminCtx, _ := ah.adminCtx(t)

	// With a password: signs in at once.
	var rsp pb.CreateUserResponse
	if err := ah.a.CreateUser(adminCtx, &pb.CreateUserRequest{Username: "bob", Password: "bob-password-1", Roles: []string{"user"}}, &rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.Invited {
		t.Fatal("invited with a password")
	}
	ah.login(t, "bob", "bob-password-1")

	// Without: an invitation, and nothing signs in until it is followed.
	if err := ah.a.CreateUser(adminCtx, &pb.CreateUserRequest{Username: "carol", Email: "carol@example.com", Roles: []string{"user"}}, &rsp); err != nil {
		t.Fatal(err)
	}
	if !rsp.Invited {
		t.Fatal("not invited")
	}
	ms := ah.mails(t, "carol@example.com")
	if len(ms) != 1 || ms[0].Kind != mail.KindInvite {
		t.Fatalf("mails %+v", ms)
	}
	for _, pw := range []string{"", "carol-password", "0000000000"} {
		err := ah.h.Login(context.Background(), &pb.LoginRequest{Username: "carol", Password: pw}, &pb.LoginResponse{})
		wantRPCError(t, err, "user.bad_credentials", 401)
	}
	invite := ah.lastToken(t, "carol@example.com", "/password/reset")
	if _, err := ah.reset(invite, "carol-password"); err != nil {
		t.Fatal(err)
	}
	if in := ah.info(t, ah.login(t, "carol", "carol-password").Token); !in.EmailVerified {
		t.Fatal("following the invitation does not prove the address")
	}
	// The invitation is used.
	_, err := ah.reset(invite, "carol-password-2")
	wantRPCError(t, err, "user.bad_link", 400)

	// Refusals.
	for _, tc := range []struct {
		req  *pb.CreateUserRequest
		id   string
		code int32
	}{
		{&pb.CreateUserRequest{Username: "dave", Roles: []string{"user"}}, "user.no_email", 409},
		{&pb.CreateUserRequest{Username: "dave", Email: "x", Roles: []string{"user"}}, "user.bad_email", 400},
		{&pb.CreateUserRequest{Username: "dave", Password: "short", Roles: []string{"user"}}, "user.bad_password", 400},
		{&pb.CreateUserRequest{Username: "d", Password: "dave-password", Roles: []string{"user"}}, "user.bad_username", 400},
		{&pb.CreateUserRequest{Username: "dave", Password: "dave-password", Roles: []string{"root"}}, "user.bad_roles", 400},
		{&pb.CreateUserRequest{Username: "BOB", Password: "dave-password", Roles: []string{"user"}}, "user.exists", 409},
		{&pb.CreateUserRequest{Username: "dave", Email: "Carol@example.com", Roles: []string{"user"}}, "user.email_taken", 409},
	} {
		wantRPCError(t, ah.a.CreateUser(adminCtx, tc.req, &pb.CreateUserResponse{}), tc.id, tc.code)
	}
	if e := ah.audit.of(audit.KindRegister); len(e) < 2 || e[len(e)-1].ActorName != "admin" {
		t.Fatalf("audit %+v", e)
	}
}

func TestAdminResetsPasswords(t *testing.T) {
	ah := newAcctHarness(t, nil)
	adminCtx, _ := ah.adminCtx(t)
	id := ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	ah.login(t, "alice", alicePW)

	// A temporary password: sessions end; the next sign-in must change it.
	var rsp pb.ResetUserPasswordResponse
	if err := ah.a.ResetUserPassword(adminCtx, &pb.ResetUserPasswordRequest{UserId: id, Temporary: true}, &rsp); err != nil {
		t.Fatal(err)
	}
	if len(rsp.TemporaryPassword) != 24 || rsp.SessionsEnded != 1 {
		t.Fatalf("%+v", &rsp)
	}
	temp := rsp.TemporaryPassword
	err := ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: temp}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.password_change_required", 403)
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: temp, NewPassword: temp}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.same_password", 400)
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: temp, NewPassword: "short"}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_password", 400)
	// A wrong temporary password with a new one: refused as any wrong password.
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: "wrong-password", NewPassword: newPW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
	var lr pb.LoginResponse
	if err := ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: temp, NewPassword: newPW}, &lr); err != nil || lr.Token == "" {
		t.Fatalf("login with the change: %v", err)
	}
	// Done: the new password signs in plainly; the temporary one no more.
	ah.login(t, "alice", newPW)
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: temp}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)

	// By link: mailed, sessions end.
	ah.clock.advance(relinkAfter + 1)
	rsp = pb.ResetUserPasswordResponse{}
	if err := ah.a.ResetUserPassword(adminCtx, &pb.ResetUserPasswordRequest{UserId: id}, &rsp); err != nil {
		t.Fatal(err)
	}
	if !rsp.Mailed || rsp.TemporaryPassword != "" || rsp.SessionsEnded != 2 {
		t.Fatalf("%+v", &rsp)
	}
	if _, err := ah.reset(ah.lastToken(t, "alice@example.com", "/password/reset"), "alice-password-9"); err != nil {
		t.Fatal(err)
	}
	ah.login(t, "alice", "alice-password-9")

	// Required change: sessions end, the next sign-in must change.
	var req pb.RequirePasswordChangeResponse
	if err := ah.a.RequirePasswordChange(adminCtx, &pb.RequirePasswordChangeRequest{UserId: id}, &req); err != nil || req.SessionsEnded != 1 {
		t.Fatalf("%v %+v", err, &req)
	}
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: "alice-password-9"}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.password_change_required", 403)

	// A user without an address cannot be sent a link; an unknown one is 404.
	bob := ah.register(t, "bob", "bob-password-1")
	wantRPCError(t, ah.a.ResetUserPassword(adminCtx, &pb.ResetUserPasswordRequest{UserId: bob}, &rsp), "user.no_email", 409)
	wantRPCError(t, ah.a.ResetUserPassword(adminCtx, &pb.ResetUserPasswordRequest{UserId: "nobody"}, &rsp), "user.not_found", 404)
	if e := ah.audit.of(audit.KindPasswordReset); len(e) < 2 || e[0].ActorName != "admin" {
		t.Fatalf("audit %+v", e)
	}
}

// TestInvitationLinkRefusals: an invitation link is refused when forged,
// after use, after its 7 days, and sets only its own account's password.
func TestInvitationLinkRefusals(t *testing.T) {
	ah := newAcctHarness(t, nil)
	adminCtx, _ := ah.adminCtx(t)
	for _, name := range []string{"dave", "erin"} {
		if err := ah.a.CreateUser(adminCtx, &pb.CreateUserRequest{Username: name, Email: name + "@example.com", Roles: []string{"user"}}, &pb.CreateUserResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	dave := ah.lastToken(t, "dave@example.com", "/password/reset")
	erin := ah.lastToken(t, "erin@example.com", "/password/reset")

	_, err := ah.reset(forged(), "dave-password-1")
	wantRPCError(t, err, "user.bad_link", 400)

	// dave's link is dave's: it names him and sets no one else's password.
	rsp, err := ah.reset(dave, "dave-password-1")
	if err != nil || rsp.Username != "dave" {
		t.Fatalf("%v, %v", rsp, err)
	}
	wantRPCError(t, ah.h.Login(context.Background(), &pb.LoginRequest{Username: "erin", Password: "dave-password-1"}, &pb.LoginResponse{}), "user.bad_credentials", 401)
	_, err = ah.reset(dave, "dave-password-2")
	wantRPCError(t, err, "user.bad_link", 400)

	// Seven days on, erin's is dead.
	ah.clock.advance(InviteLinkTTL + time.Second)
	_, err = ah.reset(erin, "erin-password-1")
	wantRPCError(t, err, "user.bad_link", 400)
	wantRPCError(t, ah.h.Login(context.Background(), &pb.LoginRequest{Username: "erin", Password: "erin-password-1"}, &pb.LoginResponse{}), "user.bad_credentials", 401)
}
