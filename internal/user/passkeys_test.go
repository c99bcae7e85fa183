package user

import (
	"context"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/user/passkeytest"
	pb "github.com/portal-go/portal/proto/user"
)

const testOrigin, testRPID = "https://portal.example", "portal.example"

type softKey = passkeytest.Key

func newSoftKey(t *testing.T) *softKey { return passkeytest.New(t, testOrigin, testRPID) }

var b64 = base64.RawURLEncoding

type pkHarness struct {
	*acctHarness
	p *Passkeys
}

func newPKHarness(t *testing.T, edit func(*config.Settings)) *pkHarness {
	t.Helper()
	ah := newAcctHarness(t, edit)
	return &pkHarness{acctHarness: ah, p: NewPasskeys(ah.h)}
}

// signedIn registers name and returns a context of a new session of it.
func (ph *pkHarness) signedIn(t *testing.T, name string) context.Context {
	t.Helper()
	ph.register(t, name, alicePW)
	ctx, _ := ph.ctxFor(t, ph.login(t, name, alicePW).Token)
	return ctx
}

func (ph *pkHarness) beginReg(t *testing.T, ctx context.Context) *pb.BeginPasskeyResponse {
	t.Helper()
	var b pb.BeginPasskeyResponse
	if err := ph.p.BeginRegistration(ctx, &pb.BeginPasskeyRequest{}, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

func (ph *pkHarness) finishReg(ctx context.Context, b *pb.BeginPasskeyResponse, name string, cred []byte) error {
	return ph.p.FinishRegistration(ctx, &pb.FinishPasskeyRequest{Ceremony: b.Ceremony, Name: name, Credential: cred}, &pb.Passkey{})
}

// addKey registers a new soft key for the session of ctx.
func (ph *pkHarness) addKey(t *testing.T, ctx context.Context, name string) *softKey {
	t.Helper()
	k := newSoftKey(t)
	b := ph.beginReg(t, ctx)
	if err := ph.finishReg(ctx, b, name, k.Create(t, b.Options)); err != nil {
		t.Fatalf("add passkey: %v", err)
	}
	return k
}

func (ph *pkHarness) beginLogin(t *testing.T) *pb.BeginPasskeyResponse {
	t.Helper()
	var b pb.BeginPasskeyResponse
	if err := ph.p.BeginLogin(context.Background(), &pb.BeginPasskeyRequest{}, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// signIn signs in with k: begin, answer, finish.
func (ph *pkHarness) signIn(t *testing.T, k *softKey) (*pb.LoginResponse, error) {
	t.Helper()
	b := ph.beginLogin(t)
	var rsp pb.LoginResponse
	err := ph.p.FinishLogin(context.Background(), &pb.PasskeyLoginRequest{Ceremony: b.Ceremony, Credential: k.Get(t, b.Options)}, &rsp)
	return &rsp, err
}

func TestPasskeyRegisterSignIn(t *testing.T) {
	ph := newPKHarness(t, nil)
	ctx := ph.signedIn(t, "alice")
	k := ph.addKey(t, ctx, "Laptop")
	ph.addKey(t, ctx, "Phone")
	var list pb.ListPasskeysResponse
	if err := ph.p.ListPasskeys(ctx, &pb.ListPasskeysRequest{}, &list); err != nil || len(list.Passkeys) != 2 || list.Passkeys[0].Name != "Laptop" {
		t.Fatalf("list: %v %+v", err, list.Passkeys)
	}

	// Usernameless: the session is alice's, signed in with a hardware key.
	rsp, err := ph.signIn(t, k)
	if err != nil {
		t.Fatal(err)
	}
	info := ph.info(t, rsp.Token)
	if info.Username != "alice" {
		t.Fatalf("signed in as %q", info.Username)
	}
	s, err := ph.h.repo.Session(context.Background(), rsp.SessionId)
	if err != nil || !slices.Equal(s.AMR, []string{"hwk"}) {
		t.Fatalf("session AMR %v (%v)", s.AMR, err)
	}
	// A password login records pwd.
	if s, _ := ph.h.repo.Session(context.Background(), ph.login(t, "alice", alicePW).SessionId); !slices.Equal(s.AMR, []string{"pwd"}) {
		t.Fatalf("password session AMR %v", s.AMR)
	}
	u, _ := ph.h.repo.ByName(context.Background(), "alice")
	if u.Passkeys[0].Credential.Authenticator.SignCount != k.Count || u.Passkeys[0].LastUsed.IsZero() {
		t.Fatalf("sign count %d (authenticator %d), last used %v", u.Passkeys[0].Credential.Authenticator.SignCount, k.Count, u.Passkeys[0].LastUsed)
	}
	if es := ph.audit.of(audit.KindPasskey); len(es) != 2 {
		t.Fatalf("passkey audit entries %+v", es)
	}
	if es := ph.audit.of(audit.KindLogin); es[len(es)-2].Detail != "with a passkey" {
		t.Fatalf("login audit %+v", es)
	}

	// Renamed; a bad name refused.
	var r pb.Passkey
	if err := ph.p.RenamePasskey(ctx, &pb.RenamePasskeyRequest{Id: list.Passkeys[1].Id, Name: "Old phone"}, &r); err != nil || r.Name != "Old phone" {
		t.Fatalf("rename: %v %+v", err, &r)
	}
	wantRPCError(t, ph.p.RenamePasskey(ctx, &pb.RenamePasskeyRequest{Id: list.Passkeys[1].Id, Name: " "}, &r), "user.bad_passkey_name", 400)
	wantRPCError(t, ph.p.RenamePasskey(ctx, &pb.RenamePasskeyRequest{Id: "nope", Name: "x"}, &r), "user.passkey_not_found", 404)
	if es := ph.audit.of(audit.KindPasskey); len(es) != 3 {
		t.Fatalf("passkey audit entries %+v", es)
	}
}

func TestPasskeyCeremonyRefusals(t *testing.T) {
	ph := newPKHarness(t, nil)
	alice := ph.signedIn(t, "alice")
	bob := ph.signedIn(t, "bob")
	k := ph.addKey(t, alice, "Laptop")

	t.Run("replayed", func(t *testing.T) {
		b := ph.beginLogin(t)
		a := k.Get(t, b.Options)
		req := &pb.PasskeyLoginRequest{Ceremony: b.Ceremony, Credential: a}
		if err := ph.p.FinishLogin(context.Background(), req, &pb.LoginResponse{}); err != nil {
			t.Fatal(err)
		}
		wantRPCError(t, ph.p.FinishLogin(context.Background(), req, &pb.LoginResponse{}), "user.passkey_expired", 400)
		// A registration ceremony too.
		k2 := newSoftKey(t)
		rb := ph.beginReg(t, alice)
		cred := k2.Create(t, rb.Options)
		if err := ph.finishReg(alice, rb, "Spare", cred); err != nil {
			t.Fatal(err)
		}
		wantRPCError(t, ph.finishReg(alice, rb, "Spare", cred), "user.passkey_expired", 400)
	})
	t.Run("expired", func(t *testing.T) {
		b := ph.beginLogin(t)
		ph.clock.advance(CeremonyTTL + time.Second)
		wantRPCError(t, ph.p.FinishLogin(context.Background(), &pb.PasskeyLoginRequest{Ceremony: b.Ceremony, Credential: k.Get(t, b.Options)}, &pb.LoginResponse{}), "user.passkey_expired", 400)
	})
	t.Run("forged id", func(t *testing.T) {
		for _, id := range []string{"", "x", b64.EncodeToString(make([]byte, 32))} {
			wantRPCError(t, ph.p.FinishLogin(context.Background(), &pb.PasskeyLoginRequest{Ceremony: id, Credential: []byte("{}")}, &pb.LoginResponse{}), "user.passkey_expired", 400)
		}
	})
	t.Run("foreign", func(t *testing.T) {
		// Begun by alice, finished by bob: refused, and gone.
		b := ph.beginReg(t, alice)
		cred := newSoftKey(t).Create(t, b.Options)
		wantRPCError(t, ph.finishReg(bob, b, "Mine", cred), "user.passkey_expired", 400)
		wantRPCError(t, ph.finishReg(alice, b, "Mine", cred), "user.passkey_expired", 400)
		// Begun in another session of alice's.
		other, _ := ph.ctxFor(t, ph.login(t, "alice", alicePW).Token)
		b = ph.beginReg(t, alice)
		wantRPCError(t, ph.finishReg(other, b, "Mine", newSoftKey(t).Create(t, b.Options)), "user.passkey_expired", 400)
		// A registration's ceremony used to sign in, and a sign-in's to
		// register.
		b = ph.beginReg(t, alice)
		wantRPCError(t, ph.p.FinishLogin(context.Background(), &pb.PasskeyLoginRequest{Ceremony: b.Ceremony, Credential: k.Get(t, b.Options)}, &pb.LoginResponse{}), "user.passkey_expired", 400)
		lb := ph.beginLogin(t)
		wantRPCError(t, ph.finishReg(alice, lb, "Mine", newSoftKey(t).Create(t, lb.Options)), "user.passkey_expired", 400)
	})
	t.Run("wrong origin", func(t *testing.T) {
		evil := *k
		evil.Origin = "https://evil.example"
		_, err := ph.signIn(t, &evil)
		wantRPCError(t, err, "user.passkey_invalid", 401)
		b := ph.beginReg(t, alice)
		nk := newSoftKey(t)
		nk.Origin = "https://portal.example:8443"
		wantRPCError(t, ph.finishReg(alice, b, "Evil", nk.Create(t, b.Options)), "user.passkey_invalid", 401)
	})
	t.Run("wrong RP ID", func(t *testing.T) {
		evil := *k
		evil.RPID = "evil.example"
		_, err := ph.signIn(t, &evil)
		wantRPCError(t, err, "user.passkey_invalid", 401)
		b := ph.beginReg(t, alice)
		nk := newSoftKey(t)
		nk.RPID = "example"
		wantRPCError(t, ph.finishReg(alice, b, "Evil", nk.Create(t, b.Options)), "user.passkey_invalid", 401)
	})
	t.Run("unknown credential", func(t *testing.T) {
		stranger := newSoftKey(t)
		stranger.UserID = k.UserID // claims to be alice's
		_, err := ph.signIn(t, stranger)
		wantRPCError(t, err, "user.passkey_invalid", 401)
		stranger.UserID = []byte("no-such-account")
		_, err = ph.signIn(t, stranger)
		wantRPCError(t, err, "user.passkey_invalid", 401)
	})
	t.Run("another account's", func(t *testing.T) {
		kb := ph.addKey(t, bob, "Bob's")
		forged := *kb
		forged.UserID = k.UserID // bob's credential, alice's handle
		_, err := ph.signIn(t, &forged)
		wantRPCError(t, err, "user.passkey_invalid", 401)
	})
	t.Run("sign count regression", func(t *testing.T) {
		clone := *k
		if _, err := ph.signIn(t, k); err != nil {
			t.Fatal(err)
		}
		// The clone answers with the count it had when copied.
		_, err := ph.signIn(t, &clone)
		wantRPCError(t, err, "user.passkey_invalid", 401)
		u, _ := ph.h.repo.ByName(context.Background(), "alice")
		if got := u.Passkeys[0].Credential.Authenticator.SignCount; got != k.Count {
			t.Fatalf("stored sign count %d after the clone, want %d", got, k.Count)
		}
	})
	t.Run("garbled", func(t *testing.T) {
		g := *k
		g.Garbled = true
		_, err := ph.signIn(t, &g)
		wantRPCError(t, err, "user.passkey_invalid", 401)
		for _, bad := range []string{"", "null", "[]", `{"id":1}`, `{"type":"public-key","response":{}}`} {
			b := ph.beginLogin(t)
			wantRPCError(t, ph.p.FinishLogin(context.Background(), &pb.PasskeyLoginRequest{Ceremony: b.Ceremony, Credential: []byte(bad)}, &pb.LoginResponse{}), "user.passkey_invalid", 401)
			rb := ph.beginReg(t, alice)
			wantRPCError(t, ph.finishReg(alice, rb, "X", []byte(bad)), "user.passkey_invalid", 401)
		}
	})
	if es := ph.audit.of(audit.KindLoginFailed); len(es) == 0 {
		t.Fatal("failed passkey sign-ins were not audited")
	}
}

// Failed assertions count toward the lockout as wrong passwords do.
func TestPasskeyLockout(t *testing.T) {
	ph := newPKHarness(t, func(s *config.Settings) { s.Login.MaxFailures = 3 })
	ctx := ph.signedIn(t, "alice")
	k := ph.addKey(t, ctx, "Laptop")
	evil := *k
	evil.Origin = "https://evil.example"
	for range 3 {
		_, err := ph.signIn(t, &evil)
		wantRPCError(t, err, "user.passkey_invalid", 401)
	}
	_, err := ph.signIn(t, k)
	wantRPCError(t, err, "user.locked", 429)
	if es := ph.audit.of(audit.KindLockout); len(es) == 0 {
		t.Fatal("lockout not audited")
	}
}

// A passkey answers user.mfa_required as a TOTP code does, and only the
// account's own.
func TestPasskeySecondFactor(t *testing.T) {
	ph := newPKHarness(t, nil)
	ctx := ph.signedIn(t, "alice")
	ph.enrol(t, ctx)
	k := ph.addKey(t, ctx, "Laptop")
	bob := ph.signedIn(t, "bob")
	kb := ph.addKey(t, bob, "Bob's")

	login := func(k *softKey) (*pb.LoginResponse, error) {
		b := ph.beginLogin(t)
		var rsp pb.LoginResponse
		err := ph.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW, PasskeyCeremony: b.Ceremony, Passkey: k.Get(t, b.Options)}, &rsp)
		return &rsp, err
	}
	wantRPCError(t, ph.loginOTP("alice", alicePW, ""), "user.mfa_required", 401)
	rsp, err := login(k)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := ph.h.repo.Session(context.Background(), rsp.SessionId); !slices.Equal(s.AMR, []string{"pwd", "hwk"}) {
		t.Fatalf("AMR %v", s.AMR)
	}
	_, err = login(kb)
	wantRPCError(t, err, "user.passkey_invalid", 401)
	// A wrong password is refused as such, passkey or not.
	b := ph.beginLogin(t)
	wantRPCError(t, ph.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: "wrong-password", PasskeyCeremony: b.Ceremony, Passkey: k.Get(t, b.Options)}, &pb.LoginResponse{}), "user.bad_credentials", 401)
	// The wrong password left the ceremony alone; once used, it is gone.
	used := &pb.LoginRequest{Username: "alice", Password: alicePW, PasskeyCeremony: b.Ceremony, Passkey: k.Get(t, b.Options)}
	if err := ph.h.Login(context.Background(), used, &pb.LoginResponse{}); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, ph.h.Login(context.Background(), used, &pb.LoginResponse{}), "user.passkey_expired", 400)
	// TOTP sign-in records otp.
	ph.clock.advance(totpPeriod * time.Second)
	var trsp pb.LoginResponse
	secret := ph.totpSecret(t, "alice")
	if err := ph.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW, Otp: codeAt(t, secret, ph.clock.now())}, &trsp); err != nil {
		t.Fatal(err)
	}
	if s, _ := ph.h.repo.Session(context.Background(), trsp.SessionId); !slices.Equal(s.AMR, []string{"pwd", "otp"}) {
		t.Fatalf("AMR %v", s.AMR)
	}
}

func (ph *pkHarness) totpSecret(t *testing.T, name string) string {
	t.Helper()
	u, err := ph.h.repo.ByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := ph.h.unseal(u.ID, u.TOTPSecret) // sealed at rest
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// Deleting a passkey needs a recent sign-in or the password.
func TestPasskeyDeleteReauth(t *testing.T) {
	ph := newPKHarness(t, nil)
	ctx := ph.signedIn(t, "alice")
	ph.addKey(t, ctx, "Laptop")
	ph.addKey(t, ctx, "Phone")
	var list pb.ListPasskeysResponse
	if err := ph.p.ListPasskeys(ctx, &pb.ListPasskeysRequest{}, &list); err != nil {
		t.Fatal(err)
	}
	del := func(id, pw string) error {
		return ph.p.DeletePasskey(ctx, &pb.DeletePasskeyRequest{Id: id, Password: pw}, &pb.DeletePasskeyResponse{})
	}
	// Moments after signing in: no password needed.
	if err := del(list.Passkeys[0].Id, ""); err != nil {
		t.Fatal(err)
	}
	ph.clock.advance(RecentSignIn + time.Second)
	wantRPCError(t, del(list.Passkeys[1].Id, ""), "user.reauth_required", 403)
	wantRPCError(t, del(list.Passkeys[1].Id, "wrong-password"), "user.wrong_password", 403)
	wantRPCError(t, del("nope", alicePW), "user.passkey_not_found", 404)
	if err := del(list.Passkeys[1].Id, alicePW); err != nil {
		t.Fatal(err)
	}
	if err := ph.p.ListPasskeys(ctx, &pb.ListPasskeysRequest{}, &list); err != nil || len(list.Passkeys) != 0 {
		t.Fatalf("left: %v %+v", err, list.Passkeys)
	}
	if es := ph.audit.of(audit.KindPasskey); len(es) != 4 {
		t.Fatalf("passkey audit %+v", es)
	}
}
