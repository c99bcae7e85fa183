package user

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/mail"
	pb "github.com/portal-go/portal/proto/user"
)

// acctHarness is a harness whose handler queues mail in an outbox nobody
// sends: tests read the queue.
type acctHarness struct {
	*harness
	a      *Accounts
	outbox *mail.Outbox
	clock  *clock
}

// clock is a settable now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newAcctHarness(t *testing.T, edit func(s *config.Settings)) *acctHarness {
	t.Helper()
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	return newAcctHarnessOn(t, st, edit)
}

func newAcctHarnessOn(t *testing.T, st store.Store, edit func(s *config.Settings)) *acctHarness {
	t.Helper()
	hs := newHarnessOn(t, st)
	s := config.Defaults()
	s.Accounts.PublicURL = "https://portal.example"
	// These tests register one name many times: rate limits are another
	// test's subject.
	s.RateLimit.RegisterPerAccount, s.RateLimit.RegisterPerAddress = 1000, 1000
	if edit != nil {
		edit(&s)
	}
	cfg, err := config.Static(s)
	if err != nil {
		t.Fatal(err)
	}
	hs.h.cfg = cfg
	c := &clock{t: time.Now()}
	hs.h.now = c.now
	o := mail.NewOutbox(st, kv.NewLocal(st), nil, slog.New(slog.NewTextHandler(io.Discard, nil)), mail.OutboxOptions{})
	hs.h.WithMail(o)
	return &acctHarness{harness: hs, a: NewAccounts(hs.h), outbox: o, clock: c}
}

// mails returns the queued messages to addr, oldest first.
func (ah *acctHarness) mails(t *testing.T, addr string) []mail.Message {
	t.Helper()
	list, err := ah.outbox.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []mail.Message
	for _, e := range list {
		if e.Message.To == addr {
			out = append(out, e.Message)
		}
	}
	return out
}

// lastToken is the token of the newest link of path mailed to addr.
func (ah *acctHarness) lastToken(t *testing.T, addr, path string) string {
	t.Helper()
	ms := ah.mails(t, addr)
	for i := len(ms) - 1; i >= 0; i-- {
		for _, f := range strings.Fields(ms[i].Text) {
			if strings.HasPrefix(f, "https://portal.example"+path+"?") {
				u, err := url.Parse(f)
				if err != nil {
					t.Fatal(err)
				}
				return u.Query().Get("token")
			}
		}
	}
	t.Fatalf("no %s link mailed to %s: %+v", path, addr, ms)
	return ""
}

func (ah *acctHarness) registerWithEmail(t *testing.T, name, pw, email string) string {
	t.Helper()
	var rsp pb.RegisterResponse
	if err := ah.h.Register(context.Background(), &pb.RegisterRequest{Username: name, Password: pw, Email: email}, &rsp); err != nil {
		t.Fatalf("Register(%s): %v", name, err)
	}
	return rsp.Id
}

func (ah *acctHarness) info(t *testing.T, token string) *pb.InfoResponse {
	t.Helper()
	ctx, _ := ah.ctxFor(t, token)
	var rsp pb.InfoResponse
	if err := ah.h.Info(ctx, &pb.InfoRequest{}, &rsp); err != nil {
		t.Fatalf("Info: %v", err)
	}
	return &rsp
}

func (ah *acctHarness) verify(token string) error {
	return ah.a.VerifyEmail(context.Background(), &pb.TokenRequest{Token: token}, &pb.VerifyEmailResponse{})
}

func (ah *acctHarness) reset(token, pw string) (*pb.ResetPasswordResponse, error) {
	var rsp pb.ResetPasswordResponse
	err := ah.a.ResetPassword(context.Background(), &pb.ResetPasswordRequest{Token: token, NewPassword: pw}, &rsp)
	return &rsp, err
}

// forgot asks for a reset link and waits until the background work is done.
func (ah *acctHarness) forgot(t *testing.T, login string) {
	t.Helper()
	if err := ah.a.ForgotPassword(context.Background(), &pb.ForgotPasswordRequest{Login: login}, &pb.ForgotPasswordResponse{}); err != nil {
		t.Fatalf("ForgotPassword: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(ah.a.forgot) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the reset request never finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func forged() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestRegisterWithEmailAndVerify(t *testing.T) {
	ah := newAcctHarness(t, nil)
	id := ah.registerWithEmail(t, "alice", alicePW, "Alice@Example.com")
	ms := ah.mails(t, "Alice@Example.com")
	if len(ms) != 1 || ms[0].Kind != mail.KindVerify {
		t.Fatalf("mails %+v", ms)
	}
	tok := ah.lastToken(t, "Alice@Example.com", "/email/verify")
	in := ah.info(t, ah.login(t, "alice", alicePW).Token)
	if in.Email != "Alice@Example.com" || in.EmailVerified {
		t.Fatalf("before: %+v", in)
	}
	var rsp pb.VerifyEmailResponse
	if err := ah.a.VerifyEmail(context.Background(), &pb.TokenRequest{Token: tok}, &rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.Username != "alice" {
		t.Fatalf("%+v", &rsp)
	}
	if in := ah.info(t, ah.login(t, "alice", alicePW).Token); !in.EmailVerified {
		t.Fatal("not verified")
	}
	if e := ah.audit.of(audit.KindEmailVerified); len(e) != 1 || e[0].SubjectID != id {
		t.Fatalf("audit %+v", e)
	}
	// Used once: refused after.
	wantRPCError(t, ah.verify(tok), "user.bad_link", 400)
	// The link's token is not in the store, only its hash.
	keys, _ := ah.h.repo.st.List()
	for _, k := range keys {
		recs, _ := ah.h.repo.st.Read(k)
		if strings.Contains(k, tok) || (len(recs) > 0 && strings.Contains(string(recs[0].Value), tok)) {
			if !strings.HasPrefix(k, mail.QueueName+"/") { // the mail with the link, until sent
				t.Fatalf("the token is stored at %s", k)
			}
		}
	}
}

func TestVerifyLinkRefusals(t *testing.T) {
	ah := newAcctHarness(t, nil)
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	ah.registerWithEmail(t, "bob", "bob-password-1", "bob@example.com")
	first := ah.lastToken(t, "alice@example.com", "/email/verify")

	wantRPCError(t, ah.verify(forged()), "user.bad_link", 400)
	wantRPCError(t, ah.verify(""), "user.bad_link", 400)
	wantRPCError(t, ah.verify(first[:20]), "user.bad_link", 400)
	wantRPCError(t, ah.verify(first+"x"), "user.bad_link", 400)
	wantRPCError(t, ah.verify(strings.Repeat("!", 43)), "user.bad_link", 400)

	// A newer link replaces the older (past the re-send pause).
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	if err := ah.a.SendVerification(ctx, &pb.SendVerificationRequest{}, &pb.SendVerificationResponse{}); err == nil {
		t.Fatal("a second link at once was sent")
	} else {
		wantRPCError(t, err, "user.too_soon", 429)
	}
	ah.clock.advance(relinkAfter + time.Second)
	if err := ah.a.SendVerification(ctx, &pb.SendVerificationRequest{}, &pb.SendVerificationResponse{}); err != nil {
		t.Fatal(err)
	}
	second := ah.lastToken(t, "alice@example.com", "/email/verify")
	if second == first {
		t.Fatal("the same token twice")
	}
	wantRPCError(t, ah.verify(first), "user.bad_link", 400)

	// Expired: 24 h.
	ah.clock.advance(VerifyLinkTTL)
	wantRPCError(t, ah.verify(second), "user.bad_link", 400)

	// A reset link is not a verification link, and the reverse.
	ah.clock.advance(time.Minute)
	ah.forgot(t, "bob")
	reset := ah.lastToken(t, "bob@example.com", "/password/reset")
	wantRPCError(t, ah.verify(reset), "user.bad_link", 400)
	bobVerify := ah.lastToken(t, "bob@example.com", "/email/verify")
	if _, err := ah.reset(bobVerify, newPW); err == nil {
		t.Fatal("a verification link reset a password")
	}
}

func TestVerifyLinkDiesWithTheAddress(t *testing.T) {
	ah := newAcctHarness(t, nil)
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	old := ah.lastToken(t, "alice@example.com", "/email/verify")
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	addr := "alice@new.example"
	var p pb.Profile
	if err := ah.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{Email: &addr}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Email != addr || p.EmailVerified {
		t.Fatalf("%+v", &p)
	}
	wantRPCError(t, ah.verify(old), "user.bad_link", 400)
	// The old address is told; the new one gets a link.
	told := ah.mails(t, "alice@example.com")
	if k := told[len(told)-1]; k.Kind != mail.KindEmailChanged || !strings.Contains(k.Text, addr) {
		t.Fatalf("old address told %+v", k)
	}
	if err := ah.verify(ah.lastToken(t, addr, "/email/verify")); err != nil {
		t.Fatal(err)
	}
	if e := ah.audit.of(audit.KindProfileChange); len(e) != 1 || !strings.Contains(e[0].Detail, "email") {
		t.Fatalf("audit %+v", e)
	}
}

func TestEmailUniqueAndValid(t *testing.T) {
	ah := newAcctHarness(t, nil)
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	for _, tc := range []struct{ email, id string }{
		{"ALICE@example.com", "user.email_taken"},
		{"not-an-address", "user.bad_email"},
		{"Bob <bob@example.com>", "user.bad_email"},
		{"bob@example.com\r\nBcc: x@example.com", "user.bad_email"},
	} {
		err := ah.h.Register(context.Background(), &pb.RegisterRequest{Username: "bob", Password: "bob-password-1", Email: tc.email}, &pb.RegisterResponse{})
		code := int32(400)
		if tc.id == "user.email_taken" {
			code = 409
		}
		wantRPCError(t, err, tc.id, code)
	}
	// A refused registration leaves neither the name nor the address taken.
	ah.registerWithEmail(t, "bob", "bob-password-1", "bob@example.com")
	err := ah.h.Register(context.Background(), &pb.RegisterRequest{Username: "bob", Password: "bob-password-1", Email: "carol@example.com"}, &pb.RegisterResponse{})
	wantRPCError(t, err, "user.exists", 409)
	ah.registerWithEmail(t, "carol", "carol-password", "carol@example.com")

	// Taken by profile too.
	ctx, _ := ah.ctxFor(t, ah.login(t, "bob", "bob-password-1").Token)
	taken := "Alice@Example.com"
	wantRPCError(t, ah.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{Email: &taken}, &pb.Profile{}), "user.email_taken", 409)
	long := strings.Repeat("x", 65)
	wantRPCError(t, ah.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{DisplayName: &long}, &pb.Profile{}), "user.bad_display_name", 400)
	ctrl := "Bob\x1b[31m"
	wantRPCError(t, ah.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{DisplayName: &ctrl}, &pb.Profile{}), "user.bad_display_name", 400)
	name := "Bob 鲍勃"
	var p pb.Profile
	if err := ah.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{DisplayName: &name}, &p); err != nil || p.DisplayName != name {
		t.Fatalf("%v %+v", err, &p)
	}
}

func TestRegistrationRules(t *testing.T) {
	closed := newAcctHarness(t, func(s *config.Settings) { s.Accounts.SelfRegistration = false })
	err := closed.h.Register(context.Background(), &pb.RegisterRequest{Username: "bob", Password: "bob-password-1"}, &pb.RegisterResponse{})
	wantRPCError(t, err, "user.registration_closed", 403)

	need := newAcctHarness(t, func(s *config.Settings) { s.Accounts.RequireEmail = true })
	err = need.h.Register(context.Background(), &pb.RegisterRequest{Username: "bob", Password: "bob-password-1"}, &pb.RegisterResponse{})
	wantRPCError(t, err, "user.email_required", 400)
	need.registerWithEmail(t, "bob", "bob-password-1", "bob@example.com")
	ctx, _ := need.ctxFor(t, need.login(t, "bob", "bob-password-1").Token)
	none := ""
	wantRPCError(t, need.a.UpdateProfile(ctx, &pb.UpdateProfileRequest{Email: &none}, &pb.Profile{}), "user.email_required", 400)
}

func TestRequireVerifiedEmail(t *testing.T) {
	ah := newAcctHarness(t, func(s *config.Settings) { s.Accounts.RequireVerifiedEmail = true })
	ah.adminCtx(t) // the admin has no address and still signs in
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	err := ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.email_unverified", 403)
	if err := ah.verify(ah.lastToken(t, "alice@example.com", "/email/verify")); err != nil {
		t.Fatal(err)
	}
	ah.login(t, "alice", alicePW)
}

func TestForgotAndReset(t *testing.T) {
	ah := newAcctHarness(t, nil)
	id := ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	ah.registerWithEmail(t, "bob", "bob-password-1", "bob@example.com")
	s1 := ah.login(t, "alice", alicePW)
	s2 := ah.login(t, "alice", alicePW)
	bob := ah.login(t, "bob", "bob-password-1")

	// Unknown names and addresses: the same answer, and no mail.
	before, _ := ah.outbox.Pending(context.Background())
	for _, login := range []string{"nobody", "nobody@example.com", "", "x y", strings.Repeat("a", 300)} {
		ah.forgot(t, login)
	}
	if after, _ := ah.outbox.Pending(context.Background()); len(after) != len(before) {
		t.Fatalf("mail for an unknown account: %d -> %d", len(before), len(after))
	}
	// By address, in another case.
	ah.forgot(t, "ALICE@example.COM")
	tok := ah.lastToken(t, "alice@example.com", "/password/reset")
	if e := ah.audit.of(audit.KindResetRequested); len(e) != 1 || e[0].SubjectID != id {
		t.Fatalf("audit %+v", e)
	}
	// A bad new password does not use the link up.
	if _, err := ah.reset(tok, "short"); err == nil {
		t.Fatal("a short password was set")
	}
	rsp, err := ah.reset(tok, newPW)
	if err != nil {
		t.Fatal(err)
	}
	if rsp.Username != "alice" || rsp.SessionsEnded != 2 {
		t.Fatalf("%+v", rsp)
	}
	// Every session of alice ended; bob's did not.
	for _, s := range []*pb.LoginResponse{s1, s2} {
		acc, _ := ah.jwt.Inspect(s.Token)
		if _, _, _, err := ah.h.Check(context.Background(), s.Token, acc); err == nil {
			t.Fatal("a session outlived the reset")
		}
	}
	if acc, _ := ah.jwt.Inspect(bob.Token); acc != nil {
		if _, _, _, err := ah.h.Check(context.Background(), bob.Token, acc); err != nil {
			t.Fatalf("bob's session ended: %v", err)
		}
	}
	err = ah.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
	if in := ah.info(t, ah.login(t, "alice", newPW).Token); !in.EmailVerified {
		t.Fatal("a reset from a mailed link does not prove the address")
	}
	if e := ah.audit.of(audit.KindPasswordReset); len(e) != 1 || e[0].SubjectID != id {
		t.Fatalf("audit %+v", e)
	}
	// Used: refused.
	_, err = ah.reset(tok, "another-password-1")
	wantRPCError(t, err, "user.bad_link", 400)
	// Forged: refused.
	_, err = ah.reset(forged(), "another-password-1")
	wantRPCError(t, err, "user.bad_link", 400)
}

func TestResetLinkRefusals(t *testing.T) {
	ah := newAcctHarness(t, nil)
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")

	// Expired after 30 minutes.
	ah.forgot(t, "alice")
	tok := ah.lastToken(t, "alice@example.com", "/password/reset")
	ah.clock.advance(ResetLinkTTL)
	_, err := ah.reset(tok, newPW)
	wantRPCError(t, err, "user.bad_link", 400)

	// A newer request kills the older link.
	ah.forgot(t, "alice")
	older := ah.lastToken(t, "alice@example.com", "/password/reset")
	ah.forgot(t, "alice") // at once: no second mail
	if again := ah.lastToken(t, "alice@example.com", "/password/reset"); again != older {
		t.Fatal("a second link within moments")
	}
	ah.clock.advance(relinkAfter + time.Second)
	ah.forgot(t, "alice")
	newer := ah.lastToken(t, "alice@example.com", "/password/reset")
	_, err = ah.reset(older, newPW)
	wantRPCError(t, err, "user.bad_link", 400)

	// A password change kills the pending link.
	ctx, _ := ah.ctxFor(t, ah.login(t, "alice", alicePW).Token)
	if err := ah.h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: newPW}, &pb.ChangePasswordResponse{}); err != nil {
		t.Fatal(err)
	}
	_, err = ah.reset(newer, "another-password-1")
	wantRPCError(t, err, "user.bad_link", 400)
}

// barrierStore holds each read of a link until n of them have come (or a
// while has passed): every caller then holds the link at once.
type barrierStore struct {
	store.Store
	arrived *sync.WaitGroup
	armed   *atomic.Bool
}

func (b barrierStore) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	if strings.HasPrefix(key, keyLink) && b.armed.Load() {
		b.arrived.Done()
		done := make(chan struct{})
		go func() { b.arrived.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	return b.Store.Read(key, opts...)
}

func TestResetLinkUsedOnceUnderConcurrency(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(8)
	var armed atomic.Bool
	ah := newAcctHarnessOn(t, barrierStore{Store: store.NewMemoryStore(), arrived: &arrived, armed: &armed}, nil)
	ah.registerWithEmail(t, "alice", alicePW, "alice@example.com")
	ah.forgot(t, "alice")
	tok := ah.lastToken(t, "alice@example.com", "/password/reset")
	armed.Store(true)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ah.reset(tok, "password-number-"+string(rune('a'+i))); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("the link worked %d times", ok)
	}
}

// blockingStore blocks every read while blocked is set.
type blockingStore struct {
	store.Store
	gate chan struct{}
}

func (b blockingStore) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	<-b.gate
	return b.Store.Read(key, opts...)
}

func TestForgotAnswersBeforeLookingUp(t *testing.T) {
	// The answer cannot depend on the account when it comes before any
	// read: with the store's reads held, ForgotPassword still returns.
	mem := store.NewMemoryStore()
	gate := make(chan struct{})
	ah := newAcctHarnessOn(t, blockingStore{Store: mem, gate: gate}, nil)
	done := make(chan error, 1)
	go func() {
		done <- ah.a.ForgotPassword(context.Background(), &pb.ForgotPasswordRequest{Login: "alice"}, &pb.ForgotPasswordResponse{})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ForgotPassword waited for the store")
	}
	close(gate)
}
