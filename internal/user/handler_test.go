package user

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	pb "github.com/portal-go/portal/proto/user"
)

// RSA key generation is slow: one pair per test binary.
var (
	keysOnce sync.Once
	keys     pauth.Keys
	keysErr  error
)

func testKeys(t *testing.T) pauth.Keys {
	t.Helper()
	keysOnce.Do(func() {
		priv, pub, err := pauth.GenerateKeyPair()
		if err != nil {
			keysErr = err
			return
		}
		keys = pauth.Keys{Private: base64.StdEncoding.EncodeToString(priv), Public: base64.StdEncoding.EncodeToString(pub)}
	})
	if keysErr != nil {
		t.Fatalf("GenerateKeyPair: %v", keysErr)
	}
	return keys
}

// events is a micro.Event that records what is published.
type events struct {
	mu   sync.Mutex
	msgs []any
	err  error // returned by Publish, after recording
}

func (e *events) Publish(ctx context.Context, msg interface{}, opts ...client.PublishOption) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, msg)
	return e.err
}

// all returns every message published so far.
func (e *events) all() []any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]any(nil), e.msgs...)
}

// revoked returns the SessionRevoked events published so far; it fails on any
// other message.
func (e *events) revoked(t *testing.T) []*pb.SessionRevoked {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*pb.SessionRevoked
	for _, m := range e.msgs {
		switch ev := m.(type) {
		case *pb.SessionRevoked:
			out = append(out, ev)
		case *pb.UserChanged:
		default:
			t.Fatalf("published %T, want *pb.SessionRevoked or *pb.UserChanged", m)
		}
	}
	return out
}

// changed returns the UserChanged events published so far.
func (e *events) changed() []*pb.UserChanged {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*pb.UserChanged
	for _, m := range e.msgs {
		if ev, ok := m.(*pb.UserChanged); ok {
			out = append(out, ev)
		}
	}
	return out
}

type harness struct {
	h     *Handler
	jwt   *pauth.JWT
	ev    *events
	audit *auditStream
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	return newHarnessOn(t, st)
}

func newHarnessOn(t *testing.T, st store.Store) *harness {
	t.Helper()
	j, err := pauth.NewJWT(testKeys(t).Options()...)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	cfg, err := config.Static(testSettings())
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	ev := &events{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	as := &auditStream{}
	h := NewHandler(NewRepo(st), j, cfg, Events{Revoked: ev, Changed: ev, Roles: ev}, log).WithAudit(audit.NewPublisher(as, log))
	return &harness{h: h, jwt: j, ev: ev, audit: as}
}

// testSettings are the defaults with rate limits no test reaches unless it
// sets them (rate_test.go does).
func testSettings() config.Settings {
	s := config.Defaults()
	s.RateLimit = config.RateSettings{WindowSeconds: 60, LoginPerAddress: 1e6, LoginPerAccount: 1e6, RegisterPerAddress: 1e6, RegisterPerAccount: 1e6}
	return s
}

func (hs *harness) register(t *testing.T, name, pw string) string {
	t.Helper()
	var rsp pb.RegisterResponse
	if err := hs.h.Register(context.Background(), &pb.RegisterRequest{Username: name, Password: pw}, &rsp); err != nil {
		t.Fatalf("Register(%s): %v", name, err)
	}
	return rsp.Id
}

func (hs *harness) login(t *testing.T, name, pw string) *pb.LoginResponse {
	t.Helper()
	var rsp pb.LoginResponse
	if err := hs.h.Login(context.Background(), &pb.LoginRequest{Username: name, Password: pw}, &rsp); err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	return &rsp
}

// ctxFor is what the auth wrapper hands a handler for a token (a JWT or an
// API key): the account and its grant, as the handler's Check finds them
// now.
func (hs *harness) ctxFor(t *testing.T, token string) (context.Context, *auth.Account) {
	t.Helper()
	var (
		ctx context.Context
		acc *auth.Account
	)
	keep := func(c context.Context, _ server.Request, _ interface{}) error {
		ctx, acc = c, nil
		acc, _ = auth.AccountFromContext(c)
		return nil
	}
	in := pauth.ContextWithToken(context.Background(), token)
	// Without the records Check read: tests reuse the context for several
	// calls, which a real call never does.
	if err := pauth.HandlerWrapper(hs.jwt, Endpoints, checkOnly{hs.h})(keep)(in, infoRequest{}, nil); err != nil {
		t.Fatalf("auth wrapper: %v", err)
	}
	return ctx, acc
}

func wantRPCError(t *testing.T, err error, id string, code int32) {
	t.Helper()
	var me *merrors.Error
	if !errors.As(err, &me) {
		t.Fatalf("error = %v, want go-micro error %s %d", err, id, code)
	}
	if me.Id != id || me.Code != code {
		t.Fatalf("error = %s %d (%s), want %s %d", me.Id, me.Code, me.Detail, id, code)
	}
}

const (
	alicePW = "alice-password-1"
	newPW   = "a-brand-new-password"
)

func TestRegister(t *testing.T) {
	hs := newHarness(t)
	aliceID := hs.register(t, "alice", alicePW)

	tests := []struct {
		name, username, password string
		id                       string // error id; "" means success
		code                     int32
	}{
		{"ok", "bob", "bob-password-1", "", 0},
		{"keeps the name's case", "Carol.Smith", "carol-password", "", 0},
		{"duplicate", "alice", alicePW, "user.exists", 409},
		{"duplicate in other case", "ALICE", "other-password-1", "user.exists", 409},
		{"duplicate in mixed case", "aLiCe", "other-password-1", "user.exists", 409},
		{"username too short", "al", "some-password-1", "user.bad_username", 400},
		{"username with a space", "al ice", "some-password-1", "user.bad_username", 400},
		{"username with unicode", "alicé", "some-password-1", "user.bad_username", 400},
		{"password too short", "dave", "short", "user.bad_password", 400},
		{"password too long", "dave", strings.Repeat("p", 129), "user.bad_password", 400},
		{"password invalid UTF-8", "dave", "password-1\xff", "user.bad_password", 400},
		{"bad username wins over bad password", "x", "y", "user.bad_username", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rsp pb.RegisterResponse
			err := hs.h.Register(context.Background(), &pb.RegisterRequest{Username: tc.username, Password: tc.password}, &rsp)
			if tc.id != "" {
				wantRPCError(t, err, tc.id, tc.code)
				return
			}
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			if rsp.Id == "" || rsp.Username != tc.username {
				t.Fatalf("Register response = %+v", &rsp)
			}
			u, err := hs.h.repo.ByName(t.Context(), strings.ToUpper(tc.username))
			if err != nil {
				t.Fatalf("ByName: %v", err)
			}
			if u.ID != rsp.Id || u.Username != tc.username || !reflect.DeepEqual(u.Roles, []string{pauth.RoleUser}) {
				t.Errorf("stored user = %+v", u)
			}
			if u.PasswordHash == "" || strings.Contains(u.PasswordHash, tc.password) {
				t.Errorf("stored hash = %q", u.PasswordHash)
			}
		})
	}
	// The refused registrations changed nothing.
	if u, err := hs.h.repo.ByName(t.Context(), "alice"); err != nil || u.ID != aliceID {
		t.Errorf("alice after duplicates = %+v, %v", u, err)
	}
	if _, err := hs.h.repo.ByName(t.Context(), "dave"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused user dave exists: %v", err)
	}
}

// slowNames is a store whose username lookups take a while, as a remote
// store's would: it widens the gap between "is the name free?" and "take it"
// that Repo.Create must close.
type slowNames struct{ store.Store }

func (s slowNames) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	if strings.HasPrefix(key, keyName) {
		time.Sleep(2 * time.Millisecond)
	}
	return s.Store.Read(key, opts...)
}

// TestRepoCreateConcurrent races Create itself (Register's hashing staggers
// its callers too much to race it reliably).
func TestRepoCreateConcurrent(t *testing.T) {
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	repo := NewRepo(slowNames{st})
	const n = 50
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := "dave"
			if i%2 == 1 {
				name = "DAVE"
			}
			errs <- repo.Create(t.Context(), &User{ID: "id-" + strconv.Itoa(i), Username: name})
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrExists):
			t.Errorf("Create: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent Creates of one name succeeded, want 1", ok, n)
	}
}

func TestRegisterConcurrentSameName(t *testing.T) {
	hs := newHarness(t)
	const n = 50
	names := []string{"carol", "Carol", "CAROL", "cArOl"}
	type result struct {
		id  string
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var rsp pb.RegisterResponse
			err := hs.h.Register(context.Background(), &pb.RegisterRequest{Username: names[i%len(names)], Password: "carol-password-" + strconv.Itoa(i)}, &rsp)
			results <- result{rsp.Id, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)

	var winner string
	ok, exists := 0, 0
	for r := range results {
		switch {
		case r.err == nil:
			ok++
			winner = r.id
		default:
			var me *merrors.Error
			if errors.As(r.err, &me) && me.Id == "user.exists" && me.Code == 409 {
				exists++
			} else {
				t.Errorf("unexpected error: %v", r.err)
			}
		}
	}
	if ok != 1 || exists != n-1 {
		t.Fatalf("%d successes and %d user.exists, want 1 and %d", ok, exists, n-1)
	}
	u, err := hs.h.repo.ByName(t.Context(), "carol")
	if err != nil || u.ID != winner {
		t.Fatalf("carol = %+v, %v; want the winner %s", u, err, winner)
	}
}

func TestLogin(t *testing.T) {
	hs := newHarness(t)
	aliceID := hs.register(t, "alice", alicePW)
	hs.register(t, "mallory", "mallory-password")

	tests := []struct {
		name, username, password string
		fail                     bool // 401 user.bad_credentials
	}{
		{"ok", "alice", alicePW, false},
		{"username in other case", "ALICE", alicePW, false},
		{"wrong password", "alice", alicePW + "x", true},
		{"password in other case", "alice", strings.ToUpper(alicePW), true},
		{"another user's password", "alice", "mallory-password", true},
		{"unknown user", "nobody", alicePW, true},
		{"malformed username", "a", alicePW, true},
		{"malformed password", "alice", "short", true},
		{"empty", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			var rsp pb.LoginResponse
			err := hs.h.Login(context.Background(), &pb.LoginRequest{Username: tc.username, Password: tc.password}, &rsp)
			after := time.Now()
			if tc.fail {
				wantRPCError(t, err, "user.bad_credentials", 401)
				if rsp.Token != "" {
					t.Errorf("failed login returned a token")
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			acc, err := hs.jwt.Inspect(rsp.Token)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if acc.ID != aliceID || !reflect.DeepEqual(acc.Scopes, []string{pauth.RoleUser}) {
				t.Errorf("account = %+v", acc)
			}
			if acc.Metadata[pauth.MetaSession] != rsp.SessionId || rsp.SessionId == "" {
				t.Errorf("token session %q, response session %q", acc.Metadata[pauth.MetaSession], rsp.SessionId)
			}
			if acc.Metadata[pauth.MetaUsername] != "alice" {
				t.Errorf("token username = %q", acc.Metadata[pauth.MetaUsername])
			}
			expire := config.Defaults().Auth.Expire()
			if rsp.ExpiresAt < before.Add(expire).Unix() || rsp.ExpiresAt > after.Add(expire).Unix() {
				t.Errorf("expiresAt %d not %v after the login", rsp.ExpiresAt, expire)
			}
			if got := acc.Metadata[pauth.MetaExpiresAt]; got != strconv.FormatInt(rsp.ExpiresAt, 10) {
				t.Errorf("token expireAt %s, response %d", got, rsp.ExpiresAt)
			}
			s, err := hs.h.repo.Session(t.Context(), rsp.SessionId)
			if err != nil {
				t.Fatalf("session: %v", err)
			}
			maxAge := config.Defaults().Auth.MaxAge()
			if s.UserID != aliceID || s.ExpiresAt.Before(before.Add(maxAge).Truncate(time.Second)) || s.ExpiresAt.After(after.Add(maxAge)) {
				t.Errorf("session = %+v", s)
			}
			if got := acc.Metadata[pauth.MetaSessionEx]; got != strconv.FormatInt(s.ExpiresAt.Unix(), 10) {
				t.Errorf("token sessionExp %s, session ends %d", got, s.ExpiresAt.Unix())
			}
			if err := checkSession(hs.h, acc); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestLoginSessions(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "alice", alicePW)

	// Every login is its own session.
	a, b := hs.login(t, "alice", alicePW), hs.login(t, "alice", alicePW)
	if a.SessionId == b.SessionId || a.Token == b.Token {
		t.Errorf("two logins share a session or token")
	}
	ids, err := hs.h.repo.SessionIDs(t.Context(), id)
	if err != nil || len(ids) != 2 {
		t.Errorf("sessions = %v, %v; want 2", ids, err)
	}

	// Client details are kept, cut to size.
	var rsp pb.LoginResponse
	req := &pb.LoginRequest{Username: "alice", Password: alicePW, ClientAddr: strings.Repeat("1", 100), UserAgent: strings.Repeat("é", 300)}
	if err := hs.h.Login(context.Background(), req, &rsp); err != nil {
		t.Fatalf("Login: %v", err)
	}
	s, err := hs.h.repo.Session(t.Context(), rsp.SessionId)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if s.ClientAddr != strings.Repeat("1", 64) || s.UserAgent != strings.Repeat("é", 256) {
		t.Errorf("client addr %d chars, user agent %d chars; want 64 and 256", len(s.ClientAddr), len([]rune(s.UserAgent)))
	}

	// A disabled account cannot log in, with the right password.
	u, err := hs.h.repo.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := hs.h.repo.Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	err = hs.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.disabled", 403)
	err = hs.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: "wrong-password"}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
}

func TestLogout(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "alice", alicePW)
	hs.register(t, "bob", "bob-password-1")
	first, second := hs.login(t, "alice", alicePW), hs.login(t, "alice", alicePW)
	ctx1, acc1 := hs.ctxFor(t, first.Token)
	_, acc2 := hs.ctxFor(t, second.Token)

	if err := hs.h.Logout(ctx1, &pb.LogoutRequest{}, &pb.LogoutResponse{}); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if err := checkSession(hs.h, acc1); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Errorf("Check after Logout = %v, want auth.ErrSessionEnded", err)
	}
	if err := checkSession(hs.h, acc2); err != nil {
		t.Errorf("the other session ended too: %v", err)
	}
	evs := hs.ev.revoked(t)
	if len(evs) != 1 || evs[0].SessionId != first.SessionId || evs[0].UserId != id || evs[0].At == 0 {
		t.Fatalf("events = %v, want one SessionRevoked for %s", evs, first.SessionId)
	}
	if ids, _ := hs.h.repo.SessionIDs(t.Context(), id); !reflect.DeepEqual(ids, []string{second.SessionId}) {
		t.Errorf("live sessions = %v, want [%s]", ids, second.SessionId)
	}
	// The ended session's token no longer reaches the account.
	err := hs.h.Info(ctx1, &pb.InfoRequest{}, &pb.InfoResponse{})
	wantRPCError(t, err, "user.session_ended", 401)

	// A token naming another user's session is refused.
	bob := hs.login(t, "bob", "bob-password-1")
	forged := *acc2
	forged.Metadata = map[string]string{pauth.MetaSession: bob.SessionId}
	if err := checkSession(hs.h, &forged); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Errorf("Check with another user's session = %v, want auth.ErrSessionEnded", err)
	}

	// No account in the context.
	err = hs.h.Logout(context.Background(), &pb.LogoutRequest{}, &pb.LogoutResponse{})
	wantRPCError(t, err, "user.session_ended", 401)
}

func TestLogoutWhenPublishFails(t *testing.T) {
	hs := newHarness(t)
	hs.register(t, "alice", alicePW)
	hs.ev.err = errors.New("broker down")
	l := hs.login(t, "alice", alicePW)
	ctx, acc := hs.ctxFor(t, l.Token)
	if err := hs.h.Logout(ctx, &pb.LogoutRequest{}, &pb.LogoutResponse{}); err != nil {
		t.Fatalf("Logout with the broker down: %v", err)
	}
	if err := checkSession(hs.h, acc); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Errorf("Check = %v, want auth.ErrSessionEnded", err)
	}
	if n := len(hs.ev.revoked(t)); n != 1 {
		t.Errorf("%d publish attempts, want 1", n)
	}
}

func TestInfo(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "Alice", alicePW)
	l := hs.login(t, "alice", alicePW)
	ctx, acc := hs.ctxFor(t, l.Token)
	var rsp pb.InfoResponse
	if err := hs.h.Info(ctx, &pb.InfoRequest{}, &rsp); err != nil {
		t.Fatalf("Info: %v", err)
	}
	if rsp.Id != id || rsp.Username != "Alice" || !reflect.DeepEqual(rsp.Roles, []string{pauth.RoleUser}) ||
		rsp.SessionId != l.SessionId || strconv.FormatInt(rsp.SessionExpiresAt, 10) != acc.Metadata[pauth.MetaSessionEx] || rsp.CreatedAt == 0 {
		t.Errorf("Info = %+v", &rsp)
	}
}

func TestChangePassword(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "alice", alicePW)
	cur, other1, other2 := hs.login(t, "alice", alicePW), hs.login(t, "alice", alicePW), hs.login(t, "alice", alicePW)
	ctx, curAcc := hs.ctxFor(t, cur.Token)
	live := func(sid string) bool {
		t.Helper()
		err := checkSession(hs.h, &auth.Account{ID: id, Metadata: map[string]string{pauth.MetaSession: sid}})
		if err != nil && !errors.Is(err, pauth.ErrSessionEnded) {
			t.Fatalf("Check: %v", err)
		}
		return err == nil
	}

	refusals := []struct {
		name, old, new, id string
		code               int32
	}{
		{"wrong old password", "not-the-password", newPW, "user.wrong_password", 403},
		{"new password too short", alicePW, "short", "user.bad_password", 400},
		{"new password too long", alicePW, strings.Repeat("x", 129), "user.bad_password", 400},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			var rsp pb.ChangePasswordResponse
			err := hs.h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: tc.old, NewPassword: tc.new}, &rsp)
			wantRPCError(t, err, tc.id, tc.code)
			if rsp.SessionsEnded != 0 || len(hs.ev.revoked(t)) != 0 {
				t.Errorf("a refused change ended sessions")
			}
			for _, sid := range []string{cur.SessionId, other1.SessionId, other2.SessionId} {
				if !live(sid) {
					t.Errorf("session %s ended", sid)
				}
			}
		})
	}
	// The refusals left the old password in place; two more sessions.
	third, fourth := hs.login(t, "alice", alicePW), hs.login(t, "alice", alicePW)

	var rsp pb.ChangePasswordResponse
	if err := hs.h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: newPW}, &rsp); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if rsp.SessionsEnded != 4 {
		t.Errorf("SessionsEnded = %d, want 4", rsp.SessionsEnded)
	}
	var ended []string
	for _, ev := range hs.ev.revoked(t) {
		if ev.UserId != id {
			t.Errorf("event for user %s", ev.UserId)
		}
		ended = append(ended, ev.SessionId)
	}
	if len(ended) != 4 {
		t.Fatalf("%d SessionRevoked events, want 4", len(ended))
	}
	for _, sid := range ended {
		if sid == cur.SessionId {
			t.Errorf("the current session was revoked")
		}
		if live(sid) {
			t.Errorf("revoked session %s is still live", sid)
		}
	}
	sort.Strings(ended)
	for _, sid := range []string{other1.SessionId, other2.SessionId, third.SessionId, fourth.SessionId} {
		if i := sort.SearchStrings(ended, sid); i == len(ended) || ended[i] != sid {
			t.Errorf("session %s not revoked", sid)
		}
	}
	if !live(cur.SessionId) || checkSession(hs.h, curAcc) != nil {
		t.Errorf("the current session ended")
	}

	err := hs.h.Login(context.Background(), &pb.LoginRequest{Username: "alice", Password: alicePW}, &pb.LoginResponse{})
	wantRPCError(t, err, "user.bad_credentials", 401)
	hs.login(t, "alice", newPW)

	// The old password is no longer the "old password" either.
	err = hs.h.ChangePassword(ctx, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: "yet-another-password"}, &pb.ChangePasswordResponse{})
	wantRPCError(t, err, "user.wrong_password", 403)
}

func TestRenew(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "alice", alicePW)
	l := hs.login(t, "alice", alicePW)
	ctx, _ := hs.ctxFor(t, l.Token)
	s, err := hs.h.repo.Session(t.Context(), l.SessionId)
	if err != nil {
		t.Fatal(err)
	}

	var rsp pb.RenewResponse
	if err := hs.h.Renew(ctx, &pb.RenewRequest{}, &rsp); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	acc, err := hs.jwt.Inspect(rsp.Token)
	if err != nil {
		t.Fatalf("Inspect renewed: %v", err)
	}
	if rsp.Token == l.Token || acc.ID != id || acc.Metadata[pauth.MetaSession] != l.SessionId {
		t.Errorf("renewed token: same=%v account %+v", rsp.Token == l.Token, acc)
	}
	if rsp.ExpiresAt < l.ExpiresAt || rsp.ExpiresAt > s.ExpiresAt.Unix() {
		t.Errorf("renewed expiry %d, want between %d and the session end %d", rsp.ExpiresAt, l.ExpiresAt, s.ExpiresAt.Unix())
	}

	// A session ending in 30 s: the renewed token ends with it, not
	// expireTime (15 min) from now.
	shift := config.Defaults().Auth.MaxAge() - 30*time.Second
	hs.h.now = func() time.Time { return time.Now().Add(-shift) }
	near := hs.login(t, "alice", alicePW)
	hs.h.now = time.Now
	ns, err := hs.h.repo.Session(t.Context(), near.SessionId)
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(ns.ExpiresAt); until > time.Minute || until <= 0 {
		t.Fatalf("test setup: the session ends in %v", until)
	}
	nctx, _ := hs.ctxFor(t, near.Token)
	if near.ExpiresAt != ns.ExpiresAt.Unix() {
		t.Errorf("login token ends %d, the session %d", near.ExpiresAt, ns.ExpiresAt.Unix())
	}
	rsp = pb.RenewResponse{}
	if err := hs.h.Renew(nctx, &pb.RenewRequest{}, &rsp); err != nil {
		t.Fatalf("Renew near the end: %v", err)
	}
	if rsp.ExpiresAt != ns.ExpiresAt.Unix() {
		t.Errorf("renewed token ends %d, want the session end %d", rsp.ExpiresAt, ns.ExpiresAt.Unix())
	}
	racc, err := hs.jwt.Inspect(rsp.Token)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if got := racc.Metadata[pauth.MetaExpiresAt]; got != strconv.FormatInt(ns.ExpiresAt.Unix(), 10) {
		t.Errorf("renewed token exp %s, want %d", got, ns.ExpiresAt.Unix())
	}

	// No renewal once the session is over.
	if err := hs.h.Logout(ctx, &pb.LogoutRequest{}, &pb.LogoutResponse{}); err != nil {
		t.Fatal(err)
	}
	err = hs.h.Renew(ctx, &pb.RenewRequest{}, &pb.RenewResponse{})
	wantRPCError(t, err, "user.session_ended", 401)
}

func TestEnsureAdmin(t *testing.T) {
	adminRoles := []string{pauth.RoleAdmin, pauth.RoleUser}
	checkAdmin := func(t *testing.T, hs *harness, pw string) {
		t.Helper()
		u, err := hs.h.repo.ByName(t.Context(), "admin")
		if err != nil {
			t.Fatalf("admin: %v", err)
		}
		if !reflect.DeepEqual(u.Roles, adminRoles) {
			t.Errorf("admin roles = %v, want %v", u.Roles, adminRoles)
		}
		l := hs.login(t, "admin", pw)
		acc, err := hs.jwt.Inspect(l.Token)
		if err != nil || !reflect.DeepEqual(acc.Scopes, adminRoles) {
			t.Errorf("admin token = %+v, %v", acc, err)
		}
	}

	t.Run("generated password", func(t *testing.T) {
		hs := newHarness(t)
		created, generated, err := hs.h.EnsureAdmin(t.Context(), "")
		if err != nil || !created {
			t.Fatalf("EnsureAdmin = %v, %q, %v", created, generated, err)
		}
		if err := ValidPassword(generated); err != nil {
			t.Errorf("generated password %q: %v", generated, err)
		}
		checkAdmin(t, hs, generated)

		for _, pw := range []string{"", "another-admin-password"} {
			created, gen, err := hs.h.EnsureAdmin(t.Context(), pw)
			if err != nil || created || gen != "" {
				t.Errorf("EnsureAdmin(%q) again = %v, %q, %v; want false", pw, created, gen, err)
			}
		}
		checkAdmin(t, hs, generated) // the password is unchanged
	})

	t.Run("given password", func(t *testing.T) {
		hs := newHarness(t)
		const pw = "the-admin-password"
		created, generated, err := hs.h.EnsureAdmin(t.Context(), pw)
		if err != nil || !created || generated != "" {
			t.Fatalf("EnsureAdmin = %v, %q, %v", created, generated, err)
		}
		checkAdmin(t, hs, pw)
	})

	t.Run("generated passwords differ", func(t *testing.T) {
		_, a, err := newHarness(t).h.EnsureAdmin(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := newHarness(t).h.EnsureAdmin(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		if a == b {
			t.Errorf("two generated passwords are equal: %q", a)
		}
	})

	for _, pw := range []string{"short", "123456789", strings.Repeat("x", 129)} {
		t.Run("refuses "+strconv.Itoa(len(pw))+" chars", func(t *testing.T) {
			hs := newHarness(t)
			created, generated, err := hs.h.EnsureAdmin(t.Context(), pw)
			if !errors.Is(err, ErrBadPassword) || created || generated != "" {
				t.Fatalf("EnsureAdmin(%q) = %v, %q, %v; want ErrBadPassword", pw, created, generated, err)
			}
			if _, err := hs.h.repo.ByName(t.Context(), "admin"); !errors.Is(err, ErrNotFound) {
				t.Errorf("an admin was created: %v", err)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	hs := newHarness(t)
	var rsp pb.HealthResponse
	if err := hs.h.Health(context.Background(), &pb.HealthRequest{}, &rsp); err != nil || rsp.Status != "ok" {
		t.Fatalf("Health = %q, %v", rsp.Status, err)
	}
}

// A disabled or deleted user's live tokens stop working at once.
func TestCheckEndsWithTheUser(t *testing.T) {
	hs := newHarness(t)
	id := hs.register(t, "carol", "carol-password-1")
	_, acc := hs.ctxFor(t, hs.login(t, "carol", "carol-password-1").Token)
	if err := checkSession(hs.h, acc); err != nil {
		t.Fatalf("live session refused: %v", err)
	}
	u, err := hs.h.repo.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := hs.h.repo.Update(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if err := checkSession(hs.h, acc); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Fatalf("disabled user: Check = %v, want auth.ErrSessionEnded", err)
	}
	if err := hs.h.repo.st.Delete(keyUser + id); err != nil {
		t.Fatal(err)
	}
	if err := checkSession(hs.h, acc); !errors.Is(err, pauth.ErrSessionEnded) {
		t.Fatalf("deleted user: Check = %v, want auth.ErrSessionEnded", err)
	}
}

// checkSession is Check of a token's account, without the grant.
func checkSession(h *Handler, acc *auth.Account) error {
	_, _, _, err := h.Check(context.Background(), "", acc)
	return err
}
