package user

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// callWith runs the auth wrapper for an API key on an endpoint and returns
// its error: nil when the key may call it.
func (hs *harness) callWith(key, endpoint string) error {
	ok := func(context.Context, server.Request, interface{}) error { return nil }
	ctx := pauth.ContextWithToken(context.Background(), key)
	return pauth.HandlerWrapper(hs.jwt, Endpoints, hs.h)(ok)(ctx, namedRequest{endpoint: endpoint}, nil)
}

// namedRequest is the least of a server.Request of the user service the
// auth wrapper reads.
type namedRequest struct {
	server.Request
	endpoint string
}

func (namedRequest) Service() string    { return "user" }
func (r namedRequest) Endpoint() string { return r.endpoint }

func TestAPIKeys(t *testing.T) {
	hs := newHarness(t)
	adminCtx, _ := hs.adminCtx(t)
	aliceID := hs.register(t, "alice", alicePW)
	if err := hs.h.CreateRole(adminCtx, &pb.Role{Name: "reader", Permissions: []string{"users.read", "audit.read"}}, &pb.RoleResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Roles: &pb.Roles{Roles: []string{"reader"}}}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	aliceCtx, _ := hs.ctxFor(t, hs.login(t, "alice", alicePW).Token)
	exp := time.Now().Add(time.Hour).Unix()

	// Only what alice holds, a sane name and expiry.
	for _, tc := range []struct {
		req  *pb.CreateTokenRequest
		id   string
		code int32
	}{
		{&pb.CreateTokenRequest{Name: "ci", Permissions: []string{"users.write"}, ExpiresAt: exp}, "user.token_permissions", 403},
		{&pb.CreateTokenRequest{Name: "ci", Permissions: []string{"nonsense"}, ExpiresAt: exp}, "user.bad_permissions", 400},
		{&pb.CreateTokenRequest{Name: "", ExpiresAt: exp}, "user.bad_token", 400},
		{&pb.CreateTokenRequest{Name: "ci", ExpiresAt: time.Now().Add(-time.Minute).Unix()}, "user.bad_token", 400},
		{&pb.CreateTokenRequest{Name: "ci", ExpiresAt: time.Now().Add(400 * 24 * time.Hour).Unix()}, "user.bad_token", 400},
	} {
		wantRPCError(t, hs.h.CreateToken(aliceCtx, tc.req, &pb.CreateTokenResponse{}), tc.id, tc.code)
	}
	var made pb.CreateTokenResponse
	if err := hs.h.CreateToken(aliceCtx, &pb.CreateTokenRequest{Name: "ci", Permissions: []string{"users.read", "audit.read"}, ExpiresAt: exp}, &made); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	key := made.Secret
	if !strings.HasPrefix(key, pauth.KeyPrefix) || made.Token.Id == "" || made.Token.UserId != aliceID {
		t.Fatalf("made %+v, %q", made.Token, key)
	}
	// Stored hashed: the secret is in no record.
	keys, err := hs.h.repo.st.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		recs, err := hs.h.repo.st.Read(k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k+string(recs[0].Value), key[len(pauth.KeyPrefix)+tokenIDLen+1:]) {
			t.Fatalf("the key's secret is stored at %s", k)
		}
	}

	// The key works as a bearer token, for what it holds.
	if err := hs.callWith(key, "User.ListUsers"); err != nil {
		t.Fatalf("ListUsers with the key: %v", err)
	}
	wantRPCError(t, hs.callWith(key, "User.UpdateUser"), "auth.forbidden", 403)
	// A key holds no more than it was given, whatever its owner holds.
	var narrow pb.CreateTokenResponse
	if err := hs.h.CreateToken(aliceCtx, &pb.CreateTokenRequest{Name: "audit only", Permissions: []string{"audit.read"}, ExpiresAt: exp}, &narrow); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, hs.callWith(narrow.Secret, "User.ListUsers"), "auth.forbidden", 403)
	if err := hs.h.RevokeToken(aliceCtx, &pb.RevokeTokenRequest{Id: narrow.Token.Id}, &pb.RevokeTokenResponse{}); err != nil {
		t.Fatalf("revoke own key: %v", err)
	}
	wantRPCError(t, hs.callWith(narrow.Secret, "User.Info"), "auth.session_ended", 401)
	keyCtx, keyAcc := hs.ctxFor(t, key)
	if keyAcc.ID != aliceID || keyAcc.Metadata[pauth.MetaKey] != made.Token.Id {
		t.Errorf("the key's account %+v", keyAcc)
	}
	var info pb.InfoResponse
	if err := hs.h.Info(keyCtx, &pb.InfoRequest{}, &info); err != nil || info.KeyId != made.Token.Id || fmt.Sprint(info.Permissions) != "[audit.read users.read]" {
		t.Errorf("Info with the key = %+v, %v", &info, err)
	}
	// A key cannot make keys, nor change the password.
	wantRPCError(t, hs.h.CreateToken(keyCtx, &pb.CreateTokenRequest{Name: "x", ExpiresAt: exp}, &pb.CreateTokenResponse{}), "user.session_only", 403)
	wantRPCError(t, hs.h.ChangePassword(keyCtx, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: newPW}, &pb.ChangePasswordResponse{}), "user.session_only", 403)

	// A forged or altered key is refused.
	altered := key[:len(key)-1] + "A"
	if key[len(key)-1] == 'A' {
		altered = key[:len(key)-1] + "B"
	}
	for _, bad := range []string{key + "x", altered, pauth.KeyPrefix + "nothex__________secret", pauth.KeyPrefix} {
		wantRPCError(t, hs.callWith(bad, "User.Info"), "auth.session_ended", 401)
	}

	// The key shrinks with its owner: demoted, it loses users.read.
	if err := hs.h.UpdateRole(adminCtx, &pb.Role{Name: "reader", Permissions: []string{"audit.read"}}, &pb.RoleResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, hs.callWith(key, "User.ListUsers"), "auth.forbidden", 403)
	if g := hs.grantOf(t, key); fmt.Sprint(g.Permissions) != "[audit.read]" {
		t.Errorf("the key's grant %+v, want audit.read only", g)
	}
	// Owner disabled: refused.
	yes, no := true, false
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Disabled: &yes}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, hs.callWith(key, "User.Info"), "auth.session_ended", 401)
	if err := hs.h.UpdateUser(adminCtx, &pb.UpdateUserRequest{Id: aliceID, Disabled: &no}, &pb.UpdateUserResponse{}); err != nil {
		t.Fatal(err)
	}

	// Listing: the owner's own, or anyone's with users.read; never a secret.
	aliceCtx, _ = hs.ctxFor(t, hs.login(t, "alice", alicePW).Token)
	var own pb.ListTokensResponse
	if err := hs.h.ListTokens(aliceCtx, &pb.ListTokensRequest{}, &own); err != nil || len(own.Tokens) != 1 || own.Tokens[0].LastUsed == 0 {
		t.Fatalf("ListTokens = %+v, %v; want one, used", own.Tokens, err)
	}
	var theirs pb.ListTokensResponse
	if err := hs.h.ListTokens(adminCtx, &pb.ListTokensRequest{UserId: aliceID}, &theirs); err != nil || len(theirs.Tokens) != 1 {
		t.Fatalf("admin ListTokens(alice) = %+v, %v", theirs.Tokens, err)
	}
	bobCtx, _ := func() (context.Context, string) {
		hs.register(t, "bob", "bob-password-1")
		ctx, acc := hs.ctxFor(t, hs.login(t, "bob", "bob-password-1").Token)
		return ctx, acc.ID
	}()
	wantRPCError(t, hs.h.ListTokens(bobCtx, &pb.ListTokensRequest{UserId: aliceID}, &pb.ListTokensResponse{}), "user.forbidden", 403)
	wantRPCError(t, hs.h.RevokeToken(bobCtx, &pb.RevokeTokenRequest{Id: made.Token.Id}, &pb.RevokeTokenResponse{}), "user.token_not_found", 404)

	// An admin revokes it: refused at once.
	if err := hs.h.RevokeToken(adminCtx, &pb.RevokeTokenRequest{Id: made.Token.Id}, &pb.RevokeTokenResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, hs.callWith(key, "User.Info"), "auth.session_ended", 401)
	// A key with users.write manages accounts; a deleted owner's keys go.
	var ops pb.CreateTokenResponse
	if err := hs.h.CreateToken(adminCtx, &pb.CreateTokenRequest{Name: "ops", Permissions: []string{"users.write"}, ExpiresAt: exp}, &ops); err != nil {
		t.Fatal(err)
	}
	var last pb.CreateTokenResponse
	if err := hs.h.CreateToken(aliceCtx, &pb.CreateTokenRequest{Name: "last", ExpiresAt: exp}, &last); err != nil {
		t.Fatal(err)
	}
	opsCtx, _ := hs.ctxFor(t, ops.Secret)
	if err := hs.h.DeleteUser(opsCtx, &pb.DeleteUserRequest{Id: aliceID}, &pb.DeleteUserResponse{}); err != nil {
		t.Fatalf("DeleteUser with a users.write key: %v", err)
	}
	if left, err := hs.h.repo.Tokens(t.Context(), aliceID); err != nil || len(left) != 0 {
		t.Errorf("a deleted user's keys: %v, %v; want none", left, err)
	}
	wantRPCError(t, hs.callWith(last.Secret, "User.Info"), "auth.session_ended", 401)
	if e := hs.audit.of(audit.KindDelete); len(e) != 1 || e[0].ActorName != "admin" {
		t.Errorf("delete entries %+v, want one by admin (through the key)", e)
	}

	if e := hs.audit.of(audit.KindTokenCreated); len(e) != 4 || e[0].SubjectID != aliceID || !strings.Contains(e[0].Detail, "audit.read,users.read") {
		t.Errorf("token_created entries %+v", e)
	}
	if e := hs.audit.of(audit.KindTokenRevoked); len(e) != 2 || e[1].ActorName != "admin" || !strings.Contains(e[1].Detail, "by an admin") {
		t.Errorf("token_revoked entries %+v", e)
	}
}

// A key past its expiry is refused, whatever the store still holds; its
// last use is written at most once per seenEvery.
func TestAPIKeyExpiryAndLastUsed(t *testing.T) {
	hs := newHarness(t)
	hs.register(t, "alice", alicePW)
	aliceCtx, _ := hs.ctxFor(t, hs.login(t, "alice", alicePW).Token)
	var made pb.CreateTokenResponse
	if err := hs.h.CreateToken(aliceCtx, &pb.CreateTokenRequest{Name: "ci", ExpiresAt: time.Now().Add(time.Hour).Unix()}, &made); err != nil {
		t.Fatal(err)
	}
	writes := func() time.Time {
		tok, err := hs.h.repo.Token(t.Context(), made.Token.Id)
		if err != nil {
			t.Fatal(err)
		}
		return tok.LastUsed
	}
	now := time.Now()
	hs.h.now = func() time.Time { return now }
	for range 3 {
		if err := hs.callWith(made.Secret, "User.Info"); err != nil {
			t.Fatal(err)
		}
	}
	first := writes()
	if !first.Equal(now.UTC()) {
		t.Fatalf("last used %v, want %v", first, now)
	}
	now = now.Add(seenEvery / 2)
	if err := hs.callWith(made.Secret, "User.Info"); err != nil {
		t.Fatal(err)
	}
	if !writes().Equal(first) {
		t.Errorf("last used written again within %v", seenEvery)
	}
	now = now.Add(seenEvery)
	if err := hs.callWith(made.Secret, "User.Info"); err != nil {
		t.Fatal(err)
	}
	if !writes().After(first) {
		t.Errorf("last used not written after %v", seenEvery)
	}
	now = time.Unix(made.Token.ExpiresAt, 0)
	wantRPCError(t, hs.callWith(made.Secret, "User.Info"), "auth.session_ended", 401)
}
