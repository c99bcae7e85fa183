package user

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/config"
	pb "github.com/portal-go/portal/proto/user"
)

// codeAt is the TOTP code of secret at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (ah *acctHarness) enrol(t *testing.T, ctx context.Context) (secret string, codes []string) {
	t.Helper()
	var b pb.BeginTOTPResponse
	if err := ah.a.BeginTOTP(ctx, &pb.BeginTOTPRequest{}, &b); err != nil {
		t.Fatal(err)
	}
	var qr pb.TOTPQRCodeResponse
	if err := ah.a.TOTPQRCode(ctx, &pb.TOTPQRCodeRequest{}, &qr); err != nil || len(qr.Png) < 100 || string(qr.Png[1:4]) != "PNG" {
		t.Fatalf("QR code: %v (%d bytes)", err, len(qr.Png))
	}
	wantRPCError(t, ah.a.ConfirmTOTP(ctx, &pb.ConfirmTOTPRequest{Code: "000000"}, &pb.ConfirmTOTPResponse{}), "user.bad_code", 401)
	var c pb.ConfirmTOTPResponse
	if err := ah.a.ConfirmTOTP(ctx, &pb.ConfirmTOTPRequest{Code: codeAt(t, b.Secret, ah.clock.now())}, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.RecoveryCodes) != 10 {
		t.Fatalf("%d recovery codes", len(c.RecoveryCodes))
	}
	return b.Secret, c.RecoveryCodes
}

func (ah *acctHarness) loginOTP(name, pw, otp string) error {
	return ah.h.Login(context.Background(), &pb.LoginRequest{Username: name, Password: pw, Otp: otp}, &pb.LoginResponse{})
}

func TestTOTP(t *testing.T) {
	ah := newAcctHarness(t, nil)
	adminCtx, _ := ah.adminCtx(t) // the first account
	ah.register(t, "alice", alicePW)
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	wantRPCError(t, ah.a.ConfirmTOTP(ctx, &pb.ConfirmTOTPRequest{Code: "123456"}, &pb.ConfirmTOTPResponse{}), "user.no_enrolment", 409)
	secret, codes := ah.enrol(t, ctx)
	if e := ah.audit.of(audit.KindFactorsChange); len(e) != 1 {
		t.Fatalf("audit %+v", e)
	}
	if !ah.info(t, ah.login2(t, "alice", alicePW, codes[0])).TotpEnabled {
		t.Fatal("Info does not say TOTP is on")
	}

	// Without a code: 401 user.mfa_required; a wrong password still 401
	// bad credentials (the code is not asked for before the password).
	wantRPCError(t, ah.loginOTP("alice", alicePW, ""), "user.mfa_required", 401)
	wantRPCError(t, ah.loginOTP("alice", "wrong-password", codeAt(t, secret, ah.clock.now())), "user.bad_credentials", 401)

	// The code confirmed with is not accepted again (same step).
	wantRPCError(t, ah.loginOTP("alice", alicePW, codeAt(t, secret, ah.clock.now())), "user.bad_code", 401)
	// The next step's code works, once.
	ah.clock.advance(totpPeriod * time.Second)
	code := codeAt(t, secret, ah.clock.now())
	if err := ah.loginOTP("alice", alicePW, code); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, ah.loginOTP("alice", alicePW, code), "user.bad_code", 401)
	// A code two steps old is refused; one step old is in the window but
	// older than the last used one.
	ah.clock.advance(totpPeriod * time.Second)
	wantRPCError(t, ah.loginOTP("alice", alicePW, codeAt(t, secret, ah.clock.now().Add(-2*totpPeriod*time.Second))), "user.bad_code", 401)
	wantRPCError(t, ah.loginOTP("alice", alicePW, codeAt(t, secret, ah.clock.now().Add(-totpPeriod*time.Second))), "user.bad_code", 401)

	// Recovery codes: each once (codes[0] was used above).
	wantRPCError(t, ah.loginOTP("alice", alicePW, codes[0]), "user.bad_code", 401)
	if err := ah.loginOTP("alice", alicePW, codes[1]); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, ah.loginOTP("alice", alicePW, codes[1]), "user.bad_code", 401)

	// Another account's code is no code here.
	ah.register(t, "bob", "bob-password-1")
	bobCtx, _ := ah.ctxFor(t, ah.login(t, "bob", "bob-password-1").Token)
	_, bobCodes := ah.enrol(t, bobCtx)
	wantRPCError(t, ah.loginOTP("alice", alicePW, bobCodes[0]), "user.bad_code", 401)

	// An admin resets alice's factors: the password alone signs in.
	aliceID := ah.info(t, ah.login2(t, "alice", alicePW, codes[2])).Id
	if err := ah.a.ResetFactors(adminCtx, &pb.ResetFactorsRequest{UserId: aliceID}, &pb.ResetFactorsResponse{}); err != nil {
		t.Fatal(err)
	}
	ah.login(t, "alice", alicePW)
	if e := ah.audit.of(audit.KindFactorsChange); e[len(e)-1].ActorName != "admin" {
		t.Fatalf("audit %+v", e)
	}
}

func TestWrongCodesCountTowardLockout(t *testing.T) {
	ah := newAcctHarness(t, func(s *config.Settings) { s.Login.MaxFailures = 3 })
	ah.register(t, "alice", alicePW)
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	secret, _ := ah.enrol(t, ctx)
	for range 3 {
		// Asking without a code in between resets nothing.
		wantRPCError(t, ah.loginOTP("alice", alicePW, ""), "user.mfa_required", 401)
		wantRPCError(t, ah.loginOTP("alice", alicePW, "000000"), "user.bad_code", 401)
	}
	ah.clock.advance(totpPeriod * time.Second)
	wantRPCError(t, ah.loginOTP("alice", alicePW, codeAt(t, secret, ah.clock.now())), "user.locked", 429)
}

// login2 signs in with a second factor.
func (ah *acctHarness) login2(t *testing.T, name, pw, otp string) string {
	t.Helper()
	var rsp pb.LoginResponse
	if err := ah.h.Login(context.Background(), &pb.LoginRequest{Username: name, Password: pw, Otp: otp}, &rsp); err != nil {
		t.Fatalf("Login(%s) with a code: %v", name, err)
	}
	return rsp.Token
}

func TestTwoFactorRoles(t *testing.T) {
	ah := newAcctHarness(t, func(s *config.Settings) { s.Accounts.TwoFactorRoles = []string{"admin"} })
	ah.adminCtx(t)
	tok := ah.login(t, "admin", adminPW).Token
	grant := func(tok string) []string {
		t.Helper()
		acc, err := ah.jwt.Inspect(tok)
		if err != nil {
			t.Fatal(err)
		}
		_, _, g, err := ah.h.Check(context.Background(), tok, acc)
		if err != nil {
			t.Fatal(err)
		}
		return g.Permissions
	}
	if slices.Contains(grant(tok), "users.write") {
		t.Fatal("an admin without a second factor holds users.write")
	}
	if in := ah.info(t, tok); !in.TwoFactorRequired || !slices.Contains(in.Roles, "admin") {
		t.Fatalf("Info %+v", in)
	}
	ctx, _ := ah.ctxFor(t, tok)
	secret, _ := ah.enrol(t, ctx)
	ah.clock.advance(totpPeriod * time.Second)
	tok = ah.login2(t, "admin", adminPW, codeAt(t, secret, ah.clock.now()))
	if !slices.Contains(grant(tok), "users.write") {
		t.Fatal("an enrolled admin lacks users.write")
	}
	if in := ah.info(t, tok); in.TwoFactorRequired {
		t.Fatal("still required after enrolling")
	}
}

// TestTOTPKeySealed: the TOTP key is stored sealed (the base32 key is not
// in the record); a key an earlier version stored in the clear still
// signs in, and is sealed at that use; a sealed key copied onto another
// account does not open there.
func TestTOTPKeySealed(t *testing.T) {
	ah := newAcctHarness(t, nil)
	ah.register(t, "alice", alicePW)
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	secret, _ := ah.enrol(t, ctx)
	u, err := ah.h.repo.ByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.TOTPSecret, sealedPrefix) || strings.Contains(u.TOTPSecret, secret) {
		t.Fatalf("stored key %q: not sealed", u.TOTPSecret)
	}
	sealed := u.TOTPSecret

	// As an earlier version stored it: in the clear.
	u.TOTPSecret = secret
	if err := ah.h.repo.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	ah.clock.advance(totpPeriod * time.Second)
	ah.login2(t, "alice", alicePW, codeAt(t, secret, ah.clock.now()))
	if u, _ = ah.h.repo.ByName(context.Background(), "alice"); !strings.HasPrefix(u.TOTPSecret, sealedPrefix) || u.TOTPSecret == sealed {
		t.Fatalf("a clear key was not sealed anew at its use: %q", u.TOTPSecret)
	}

	// alice's sealed key on bob's account: no code of it signs bob in.
	ah.register(t, "bob", "bob-password-1")
	bob, _ := ah.h.repo.ByName(context.Background(), "bob")
	bob.TOTPSecret = sealed
	if err := ah.h.repo.Update(context.Background(), bob); err != nil {
		t.Fatal(err)
	}
	ah.clock.advance(totpPeriod * time.Second)
	wantRPCError(t, ah.loginOTP("bob", "bob-password-1", codeAt(t, secret, ah.clock.now())), "user.bad_code", 401)
}

// TestDisableTOTPAndNewRecoveryCodes: an account turns its own TOTP off
// (password and a code) and makes new recovery codes (a code); each
// refusal: TOTP not on, wrong password, wrong or replayed code, a used
// recovery code, a role that needs two factors.
func TestDisableTOTPAndNewRecoveryCodes(t *testing.T) {
	ah := newAcctHarness(t, func(s *config.Settings) { s.Accounts.TwoFactorRoles = []string{"admin"} })
	adminCtx, _ := ah.adminCtx(t)
	ah.register(t, "alice", alicePW)
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	disable := func(ctx context.Context, pw, code string) error {
		return ah.a.DisableTOTP(ctx, &pb.DisableTOTPRequest{Password: pw, Code: code}, &pb.DisableTOTPResponse{})
	}
	renew := func(ctx context.Context, code string) ([]string, error) {
		var rsp pb.NewRecoveryCodesResponse
		err := ah.a.NewRecoveryCodes(ctx, &pb.NewRecoveryCodesRequest{Code: code}, &rsp)
		return rsp.RecoveryCodes, err
	}
	wantRPCError(t, disable(ctx, alicePW, "123456"), "user.totp_off", 409)
	_, err := renew(ctx, "123456")
	wantRPCError(t, err, "user.totp_off", 409)

	secret, codes := ah.enrol(t, ctx)
	// The code enrolment used (this step) is no code now; a wrong password
	// is refused before the code is looked at.
	wantRPCError(t, disable(ctx, alicePW, codeAt(t, secret, ah.clock.now())), "user.bad_code", 401)
	ah.clock.advance(totpPeriod * time.Second)
	wantRPCError(t, disable(ctx, "wrong-password", codeAt(t, secret, ah.clock.now())), "user.wrong_password", 403)
	wantRPCError(t, disable(ctx, alicePW, "000000"), "user.bad_code", 401)

	// New recovery codes, with a current code: the old ones stop working.
	_, err = renew(ctx, "000000")
	wantRPCError(t, err, "user.bad_code", 401)
	fresh, err := renew(ctx, codeAt(t, secret, ah.clock.now()))
	if err != nil || len(fresh) != 10 {
		t.Fatalf("new recovery codes: %d, %v", len(fresh), err)
	}
	_, err = renew(ctx, codeAt(t, secret, ah.clock.now())) // the same step again
	wantRPCError(t, err, "user.bad_code", 401)
	wantRPCError(t, ah.loginOTP("alice", alicePW, codes[0]), "user.bad_code", 401)
	ah.login2(t, "alice", alicePW, fresh[0])
	wantRPCError(t, disable(ctx, alicePW, fresh[0]), "user.bad_code", 401) // used once already

	// Turned off with a recovery code: the password alone signs in.
	if err := disable(ctx, alicePW, fresh[1]); err != nil {
		t.Fatal(err)
	}
	ah.login(t, "alice", alicePW)
	if in := ah.info(t, ah.login(t, "alice", alicePW).Token); in.TotpEnabled {
		t.Fatal("TOTP still on")
	}
	e := ah.audit.of(audit.KindFactorsChange)
	if len(e) != 3 || e[1].Detail != "10 new recovery codes made; the old ones no longer work" || e[2].Detail != "TOTP turned off by its owner" || e[2].ActorName != "alice" {
		t.Fatalf("audit %+v", e)
	}

	// An admin, whose role needs two factors, cannot turn it off.
	adminSecret, _ := ah.enrol(t, adminCtx)
	ah.clock.advance(totpPeriod * time.Second)
	wantRPCError(t, disable(adminCtx, adminPW, codeAt(t, adminSecret, ah.clock.now())), "user.two_factor_needed", 409)
}
