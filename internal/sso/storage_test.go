package sso

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

func authorizeURL(clientID string, extra url.Values) string {
	q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "scope": {"openid profile"},
		"redirect_uri": {"https://app.example.test/cb"}, "state": {"s"}}
	for k, v := range extra {
		q[k] = v
	}
	return "https://sso.example.test/oauth/authorize?" + q.Encode()
}

func serve(p *Provider, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func mustClient(t *testing.T, p *Provider, c Client) *Client {
	t.Helper()
	c.Name = "app"
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{"https://app.example.test/cb"}
	}
	out, _, err := p.storage.CreateClient(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPKCERules: a public client must send a PKCE challenge with S256;
// plain is refused for every client.
func TestPKCERules(t *testing.T) {
	p := newProvider(t, newStore(t), &fakeAccounts{})
	pub := mustClient(t, p, Client{FirstParty: true})
	conf := mustClient(t, p, Client{Confidential: true, FirstParty: true})
	s256 := url.Values{"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	plain := url.Values{"code_challenge": {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq"}, "code_challenge_method": {"plain"}}
	for _, tc := range []struct {
		name   string
		client string
		q      url.Values
		ok     bool
	}{
		{"public without PKCE", pub.ID, nil, false},
		{"public with plain", pub.ID, plain, false},
		{"public with S256", pub.ID, s256, true},
		{"confidential without PKCE", conf.ID, nil, true},
		{"confidential with plain", conf.ID, plain, false},
	} {
		w := serve(p, authorizeURL(tc.client, tc.q))
		loc := w.Header().Get("Location")
		ok := strings.HasPrefix(loc, LoginPath+"?id=")
		if ok != tc.ok {
			t.Errorf("%s: %d %s, want accepted=%v", tc.name, w.Code, loc, tc.ok)
		}
	}
}

// TestLoginStep: without a session the browser goes to Portal's login and
// back; with one it goes on, unless prompt=login or max_age want a newer
// sign-in; a client that is not first-party sends it to the consent page
// until the user has consented.
func TestLoginStep(t *testing.T) {
	acc := &fakeAccounts{}
	p := newProvider(t, newStore(t), acc)
	first := mustClient(t, p, Client{Confidential: true, FirstParty: true})
	third := mustClient(t, p, Client{Confidential: true})
	start := func(client string, q url.Values) string {
		t.Helper()
		loc := serve(p, authorizeURL(client, q)).Header().Get("Location")
		if !strings.HasPrefix(loc, LoginPath) {
			t.Fatalf("authorize redirected to %q", loc)
		}
		return loc
	}
	next := func(login string) string { return serve(p, "https://sso.example.test"+login).Header().Get("Location") }

	login := start(first.ID, nil)
	if got := next(login); got != "/login?next="+url.QueryEscape(login) {
		t.Fatalf("without a session: %q", got)
	}
	acc.in = &SignIn{UserID: "u1", SessionID: "s1", AuthTime: time.Now().Add(-time.Minute), AMR: []string{"pwd"}}
	if got := next(login); !strings.Contains(got, "/authorize/callback?id=") {
		t.Fatalf("with a session: %q, want the callback", got)
	}
	for _, q := range []url.Values{{"prompt": {"login"}}, {"max_age": {"10"}}} {
		if got := next(start(first.ID, q)); !strings.HasPrefix(got, "/login?next=") {
			t.Fatalf("%v with a minute-old sign-in: %q, want the login page", q, got)
		}
	}
	acc.in.AuthTime = time.Now().Add(time.Second)
	if got := next(start(first.ID, url.Values{"prompt": {"login"}})); !strings.Contains(got, "/authorize/callback?id=") {
		t.Fatalf("prompt=login after a fresh sign-in: %q", got)
	}
	consent := start(third.ID, nil)
	if got := next(consent); !strings.HasPrefix(got, ConsentPath+"?id=") {
		t.Fatalf("third-party client without consent: %q", got)
	}
	if err := p.storage.SetConsent(context.Background(), "u1", third.ID, true); err != nil {
		t.Fatal(err)
	}
	if got := next(consent); !strings.Contains(got, "/authorize/callback?id=") {
		t.Fatalf("after consent: %q", got)
	}
}

// TestRefreshTokenUsedOnce: a refresh token read twice before it was
// rotated (two requests racing with one token) ends the grant.
func TestRefreshTokenUsedOnce(t *testing.T) {
	ctx := context.Background()
	acc := &fakeAccounts{live: map[string]Person{"u1/s1": {ID: "u1"}}}
	p := newProvider(t, newStore(t), acc)
	c := mustClient(t, p, Client{Confidential: true, FirstParty: true, Scopes: []string{"offline_access"}})
	a := &authRequest{ID: "r1", ClientID: c.ID, UserID: "u1", SessionID: "s1", Completed: true, Scopes: []string{"openid", "offline_access"}}
	_, refresh, _, err := p.storage.CreateAccessAndRefreshTokens(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.storage.TokenRequestByRefreshToken(ctx, refresh); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := p.storage.TokenRequestByRefreshToken(ctx, refresh); err == nil {
		t.Fatalf("second use before rotation accepted")
	}
	gid := strings.Split(refresh, ".")[0]
	if _, err := p.storage.liveGrant(ctx, gid); err == nil {
		t.Fatalf("the grant survived a reused refresh token")
	}
}

// TestClientSecrets: the secret is shown once and kept only as a hash; a
// rotated secret replaces the old one at once; redirect URIs must be https
// (or loopback http).
func TestClientSecrets(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	p := newProvider(t, st, &fakeAccounts{})
	c, secret, err := p.storage.CreateClient(ctx, Client{Name: "app", RedirectURIs: []string{"https://app.example.test/cb"}, Confidential: true})
	if err != nil || secret == "" {
		t.Fatal(err)
	}
	recs, _ := st.Read(prefixClient + c.ID)
	if strings.Contains(string(recs[0].Value), secret) {
		t.Fatalf("the secret is stored in the clear")
	}
	if err := p.storage.AuthorizeClientIDSecret(ctx, c.ID, secret); err != nil {
		t.Fatalf("the secret: %v", err)
	}
	_, rotated, err := p.storage.UpdateClient(ctx, c.ID, nil, true)
	if err != nil || rotated == secret {
		t.Fatal(err)
	}
	if p.storage.AuthorizeClientIDSecret(ctx, c.ID, secret) == nil || p.storage.AuthorizeClientIDSecret(ctx, c.ID, rotated) != nil {
		t.Fatalf("rotation: the old secret still works or the new one does not")
	}
	for _, uri := range []string{"http://app.example.test/cb", "https://app.example.test/cb#x", "/cb", "https://u:p@app.example.test/"} {
		if _, _, err := p.storage.CreateClient(ctx, Client{Name: "x", RedirectURIs: []string{uri}}); err == nil {
			t.Errorf("redirect URI %q accepted", uri)
		}
	}
	if _, _, err := p.storage.CreateClient(ctx, Client{Name: "x", RedirectURIs: []string{"http://127.0.0.1:9/cb"}}); err != nil {
		t.Errorf("a loopback http redirect URI refused: %v", err)
	}
	_ = oidc.ScopeOpenID
}

// TestClientPermission: a client limited to a permission refuses a user
// who does not hold it (access_denied to the application), and a grant
// ends when its user loses it.
func TestClientPermission(t *testing.T) {
	ctx := context.Background()
	acc := &fakeAccounts{live: map[string]Person{"u1/s1": {ID: "u1"}}, holds: map[string]bool{}}
	acc.in = &SignIn{UserID: "u1", SessionID: "s1", AuthTime: time.Now()}
	p := newProvider(t, newStore(t), acc)
	c := mustClient(t, p, Client{Confidential: true, FirstParty: true, Permission: "audit.read"})
	login := serve(p, authorizeURL(c.ID, nil)).Header().Get("Location")
	got := serve(p, "https://sso.example.test"+login).Header().Get("Location")
	if !strings.HasPrefix(got, "https://app.example.test/cb?error=access_denied") {
		t.Fatalf("a user without the permission went to %q", got)
	}
	acc.holds["u1/audit.read"] = true
	if got := serve(p, "https://sso.example.test"+login).Header().Get("Location"); !strings.Contains(got, "/authorize/callback") {
		t.Fatalf("a user holding the permission went to %q", got)
	}
	a := &authRequest{ID: "r1", ClientID: c.ID, UserID: "u1", SessionID: "s1", Completed: true, Scopes: []string{"openid"}}
	id, _, err := p.storage.CreateAccessToken(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.storage.liveAccess(ctx, id); err != nil {
		t.Fatalf("a live token: %v", err)
	}
	acc.holds["u1/audit.read"] = false
	if _, _, err := p.storage.liveAccess(ctx, id); err == nil {
		t.Fatalf("the token stayed active after its user lost the permission")
	}
}
