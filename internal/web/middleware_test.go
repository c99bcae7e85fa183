package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	microauth "go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// ---------------------------------------------------------------------------
// Fixtures

// testKeys is one RSA key pair for the whole test binary: generating one is
// slow.
var testKeys = sync.OnceValues(func() (pauth.Keys, error) {
	priv, pub, err := pauth.GenerateKeyPair()
	if err != nil {
		return pauth.Keys{}, err
	}
	return pauth.Keys{
		Private: base64.StdEncoding.EncodeToString(priv),
		Public:  base64.StdEncoding.EncodeToString(pub),
	}, nil
})

func keys(t *testing.T) pauth.Keys {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	return k
}

// minter holds the private key: the test plays the user service.
func minter(t *testing.T) *pauth.JWT {
	t.Helper()
	j, err := pauth.NewJWT(keys(t).Options()...)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return j
}

// verifier holds only the public key, as the gateway does.
func verifier(t *testing.T) *pauth.JWT {
	t.Helper()
	j, err := pauth.NewJWT(microauth.PublicKey(keys(t).Public))
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	if j.CanMint() {
		t.Fatal("the gateway's verifier must not hold the private key")
	}
	return j
}

// mint makes an access token for session sid living ttl (capped at
// sessionEnd), as the user service's issue does.
func mint(t *testing.T, sid string, ttl time.Duration, sessionEnd time.Time) string {
	t.Helper()
	j := minter(t)
	acc, err := j.Generate("u-1", microauth.WithType("user"), microauth.WithScopes("user"), microauth.WithMetadata(map[string]string{
		pauth.MetaUsername:  "alice",
		pauth.MetaSession:   sid,
		pauth.MetaSessionEx: strconv.FormatInt(sessionEnd.Unix(), 10),
	}))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	tok, err := j.Token(microauth.WithCredentials(acc.ID, acc.Secret), microauth.WithExpiry(ttl))
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok.AccessToken
}

// validToken is a token with plenty of life left (no renewal).
func validToken(t *testing.T, sid string) string {
	return mint(t, sid, time.Hour, time.Now().Add(2*time.Hour))
}

// signRaw signs an access token with the test key pair, with the claims
// pauth.JWT puts in its tokens but any times: the way to get a well-signed
// token that has already expired, since pauth.JWT's clock is unexported.
func signRaw(t *testing.T, sid string, iat, exp time.Time) string {
	t.Helper()
	priv, err := pauth.ParsePrivateKey(keys(t).Private)
	if err != nil {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "portal", "sub": "u-1", "jti": uuid.NewString(),
		"iat": iat.Unix(), "exp": exp.Unix(),
		"typ": "access", "name": "alice", "sid": sid,
		"sxp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString(priv)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// settings are the test's config: tokens live 60 s and are renewed with
// fewer than 50 s left.
func settings() config.Settings {
	s := config.Defaults()
	s.Auth.ExpireTime = 60
	s.Auth.RefreshTime = 50
	s.Auth.SessionMaxAge = 3600
	return s
}

func newGateway(t *testing.T, s config.Settings, users *fakeUsers) *Gateway {
	t.Helper()
	center, err := config.Static(s)
	if err != nil {
		t.Fatalf("config.Static: %v", err)
	}
	return track(t, New(Options{
		Users:  users,
		System: &fakeSystem{},
		Auth:   verifier(t),
		Config: center,
		Cache:  platform.NewMemoryCache(time.Minute),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
}

// serve answers r, and checks an API response against the document.
func serve(g *Gateway, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	g.Handler().ServeHTTP(w, r)
	check(g, r, w)
	return w
}

func get(target string, mods ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, m := range mods {
		m(r)
	}
	return r
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func withCookie(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}

// apiErr decodes a JSON error body, failing unless the response is one.
func apiErr(t *testing.T, w *httptest.ResponseRecorder) apiError {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON; body %q", ct, w.Body.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body.String(), err)
	}
	code, _ := raw["code"].(string)
	msg, _ := raw["message"].(string)
	if code == "" || msg == "" {
		t.Fatalf("body %q lacks code or message", w.Body.String())
	}
	return apiError{Code: code, Message: msg}
}

func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// setCookieLine returns the raw Set-Cookie header for name, or "".
func setCookieLine(w *httptest.ResponseRecorder, name string) string {
	for _, v := range w.Header().Values("Set-Cookie") {
		if strings.HasPrefix(v, name+"=") {
			return v
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// Whitelist

// TestRequestsCountAsWork: every request the gateway serves counts as the
// process's work, which keeps platform.ReturnMemoryWhenIdle from running
// meanwhile.
func TestRequestsCountAsWork(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	before := platform.WorkDone()
	serve(g, get("/healthz"))
	if after := platform.WorkDone(); after <= before {
		t.Errorf("work counted %d before a request, %d after: the request was not counted", before, after)
	}
}

func TestWhitelist(t *testing.T) {
	noHealthz := settings()
	noHealthz.Auth.WhiteList = []string{"/login", "/register", "/static/*"}

	tests := []struct {
		name     string
		settings config.Settings
		path     string
		status   int
		location string
	}{
		{"login page", settings(), "/login", http.StatusOK, ""},
		{"healthz", settings(), "/healthz", http.StatusOK, ""},
		{"static file", settings(), "/static/style.css", http.StatusOK, ""},
		{"healthz removed from whitelist", noHealthz, "/healthz", http.StatusSeeOther, "/login?next=%2Fhealthz"},
		{"dot-dot out of a whitelisted dir", settings(), "/static/../api/v1/me", http.StatusSeeOther, "/login?next=%2Fstatic%2F..%2Fapi%2Fv1%2Fme"},
		{"home is not whitelisted", settings(), "/", http.StatusSeeOther, "/login?next=%2F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			g := newGateway(t, tt.settings, users)
			w := serve(g, get(tt.path))
			if w.Code != tt.status {
				t.Fatalf("GET %s = %d, want %d; body %q", tt.path, w.Code, tt.status, w.Body.String())
			}
			if got := w.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if n := users.count("Info"); n != 0 {
				t.Errorf("Info called %d times without a token", n)
			}
		})
	}
}

// TestWhitelistedAPIPathRemoved: an API path taken off the whitelist answers
// 401 JSON, not a redirect.
func TestWhitelistedAPIPathRemoved(t *testing.T) {
	s := settings()
	s.Auth.WhiteList = []string{"/login"}
	users := newFakeUsers()
	g := newGateway(t, s, users)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/login", strings.NewReader(`{"username":"a","password":"b"}`))
	r.Header.Set("Content-Type", "application/json")
	w := serve(g, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", w.Code)
	}
	if e := apiErr(t, w); e.Code != "auth.unauthenticated" {
		t.Errorf("code = %q, want auth.unauthenticated", e.Code)
	}
	if users.count("Login") != 0 {
		t.Error("Login reached without a token on a path off the whitelist")
	}
}

// ---------------------------------------------------------------------------
// Token sources

func TestTokenSources(t *testing.T) {
	tok := validToken(t, "s-1")
	tests := []struct {
		name  string
		req   *http.Request
		want  int
		token string // the token Info must have been called with
	}{
		{"bearer header", get("/api/v1/me", bearer(tok)), http.StatusOK, tok},
		{"token query", get("/api/v1/me?token=" + url.QueryEscape(tok)), http.StatusOK, tok},
		{"session cookie", get("/api/v1/me", withCookie(sessionCookie, tok)), http.StatusOK, tok},
		{"lowercase bearer", get("/api/v1/me", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }), http.StatusOK, tok},
		{"basic auth refused", get("/api/v1/me", func(r *http.Request) { r.SetBasicAuth("alice", "pw") }), http.StatusUnauthorized, ""},
		{"basic auth does not hide the cookie", get("/api/v1/me", withCookie(sessionCookie, tok), func(r *http.Request) { r.SetBasicAuth("alice", "pw") }), http.StatusOK, tok},
		{"non-bearer scheme with a valid token refused", get("/api/v1/me", func(r *http.Request) { r.Header.Set("Authorization", "Token "+tok) }), http.StatusUnauthorized, ""},
		{"bearer without space refused", get("/api/v1/me", func(r *http.Request) { r.Header.Set("Authorization", "Bearer"+tok) }), http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			g := newGateway(t, settings(), users)
			w := serve(g, tt.req)
			if w.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tt.want, w.Body.String())
			}
			if tt.want != http.StatusOK {
				if e := apiErr(t, w); e.Code != "auth.unauthenticated" {
					t.Errorf("code = %q, want auth.unauthenticated", e.Code)
				}
				if n := users.count("Info"); n != 0 {
					t.Errorf("Info called %d times for a refused header", n)
				}
				return
			}
			var me struct {
				ID       string   `json:"id"`
				Username string   `json:"username"`
				Roles    []string `json:"roles"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &me); err != nil {
				t.Fatalf("body %q: %v", w.Body.String(), err)
			}
			if me.ID != "u-1" || me.Username != "alice" || len(me.Roles) != 1 || me.Roles[0] != "user" {
				t.Errorf("me = %+v, want the fake's account", me)
			}
			if got := users.tokensOf("Info"); len(got) != 1 || got[0] != tt.token {
				t.Errorf("Info called with tokens %q, want [%q]", got, tt.token)
			}
		})
	}
}

// A failed ?token= is not carried into the way back from the login page,
// where it would fail again.
func TestNextDropsFailedQueryToken(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	w := serve(g, get("/account?tab=pw&token=garbage"))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("status = %d, want 303", w.Code)
	}
	if loc := w.Header().Get("Location"); loc != "/login?next="+url.QueryEscape("/account?tab=pw") {
		t.Fatalf("Location = %q", loc)
	}
}

// gin's trailing-slash redirect would answer before any middleware.
func TestTrailingSlashGoesThroughMiddleware(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	w := serve(g, get("/account/"))
	if w.Code == http.StatusMovedPermanently || w.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("status %d, CSP %q: answered outside the middleware", w.Code, w.Header().Get("Content-Security-Policy"))
	}
}

// ---------------------------------------------------------------------------
// Authentication failures

func TestAPIAuthFailures(t *testing.T) {
	now := time.Now()
	tok := validToken(t, "s-1")
	// A token whose payload was altered keeps its shape but not its signature.
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + parts[1] + "A." + parts[2]

	tests := []struct {
		name      string
		token     string
		infoErr   error
		status    int
		code      string
		infoCalls int
	}{
		{"no token", "", nil, 401, "auth.unauthenticated", 0},
		{"garbage token", "not-a-jwt", nil, 401, "auth.invalid_token", 0},
		{"tampered token", tampered, nil, 401, "auth.invalid_token", 0},
		{"expired token", signRaw(t, "s-1", now.Add(-2*time.Minute), now.Add(-time.Minute)), nil, 401, "auth.token_expired", 0},
		{"session ended", tok, merrors.Unauthorized("user.session_ended", "session ended"), 401, "auth.session_ended", 1},
		{"client timeout 408", tok, merrors.Timeout("go.micro.client", "request timeout"), 503, "server.unavailable", 1},
		{"service timeout 408", tok, merrors.Timeout("user.timeout", "deadline exceeded"), 503, "server.unavailable", 1},
		{"client 500 (service not found)", tok, merrors.InternalServerError("go.micro.client", "service user: not found"), 503, "server.unavailable", 1},
		{"service unavailable", tok, merrors.New("user.unavailable", "store closed", http.StatusServiceUnavailable), 503, "server.unavailable", 1},
		// By rpcStatus's contract a service's own 500 stays a 500.
		{"service internal error", tok, merrors.InternalServerError("user.internal", "boom"), 500, "server.internal", 1},
		// A 403 from Info (say, a disabled account) passes through.
		{"account disabled", tok, merrors.Forbidden("user.disabled", "account disabled"), 403, "user.disabled", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			users.infoErr = tt.infoErr
			g := newGateway(t, settings(), users)
			r := get("/api/v1/me")
			if tt.token != "" {
				bearer(tt.token)(r)
			}
			w := serve(g, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			if e := apiErr(t, w); e.Code != tt.code {
				t.Errorf("code = %q, want %q", e.Code, tt.code)
			}
			if strings.Contains(w.Body.String(), "boom") || strings.Contains(w.Body.String(), "store closed") {
				t.Errorf("a server error's detail leaked to the client: %q", w.Body.String())
			}
			if n := users.count("Info"); n != tt.infoCalls {
				t.Errorf("Info called %d times, want %d", n, tt.infoCalls)
			}
			if users.count("Renew") != 0 {
				t.Error("Renew called for a refused request")
			}
		})
	}
}

// TestSignRawIsAccepted makes sure the hand-signed tokens have the format the
// gateway accepts, so that the expired case above fails for its expiry alone.
func TestSignRawIsAccepted(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	now := time.Now()
	w := serve(g, get("/api/v1/me", bearer(signRaw(t, "s-1", now.Add(-time.Minute), now.Add(time.Hour)))))
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %q", w.Code, w.Body.String())
	}
}

func TestPagesWithoutSessionRedirect(t *testing.T) {
	now := time.Now()
	expired := signRaw(t, "s-1", now.Add(-2*time.Minute), now.Add(-time.Minute))
	tests := []struct {
		name        string
		req         *http.Request
		infoErr     error
		location    string
		clearCookie bool
	}{
		{"home, no token", get("/"), nil, "/login?next=%2F", false},
		{"account with query, no token", get("/account?x=1"), nil, "/login?next=%2Faccount%3Fx%3D1", false},
		{"garbage cookie", get("/account", withCookie(sessionCookie, "garbage")), nil, "/login?next=%2Faccount", true},
		{"expired cookie", get("/", withCookie(sessionCookie, expired)), nil, "/login?next=%2F", true},
		{"ended session cookie", get("/account", withCookie(sessionCookie, validToken(t, "s-1"))),
			merrors.Unauthorized("user.session_ended", "ended"), "/login?next=%2Faccount", true},
		{"ended session header", get("/account", bearer(validToken(t, "s-1"))),
			merrors.Unauthorized("user.session_ended", "ended"), "/login?next=%2Faccount", false},
		{"unknown page", get("/nope?a=b"), nil, "/login?next=%2Fnope%3Fa%3Db", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			users.infoErr = tt.infoErr
			g := newGateway(t, settings(), users)
			w := serve(g, tt.req)
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303 (never 301/302); body %q", w.Code, w.Body.String())
			}
			if got := w.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			line := setCookieLine(w, sessionCookie)
			if !tt.clearCookie {
				if line != "" {
					t.Errorf("unexpected Set-Cookie %q", line)
				}
				return
			}
			c := cookieNamed(w, sessionCookie)
			if c == nil {
				t.Fatalf("the session cookie is not cleared; Set-Cookie %q", w.Header().Values("Set-Cookie"))
			}
			if c.Value != "" || c.MaxAge >= 0 || !strings.Contains(line, "Max-Age=0") {
				t.Errorf("Set-Cookie %q does not clear the cookie", line)
			}
			if c.Path != "/" || !c.HttpOnly {
				t.Errorf("Set-Cookie %q: the clearing cookie must match the session cookie's Path=/ and be HttpOnly", line)
			}
		})
	}
}

// TestAPIEndedSessionCookieCleared: the API also clears a dead cookie.
func TestAPIEndedSessionCookieCleared(t *testing.T) {
	users := newFakeUsers()
	users.infoErr = merrors.Unauthorized("user.session_ended", "ended")
	g := newGateway(t, settings(), users)
	w := serve(g, get("/api/v1/me", withCookie(sessionCookie, validToken(t, "s-1"))))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", w.Code)
	}
	if e := apiErr(t, w); e.Code != "auth.session_ended" {
		t.Errorf("code = %q, want auth.session_ended", e.Code)
	}
	if c := cookieNamed(w, sessionCookie); c == nil || c.Value != "" || c.MaxAge >= 0 {
		t.Errorf("session cookie not cleared: %q", w.Header().Values("Set-Cookie"))
	}
}

// TestPageServiceUnavailable: a page whose session cannot be checked is an
// error page, not a trip to the login page.
func TestPageServiceUnavailable(t *testing.T) {
	users := newFakeUsers()
	users.infoErr = merrors.Timeout("go.micro.client", "request timeout")
	g := newGateway(t, settings(), users)
	w := serve(g, get("/", withCookie(sessionCookie, validToken(t, "s-1"))))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", w.Code)
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("Content-Type = %q, want an HTML error page", w.Header().Get("Content-Type"))
	}
	if cookieNamed(w, sessionCookie) != nil {
		t.Error("the session cookie was cleared although the session may be live")
	}
}

// ---------------------------------------------------------------------------
// next

// assertSafeNext checks the properties a login redirect target needs: a path
// on this host, nothing a browser could read as another host, no control
// characters.
func assertSafeNext(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || got[0] != '/' || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
		t.Errorf("safeNext(%q) = %q: not a local path", in, got)
	}
	if strings.ContainsAny(got, "\\\r\n\t\x00") {
		t.Errorf("safeNext(%q) = %q: holds a backslash or control character", in, got)
	}
	u, err := url.Parse(got)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		t.Errorf("safeNext(%q) = %q: parses with scheme/host/user (%v)", in, got, err)
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/account?x=1", "/account?x=1"},
		{"/account#top", "/account#top"},
		{"", "/"},
		{"//evil.com", "/"},
		{"//evil.com/path", "/"},
		{"/\\evil.com", "/"},
		{"\\\\evil.com", "/"},
		{"/a\\b", "/"},
		{"https://evil.com", "/"},
		{"HTTPS://evil.com", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.com", "/"},
		{"/\t/evil.com", "/"},
		{"/\r\nSet-Cookie: x=1", "/"},
		{"/\x00", "/"},
		{"/\x7f", "/"},
		{" /account", "/"},
		// Percent-encoded: a path on this host. A browser sends it back
		// as is (it never decodes %2F or %0d%0a into the Location), so it
		// is safe to keep; the gateway treats it as a path.
		{"/%2F%2Fevil.com", "/%2F%2Fevil.com"},
		{"/%0d%0aSet-Cookie", "/%0d%0aSet-Cookie"},
		{"/%5Cevil.com", "/%5Cevil.com"},
	}
	for _, tt := range tests {
		got := safeNext(tt.in)
		if got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
		assertSafeNext(t, tt.in, got)
	}
}

var nextInput = regexp.MustCompile(`<input type="hidden" name="next" value="([^"]*)">`)

func TestLoginPageNext(t *testing.T) {
	tests := []struct{ query, want string }{
		{"next=//evil.com", "/"},
		{"next=https://evil.com", "/"},
		{"next=%2F%5Cevil.com", "/"},
		{"next=%2Faccount%3Fx%3D1", "/account?x=1"},
		{"", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			g := newGateway(t, settings(), newFakeUsers())
			w := serve(g, get("/login?"+tt.query))
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d", w.Code)
			}
			m := nextInput.FindStringSubmatch(w.Body.String())
			if m == nil {
				t.Fatalf("no hidden next input in %q", w.Body.String())
			}
			if got := html.UnescapeString(m[1]); got != tt.want {
				t.Errorf("next input = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLoginFormRedirectsToSafeNext: after signing in, the browser goes to
// next only when it is local, and the session cookie is set.
func TestLoginFormRedirectsToSafeNext(t *testing.T) {
	tests := []struct{ next, location string }{
		{"//evil.com", "/"},
		{"https://evil.com/x", "/"},
		{"/\\evil.com", "/"},
		{"/account?x=1", "/account?x=1"},
		{"/%0d%0aSet-Cookie", "/%0d%0aSet-Cookie"},
	}
	for _, tt := range tests {
		t.Run(tt.next, func(t *testing.T) {
			users := newFakeUsers()
			users.login = &userpb.LoginResponse{Token: "fresh-token", ExpiresAt: time.Now().Add(time.Minute).Unix(), SessionId: "s-9"}
			g := newGateway(t, settings(), users)
			w := serve(g, csrfPost(t, "/login", url.Values{
				"username": {"alice"}, "password": {"pw"}, "next": {tt.next},
			}, "csrf-value-0123456789-0123456789-012345678", "csrf-value-0123456789-0123456789-012345678"))
			if w.Code != http.StatusSeeOther {
				t.Fatalf("status = %d, want 303; body %q", w.Code, w.Body.String())
			}
			loc := w.Header().Get("Location")
			if loc != tt.location {
				t.Errorf("Location = %q, want %q", loc, tt.location)
			}
			if strings.ContainsAny(loc, "\r\n") {
				t.Errorf("Location %q holds CR/LF", loc)
			}
			if u, err := url.Parse(loc); err != nil || u.Host != "" || u.Scheme != "" {
				t.Errorf("Location %q leaves the site", loc)
			}
			c := cookieNamed(w, sessionCookie)
			if c == nil || c.Value != "fresh-token" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie = %+v, want fresh-token HttpOnly SameSite=Lax", c)
			}
			if users.lastLogin == nil || users.lastLogin.Username != "alice" || users.lastLogin.Password != "pw" {
				t.Errorf("Login got %+v", users.lastLogin)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Renewal

func TestRenewal(t *testing.T) {
	farEnd := time.Now().Add(time.Hour)
	newExp := time.Now().Add(time.Minute).Unix()

	t.Run("header", func(t *testing.T) {
		users := newFakeUsers()
		users.renew = &userpb.RenewResponse{Token: "renewed-token", ExpiresAt: newExp}
		g := newGateway(t, settings(), users)
		old := mint(t, "s-1", 40*time.Second, farEnd)
		w := serve(g, get("/api/v1/me", bearer(old)))
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d; body %q", w.Code, w.Body.String())
		}
		if n := users.count("Renew"); n != 1 {
			t.Fatalf("Renew called %d times, want 1", n)
		}
		if got := users.tokensOf("Renew"); got[0] != old {
			t.Errorf("Renew called with %q, want the old token", got[0])
		}
		if got := w.Header().Get(headerRefreshed); got != "renewed-token" {
			t.Errorf("%s = %q, want renewed-token", headerRefreshed, got)
		}
		if got := w.Header().Get(headerRefreshedExp); got != strconv.FormatInt(newExp, 10) {
			t.Errorf("%s = %q, want %d", headerRefreshedExp, got, newExp)
		}
		if line := setCookieLine(w, sessionCookie); line != "" {
			t.Errorf("a header client got a session cookie: %q", line)
		}
	})

	t.Run("query", func(t *testing.T) {
		users := newFakeUsers()
		users.renew = &userpb.RenewResponse{Token: "renewed-token", ExpiresAt: newExp}
		g := newGateway(t, settings(), users)
		w := serve(g, get("/api/v1/me?token="+mint(t, "s-1", 40*time.Second, farEnd)))
		if w.Code != http.StatusOK || users.count("Renew") != 1 {
			t.Fatalf("status = %d, Renew calls = %d", w.Code, users.count("Renew"))
		}
		if got := w.Header().Get(headerRefreshed); got != "renewed-token" {
			t.Errorf("%s = %q, want renewed-token", headerRefreshed, got)
		}
	})

	t.Run("cookie", func(t *testing.T) {
		users := newFakeUsers()
		users.renew = &userpb.RenewResponse{Token: "renewed-token", ExpiresAt: newExp}
		g := newGateway(t, settings(), users)
		w := serve(g, get("/api/v1/me", withCookie(sessionCookie, mint(t, "s-1", 40*time.Second, farEnd))))
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d; body %q", w.Code, w.Body.String())
		}
		if n := users.count("Renew"); n != 1 {
			t.Fatalf("Renew called %d times, want 1", n)
		}
		c := cookieNamed(w, sessionCookie)
		if c == nil {
			t.Fatalf("no session cookie set; Set-Cookie %q", w.Header().Values("Set-Cookie"))
		}
		line := setCookieLine(w, sessionCookie)
		if c.Value != "renewed-token" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 0 {
			t.Errorf("Set-Cookie %q, want portal_session=renewed-token; Path=/; Max-Age>0; HttpOnly; SameSite=Lax", line)
		}
		if got := w.Header().Get(headerRefreshed); got != "" {
			t.Errorf("a cookie client got %s = %q", headerRefreshed, got)
		}
		if got := w.Header().Get(headerRefreshedExp); got != "" {
			t.Errorf("a cookie client got %s = %q", headerRefreshedExp, got)
		}
	})

	t.Run("plenty left", func(t *testing.T) {
		users := newFakeUsers()
		g := newGateway(t, settings(), users)
		// 58 s left, refresh below 50 s.
		w := serve(g, get("/api/v1/me", bearer(mint(t, "s-1", 58*time.Second, farEnd))))
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d", w.Code)
		}
		if n := users.count("Renew"); n != 0 {
			t.Errorf("Renew called %d times for a fresh token", n)
		}
		if w.Header().Get(headerRefreshed) != "" {
			t.Error("a fresh token was replaced")
		}
	})

	t.Run("expiry at session end", func(t *testing.T) {
		users := newFakeUsers()
		g := newGateway(t, settings(), users)
		// The token would live 60 s but the session ends in 40 s: the token
		// ends with it, 40 s left, within the refresh window, yet
		// renewal cannot extend it.
		end := time.Now().Add(40 * time.Second)
		tok := mint(t, "s-1", time.Minute, end)
		acc, err := verifier(t).Inspect(tok)
		if err != nil {
			t.Fatal(err)
		}
		if acc.Metadata[pauth.MetaExpiresAt] != acc.Metadata[pauth.MetaSessionEx] {
			t.Fatalf("fixture: token expiry %s != session end %s", acc.Metadata[pauth.MetaExpiresAt], acc.Metadata[pauth.MetaSessionEx])
		}
		w := serve(g, get("/api/v1/me", bearer(tok)))
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d", w.Code)
		}
		if n := users.count("Renew"); n != 0 {
			t.Errorf("Renew called %d times for a token that already ends with its session", n)
		}
	})

	t.Run("renew error keeps the old token", func(t *testing.T) {
		users := newFakeUsers()
		users.renewErr = merrors.InternalServerError("user.internal", "boom")
		g := newGateway(t, settings(), users)
		w := serve(g, get("/api/v1/me", withCookie(sessionCookie, mint(t, "s-1", 40*time.Second, farEnd))))
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %q", w.Code, w.Body.String())
		}
		if n := users.count("Renew"); n != 1 {
			t.Errorf("Renew called %d times, want 1", n)
		}
		if w.Header().Get(headerRefreshed) != "" || setCookieLine(w, sessionCookie) != "" {
			t.Errorf("a failed renewal still sent a token: %v", w.Header())
		}
	})

	t.Run("renewed token reaches the handler's RPCs", func(t *testing.T) {
		users := newFakeUsers()
		users.renew = &userpb.RenewResponse{Token: "renewed-token", ExpiresAt: newExp}
		g := newGateway(t, settings(), users)
		r := httptest.NewRequest(http.MethodPut, "/api/v1/me/password", strings.NewReader(`{"old_password":"a","new_password":"b"}`))
		r.Header.Set("Content-Type", "application/json")
		bearer(mint(t, "s-1", 40*time.Second, farEnd))(r)
		w := serve(g, r)
		if w.Code != http.StatusOK {
			t.Fatalf("status = %d; body %q", w.Code, w.Body.String())
		}
		if got := users.tokensOf("ChangePassword"); len(got) != 1 || got[0] != "renewed-token" {
			t.Errorf("ChangePassword called with %q, want the renewed token", got)
		}
	})
}

// ---------------------------------------------------------------------------
// Session cache and revocation

func TestSessionCacheAndRevocation(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	tok := validToken(t, "s-1")
	other := validToken(t, "s-2")

	for i := range 3 {
		if w := serve(g, get("/api/v1/me", bearer(tok))); w.Code != http.StatusOK {
			t.Fatalf("request %d: status = %d", i, w.Code)
		}
	}
	if n := users.count("Info"); n != 1 {
		t.Fatalf("Info called %d times for one session, want 1 (cached)", n)
	}

	if err := g.OnSessionRevoked(context.Background(), &userpb.SessionRevoked{SessionId: "s-1", UserId: "u-1"}); err != nil {
		t.Fatalf("OnSessionRevoked: %v", err)
	}
	w := serve(g, get("/api/v1/me", bearer(tok)))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("after revocation: status = %d, want 401", w.Code)
	}
	if e := apiErr(t, w); e.Code != "auth.session_ended" {
		t.Errorf("code = %q, want auth.session_ended", e.Code)
	}
	if n := users.count("Info"); n != 1 {
		t.Errorf("Info called %d times, want still 1: a revoked session needs no RPC", n)
	}

	// A page with the revoked session's cookie goes to the login page.
	w = serve(g, get("/account", withCookie(sessionCookie, tok)))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Faccount" {
		t.Errorf("page after revocation: %d %q", w.Code, w.Header().Get("Location"))
	}

	// Another session is not affected.
	if w := serve(g, get("/api/v1/me", bearer(other))); w.Code != http.StatusOK {
		t.Errorf("other session: status = %d, want 200", w.Code)
	}
	if n := users.count("Info"); n != 2 {
		t.Errorf("Info called %d times, want 2", n)
	}
}

// TestLogoutRevokesOnThisGateway: after logout the same token is refused at
// once, without waiting for the event.
func TestLogoutRevokesOnThisGateway(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	tok := validToken(t, "s-1")
	r := httptest.NewRequest(http.MethodPost, "/api/v1/logout", nil)
	bearer(tok)(r)
	if w := serve(g, r); w.Code != http.StatusNoContent {
		t.Fatalf("logout: status = %d; body %q", w.Code, w.Body.String())
	}
	if users.count("Logout") != 1 {
		t.Fatal("Logout not called")
	}
	w := serve(g, get("/api/v1/me", bearer(tok)))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("after logout: status = %d, want 401", w.Code)
	}
	if e := apiErr(t, w); e.Code != "auth.session_ended" {
		t.Errorf("code = %q", e.Code)
	}
}

// ---------------------------------------------------------------------------
// CSRF

// csrfPost builds a form POST; an empty cookie or field is left out.
func csrfPost(t *testing.T, target string, form url.Values, cookie, field string) *http.Request {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if field != "" {
		form.Set(csrfField, field)
	}
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: cookie})
	}
	return r
}

var csrfInput = regexp.MustCompile(`<input type="hidden" name="csrf_token" value="([^"]*)">`)

func TestCSRF(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	w := serve(g, get("/login"))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /login = %d", w.Code)
	}
	ck := cookieNamed(w, csrfCookie)
	if ck == nil {
		t.Fatalf("GET /login set no %s cookie", csrfCookie)
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || len(ck.Value) != 43 {
		t.Errorf("csrf cookie = %q, want a 43-char HttpOnly SameSite=Lax cookie on /", setCookieLine(w, csrfCookie))
	}
	m := csrfInput.FindStringSubmatch(w.Body.String())
	if m == nil || m[1] != ck.Value {
		t.Fatalf("form token %q does not repeat the cookie %q", m, ck.Value)
	}
	token := ck.Value

	// A browser that already has the cookie keeps it.
	w = serve(g, get("/login", withCookie(csrfCookie, token)))
	if line := setCookieLine(w, csrfCookie); line != "" {
		t.Errorf("cookie reset although present: %q", line)
	}
	if m := csrfInput.FindStringSubmatch(w.Body.String()); m == nil || m[1] != token {
		t.Errorf("form token %q, want the cookie's %q", m, token)
	}

	tests := []struct {
		name          string
		cookie, field string
		status        int
	}{
		{"matching", token, token, http.StatusSeeOther},
		{"no field", token, "", http.StatusForbidden},
		{"wrong field", token, token[:42] + "x", http.StatusForbidden},
		{"no cookie", "", token, http.StatusForbidden},
		{"neither", "", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			users.login = &userpb.LoginResponse{Token: "fresh-token", ExpiresAt: time.Now().Add(time.Minute).Unix()}
			g := newGateway(t, settings(), users)
			w := serve(g, csrfPost(t, "/login", url.Values{"username": {"alice"}, "password": {"pw"}}, tt.cookie, tt.field))
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			wantCalls := 0
			if tt.status == http.StatusSeeOther {
				wantCalls = 1
			}
			if n := users.count("Login"); n != wantCalls {
				t.Errorf("Login called %d times, want %d", n, wantCalls)
			}
			if tt.status == http.StatusForbidden && cookieNamed(w, sessionCookie) != nil {
				t.Error("a refused form set a session cookie")
			}
		})
	}
}

// TestCSRFEmptyCookie: an empty cookie and an empty field do not "match".
func TestCSRFEmptyCookie(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=alice&password=pw&csrf_token="))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Cookie", csrfCookie+"=")
	w := serve(g, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("status = %d, want 403", w.Code)
	}
	if users.count("Login") != 0 {
		t.Error("Login reached with an empty csrf cookie and field")
	}
}

// TestCSRFOnSignedInForms: logout needs the token too.
func TestCSRFOnSignedInForms(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	r := csrfPost(t, "/logout", nil, "", "")
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: validToken(t, "s-1")})
	w := serve(g, r)
	if w.Code != http.StatusForbidden {
		t.Fatalf("logout without csrf token: status = %d, want 403", w.Code)
	}
	if users.count("Logout") != 0 {
		t.Error("Logout called without a csrf token")
	}
}

// ---------------------------------------------------------------------------
// Cross-origin

func TestCrossOrigin(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site fetch", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"foreign Origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"same-origin fetch", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"same Origin", map[string]string{"Origin": "http://example.com"}, http.StatusOK},
		{"non-browser client", nil, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			g := newGateway(t, settings(), users)
			r := httptest.NewRequest(http.MethodPost, "/api/v1/login", strings.NewReader(`{"username":"alice","password":"pw"}`))
			r.Header.Set("Content-Type", "application/json")
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := serve(g, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			if tt.status == http.StatusForbidden {
				if e := apiErr(t, w); e.Code != "request.cross_origin" {
					t.Errorf("code = %q, want request.cross_origin", e.Code)
				}
				if users.count("Login") != 0 {
					t.Error("Login reached by a cross-origin request")
				}
				return
			}
			if users.count("Login") != 1 {
				t.Errorf("Login called %d times, want 1", users.count("Login"))
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Security headers

func TestSecurityHeaders(t *testing.T) {
	tok := validToken(t, "s-1")
	tests := []struct {
		name string
		req  *http.Request
		code int
	}{
		{"page", get("/login"), http.StatusOK},
		{"signed-in page", get("/", withCookie(sessionCookie, tok)), http.StatusOK},
		{"api", get("/api/v1/me", bearer(tok)), http.StatusOK},
		{"api error", get("/api/v1/me"), http.StatusUnauthorized},
		{"redirect", get("/account"), http.StatusSeeOther},
		{"static", get("/static/style.css"), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, settings(), newFakeUsers())
			w := serve(g, tt.req)
			if w.Code != tt.code {
				t.Fatalf("status = %d, want %d", w.Code, tt.code)
			}
			h := w.Header()
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if got := h.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options = %q", got)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := h.Get("Referrer-Policy"); got == "" || got == "unsafe-url" {
				t.Errorf("Referrer-Policy = %q", got)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Body limit

// hideLength wraps a body so that httptest does not know its length: the
// request is sent as chunked (ContentLength -1).
func hideLength(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

func TestBodyLimit(t *testing.T) {
	bigJSON := `{"username":"bob","password":"` + strings.Repeat("x", maxBody) + `"}`
	// A valid object, then more whitespace than the limit allows.
	paddedJSON := `{"username":"bob","password":"pw"}` + strings.Repeat(" ", maxBody)
	smallJSON := `{"username":"bob","password":"` + strings.Repeat("x", maxBody-100) + `"}`
	bigForm := url.Values{"username": {"alice"}, "password": {strings.Repeat("x", maxBody)}}.Encode()

	tests := []struct {
		name        string
		target, ct  string
		body        string
		chunked     bool
		status      int
		method      string // the fake method that must not be reached
		wantJSONErr bool
	}{
		{"json with length", "/api/v1/register", "application/json", bigJSON, false, 413, "Register", true},
		{"json chunked", "/api/v1/register", "application/json", bigJSON, true, 413, "Register", true},
		{"json padded chunked", "/api/v1/register", "application/json", paddedJSON, true, 413, "Register", true},
		{"json under the limit", "/api/v1/register", "application/json", smallJSON, true, 201, "", false},
		{"form with length", "/login", "application/x-www-form-urlencoded", bigForm, false, 413, "Login", false},
		{"form chunked", "/login", "application/x-www-form-urlencoded", bigForm, true, 413, "Login", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			g := newGateway(t, settings(), users)
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = hideLength(tt.body)
			}
			r := httptest.NewRequest(http.MethodPost, tt.target, body)
			if tt.chunked && r.ContentLength != -1 {
				t.Fatalf("fixture: ContentLength = %d, want -1", r.ContentLength)
			}
			if !tt.chunked && r.ContentLength != int64(len(tt.body)) {
				t.Fatalf("fixture: ContentLength = %d", r.ContentLength)
			}
			r.Header.Set("Content-Type", tt.ct)
			r.AddCookie(&http.Cookie{Name: csrfCookie, Value: "tok"})
			w := serve(g, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %.200q", w.Code, tt.status, w.Body.String())
			}
			if tt.status != http.StatusRequestEntityTooLarge {
				if users.count("Register") != 1 {
					t.Errorf("Register called %d times, want 1", users.count("Register"))
				}
				return
			}
			if users.count(tt.method) != 0 {
				t.Errorf("%s reached with an oversized body", tt.method)
			}
			if tt.wantJSONErr {
				if e := apiErr(t, w); e.Code != "request.too_large" {
					t.Errorf("code = %q, want request.too_large", e.Code)
				}
			} else if !strings.Contains(w.Body.String(), "<h1>Error 413</h1>") {
				// A form gets the error as a page.
				t.Errorf("form: no 413 error page: %.200q", w.Body.String())
			}
		})
	}
}

// ---------------------------------------------------------------------------
// requireCaller

func TestRequireCaller(t *testing.T) {
	s := settings()
	s.Auth.WhiteList = append(s.Auth.WhiteList, "/api/v1/me", "/", "/account", "/api/v1/logout")

	tests := []struct {
		name     string
		req      *http.Request
		status   int
		code     string
		location string
	}{
		{"api me", get("/api/v1/me"), 401, "auth.unauthenticated", ""},
		{"api me, garbage token", get("/api/v1/me", bearer("garbage")), 401, "auth.unauthenticated", ""},
		{"api logout", httptest.NewRequest(http.MethodPost, "/api/v1/logout", nil), 401, "auth.unauthenticated", ""},
		{"home", get("/"), 303, "", "/login?next=%2F"},
		{"account", get("/account"), 303, "", "/login?next=%2Faccount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := newFakeUsers()
			g := newGateway(t, s, users)
			w := serve(g, tt.req)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %q", w.Code, tt.status, w.Body.String())
			}
			if tt.code != "" {
				if e := apiErr(t, w); e.Code != tt.code {
					t.Errorf("code = %q, want %q", e.Code, tt.code)
				}
			}
			if got := w.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if users.count("Logout") != 0 {
				t.Error("Logout called without a caller")
			}
		})
	}

	// A whitelisted path still knows a signed-in caller.
	users := newFakeUsers()
	g := newGateway(t, s, users)
	if w := serve(g, get("/api/v1/me", bearer(validToken(t, "s-1")))); w.Code != http.StatusOK {
		t.Errorf("whitelisted /api/v1/me with a token: status = %d, want 200", w.Code)
	}
}

// ---------------------------------------------------------------------------
// Escaping

func TestPagesEscapeUserData(t *testing.T) {
	const evil = "<script>alert(1)</script>"
	users := newFakeUsers()
	users.info = &userpb.InfoResponse{Id: "u-1", Username: evil, Roles: []string{"<b>admin</b>"}, SessionId: "s-1"}
	users.sessions = []*userpb.Session{{Id: "s-1", UserAgent: evil, ClientAddr: evil, Current: true}}
	g := newGateway(t, settings(), users)
	tok := validToken(t, "s-1")
	for _, path := range []string{"/", "/account", "/login"} {
		w := serve(g, get(path, withCookie(sessionCookie, tok)))
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, w.Code)
		}
		body := w.Body.String()
		if strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s renders a raw <script tag", path)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("GET %s does not show the escaped username", path)
		}
		if path == "/" && (strings.Contains(body, "<b>admin") || !strings.Contains(body, "&lt;b&gt;admin")) {
			t.Errorf("GET / renders roles unescaped")
		}
	}
}

// TestLockoutResponse: a user.locked error's typed Lockout becomes the
// Retry-After header and a message in words, on the API and the login form;
// the encoded detail never reaches the client.
func TestLockoutResponse(t *testing.T) {
	users := newFakeUsers()
	users.loginErr = userpb.LockoutError("user.locked", &userpb.Lockout{Message: "too many failed logins", RetryAfterSeconds: 42})
	g := newGateway(t, settings(), users)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/login", strings.NewReader(`{"username":"alice","password":"wrong-password"}`))
	r.Header.Set("Content-Type", "application/json")
	w := serve(g, r)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "42" {
		t.Fatalf("API: %d, Retry-After %q; want 429, 42", w.Code, w.Header().Get("Retry-After"))
	}
	if e := apiErr(t, w); e.Code != "user.locked" || e.Message != "Too many sign-in attempts. Try again in 42 seconds." {
		t.Errorf("API error %+v", e)
	}
	if strings.Contains(w.Body.String(), "retryAfterSeconds") {
		t.Errorf("the encoded detail reached the client: %s", w.Body)
	}
}
