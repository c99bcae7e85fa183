package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portal-go/portal/internal/testenv/poll"
)

// relyingParty is an application that signs its users in with Portal,
// written with go-oidc and x/oauth2, libraries Portal did not write.
type relyingParty struct {
	t        *testing.T
	issuer   string
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	config   oauth2.Config
	secret   string
}

// newRelyingParty registers a confidential, first-party client through the
// admin API of the gateway at base (with admin token adminTok) and discovers
// the provider at issuer.
func newRelyingParty(t *testing.T, c *client, adminTok, issuer string, extra map[string]any) *relyingParty {
	t.Helper()
	body := map[string]any{
		"name": "wiki", "redirect_uris": []string{"http://127.0.0.1:1/callback"},
		"confidential": true, "first_party": true, "scopes": []string{"profile", "email", "offline_access"},
	}
	for k, v := range extra {
		body[k] = v
	}
	reg := c.expect(c.do("POST", "/api/v1/admin/oidc/clients", adminTok, body), http.StatusCreated).json(t)
	id, _ := reg["client_id"].(string)
	secret, _ := reg["client_secret"].(string)
	if id == "" || secret == "" {
		t.Fatalf("registration answered %v", reg)
	}
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &relyingParty{
		t: t, issuer: issuer, provider: prov, secret: secret,
		verifier: prov.Verifier(&oidc.Config{ClientID: id}),
		config: oauth2.Config{
			ClientID: id, ClientSecret: secret, Endpoint: prov.Endpoint(),
			RedirectURL: "http://127.0.0.1:1/callback",
			Scopes:      []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess},
		},
	}
}

// browser is a user agent holding a Portal session cookie for base.
func browser(t *testing.T, base, sessionToken string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(base)
	if sessionToken != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "portal_session", Value: sessionToken, Path: "/"}})
	}
	return &http.Client{Jar: jar, Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// authorize runs the browser's side of the code flow with PKCE S256 from
// the RP's authorization URL, following Portal's redirects until one leaves
// Portal; it returns that last URL (the redirect_uri with code and state,
// or Portal's login page).
func (rp *relyingParty) authorize(b *http.Client, state, nonce, verifier string, extra ...oauth2.AuthCodeOption) *url.URL {
	rp.t.Helper()
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}, extra...)
	return rp.follow(b, rp.config.AuthCodeURL(state, opts...))
}

// follow follows Portal's redirects from next until one leaves Portal's
// provider, and returns that URL.
func (rp *relyingParty) follow(b *http.Client, next string) *url.URL {
	rp.t.Helper()
	for i := 0; i < 10; i++ {
		rsp, err := b.Get(next)
		if err != nil {
			rp.t.Fatalf("GET %s: %v", next, err)
		}
		rsp.Body.Close()
		if rsp.StatusCode/100 != 3 {
			rp.t.Fatalf("GET %s: %d, want a redirect", next, rsp.StatusCode)
		}
		loc, err := rsp.Request.URL.Parse(rsp.Header.Get("Location"))
		if err != nil {
			rp.t.Fatal(err)
		}
		if !strings.HasPrefix(loc.String(), rp.issuer+"/oauth/") {
			return loc
		}
		next = loc.String()
	}
	rp.t.Fatalf("too many redirects")
	return nil
}

// signIn runs the code flow for the browser b and exchanges the code:
// the token and its verified ID token.
func (rp *relyingParty) signIn(b *http.Client) (*oauth2.Token, *oidc.IDToken) {
	rp.t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := rp.authorize(b, "state-1", "nonce-1", verifier)
	if back.Query().Get("state") != "state-1" || back.Query().Get("code") == "" {
		rp.t.Fatalf("the flow ended at %s, want the redirect_uri with code and state", back)
	}
	ctx := context.Background()
	tok, err := rp.config.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		rp.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		rp.t.Fatalf("ID token: %v", err)
	}
	if id.Nonce != "nonce-1" {
		rp.t.Fatalf("nonce %q", id.Nonce)
	}
	return tok, id
}

// introspect asks the gateway at base whether token is active (RFC 7662).
func (rp *relyingParty) introspect(base, token string) bool {
	rp.t.Helper()
	form := url.Values{"token": {token}}
	req, _ := http.NewRequest("POST", base+"/oauth/introspect", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(rp.config.ClientID), url.QueryEscape(rp.secret))
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		rp.t.Fatalf("introspect: %v", err)
	}
	defer rsp.Body.Close()
	var m map[string]any
	if rsp.StatusCode != 200 || json.NewDecoder(rsp.Body).Decode(&m) != nil {
		rp.t.Fatalf("introspect: %d", rsp.StatusCode)
	}
	return m["active"] == true
}

// refresh uses refreshToken once at the token endpoint of base.
func (rp *relyingParty) refresh(base, refreshToken string) (*oauth2.Token, error) {
	cfg := rp.config
	cfg.Endpoint.TokenURL = base + "/oauth/token"
	return cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
}

// logoutReceiver is a relying party's back-channel logout endpoint: it
// keeps every logout token it is sent; received tells which verify. While
// down, or for its first refuse requests, it answers 503 and keeps nothing.
type logoutReceiver struct {
	URL      string
	mu       sync.Mutex
	tokens   []string
	down     bool
	refuse   int
	attempts int
}

func newLogoutReceiver(t *testing.T) *logoutReceiver {
	t.Helper()
	lr := &logoutReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		lr.attempts++
		if lr.down || lr.refuse > 0 {
			lr.refuse--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		lr.tokens = append(lr.tokens, r.FormValue("logout_token"))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	lr.URL = srv.URL + "/backchannel"
	return lr
}

// set changes the receiver's state under its lock.
func (lr *logoutReceiver) set(f func(lr *logoutReceiver)) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	f(lr)
}

// tries is how many requests the receiver has had.
func (lr *logoutReceiver) tries() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.attempts
}

// received returns the sids of the logout tokens that verify with rp.
func (lr *logoutReceiver) received(rp *relyingParty) []string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	var sids []string
	for _, raw := range lr.tokens {
		tok, err := rp.provider.Verifier(&oidc.Config{ClientID: rp.config.ClientID}).Verify(context.Background(), raw)
		if err != nil {
			continue
		}
		var c struct {
			Sid    string         `json:"sid"`
			Events map[string]any `json:"events"`
			Nonce  *string        `json:"nonce"`
		}
		if tok.Claims(&c) == nil && c.Events["http://schemas.openid.net/event/backchannel-logout"] != nil && c.Nonce == nil {
			sids = append(sids, c.Sid)
		}
	}
	return sids
}

// waitLogout polls until a verified logout token for sid has arrived.
func (lr *logoutReceiver) waitLogout(t *testing.T, rp *relyingParty, sid string) {
	t.Helper()
	poll.Wait(t, 15*time.Second, "back-channel logout for "+sid, func() bool {
		return slices.Contains(lr.received(rp), sid)
	})
}

// sid is the sid claim of an ID token.
func sid(t *testing.T, id *oidc.IDToken) string {
	t.Helper()
	var c struct {
		Sid string `json:"sid"`
	}
	if err := id.Claims(&c); err != nil || c.Sid == "" {
		t.Fatalf("ID token has no sid: %v", err)
	}
	return c.Sid
}

// refused asserts that tok's access token is inactive at every gateway and
// its refresh token refused there.
func (rp *relyingParty) refused(what string, tok *oauth2.Token, gateways ...string) {
	rp.t.Helper()
	for _, g := range gateways {
		if rp.introspect(g, tok.AccessToken) {
			rp.t.Fatalf("after %s, the access token is still active at %s", what, g)
		}
		if _, err := rp.refresh(g, tok.RefreshToken); err == nil {
			rp.t.Fatalf("after %s, the refresh token still works at %s", what, g)
		}
	}
}
