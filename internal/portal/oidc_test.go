package portal_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// TestOIDCRelyingParty: a relying party Portal did not write (go-oidc,
// x/oauth2) signs a user in against the embedded Portal: discovery, the code
// flow with PKCE S256 for a browser that holds a Portal session (not asked
// again), the ID token verified against the JWKS, userinfo, introspection,
// refresh with rotation, and a reused refresh token ending the grant.
func TestOIDCRelyingParty(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	rp := newRelyingParty(t, c, admin, p.URL, nil)
	c.register("alice", "alice-password-1")
	alice, _ := c.login("alice", "alice-password-1")
	ctx := context.Background()

	// A code needs its PKCE verifier, and is good once.
	b := browser(t, p.URL, alice)
	verifier := oauth2.GenerateVerifier()
	code := rp.authorize(b, "s", "n", verifier).Query().Get("code")
	if _, err := rp.config.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatalf("a code was exchanged with the wrong PKCE verifier")
	}
	code = rp.authorize(b, "s", "n", verifier).Query().Get("code")
	if _, err := rp.config.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if _, err := rp.config.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Fatalf("a code was exchanged twice")
	}

	tok, id := rp.signIn(b)
	var claims struct {
		Sub, Name, Sid, Acr string
		PreferredUsername   string   `json:"preferred_username"`
		AMR                 []string `json:"amr"`
		AuthTime            int64    `json:"auth_time"`
	}
	if err := id.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	me := c.expect(c.do("GET", "/api/v1/me", alice, nil), http.StatusOK).json(t)
	if claims.Sub != me["id"] || claims.PreferredUsername != "alice" || claims.Sid == "" || claims.AuthTime == 0 ||
		len(claims.AMR) == 0 || claims.AMR[0] != "pwd" || claims.Acr != "1" {
		t.Fatalf("ID token claims %+v, want alice's", claims)
	}
	info, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != claims.Sub {
		t.Fatalf("userinfo: %v %+v", err, info)
	}
	if !rp.introspect(p.URL, tok.AccessToken) {
		t.Fatalf("a fresh access token is not active")
	}

	// Refresh rotates: the new refresh token differs, the old one is spent.
	tok2, err := rp.refresh(p.URL, tok.RefreshToken)
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v (rotated: %v)", err, tok2 != nil && tok2.RefreshToken != tok.RefreshToken)
	}
	if !rp.introspect(p.URL, tok2.AccessToken) {
		t.Fatalf("the refreshed access token is not active")
	}
	// Reuse of the spent one is refused and ends the grant: the newest
	// refresh token and every access token of the grant die with it.
	if _, err := rp.refresh(p.URL, tok.RefreshToken); err == nil {
		t.Fatalf("a used refresh token was accepted again")
	}
	if _, err := rp.refresh(p.URL, tok2.RefreshToken); err == nil {
		t.Fatalf("after reuse, the grant's newest refresh token still works")
	}
	if rp.introspect(p.URL, tok2.AccessToken) || rp.introspect(p.URL, tok.AccessToken) {
		t.Fatalf("after reuse, the grant's access tokens are still active")
	}
	if _, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok2)); err == nil {
		t.Fatalf("userinfo answers for an ended grant")
	}

	// Metrics count per client.
	metrics := string(c.expect(c.do("GET", "/metrics", portaltest.MetricsToken, nil), http.StatusOK).body)
	for ev, n := range map[string]string{"issued": "2", "refreshed": "1", "reuse": "1"} {
		line := `portal_oidc_events_total{client="` + rp.config.ClientID + `",event="` + ev + `"} ` + n
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}

	// The audit log has the grant, the token issues and the reuse.
	for kind, detail := range map[string]string{"oidc_client": "registered", "oidc_grant": "scopes: openid profile", "oidc_token": "refreshed", "oidc_revoke": "used refresh token"} {
		poll.Wait(t, 15*time.Second, "audit entry "+kind, func() bool {
			entries, _ := listAudit(t, c, admin, "kind="+kind)
			for _, e := range entries {
				if e.SubjectName == "wiki" && strings.Contains(e.Detail, detail) {
					return true
				}
			}
			return false
		})
	}
	_ = oidc.ScopeOpenID
}

// TestOIDCRevocation: what ends a Portal session ends the applications'
// tokens made in it at once (introspection inactive, refresh refused, the
// next request after the action, no waiting), and sends a back-channel
// logout: logout, an admin ending the session, disabling the user, a
// password change, RFC 7009 revocation, disabling the client, and
// RP-initiated logout.
func TestOIDCRevocation(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	lr := newLogoutReceiver(t)
	rp := newRelyingParty(t, c, admin, p.URL, map[string]any{
		"backchannel_logout_uri":    lr.URL,
		"post_logout_redirect_uris": []string{"http://127.0.0.1:1/bye"},
	})
	c.register("alice", "alice-password-1")
	me := func(tok string) string {
		return c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t)["id"].(string)
	}
	signIn := func() (string, *oauth2.Token, string) {
		tok, _ := c.login("alice", "alice-password-1")
		at, id := rp.signIn(browser(t, p.URL, tok))
		return tok, at, sid(t, id)
	}

	{ // logout
		portalTok, tok, s := signIn()
		c.expect(c.do("POST", "/api/v1/logout", portalTok, nil), http.StatusNoContent)
		rp.refused("logout", tok, p.URL)
		lr.waitLogout(t, rp, s)
	}
	{ // admin_ends_session
		_, tok, s := signIn()
		c.expect(c.do("DELETE", "/api/v1/admin/sessions/"+s, admin, nil), http.StatusNoContent)
		rp.refused("an admin ended the session", tok, p.URL)
		lr.waitLogout(t, rp, s)
	}
	{ // password_change
		portalTok, tok, _ := signIn()
		c.expect(c.do("PUT", "/api/v1/me/password", portalTok, map[string]string{"old_password": "alice-password-1", "new_password": "alice-password-2"}), http.StatusOK)
		rp.refused("a password change", tok, p.URL)
		c.expect(c.do("PUT", "/api/v1/me/password", portalTok, map[string]string{"old_password": "alice-password-2", "new_password": "alice-password-1"}), http.StatusOK)
	}
	{ // rfc7009
		_, tok, _ := signIn()
		form := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
		req, _ := http.NewRequest("POST", p.URL+"/oauth/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rp.config.ClientID, rp.secret)
		rsp, err := http.DefaultClient.Do(req)
		if err != nil || rsp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %v %v", err, rsp)
		}
		rsp.Body.Close()
		rp.refused("revocation of the refresh token", tok, p.URL)
	}
	{ // client_disabled
		_, tok, _ := signIn()
		path := "/api/v1/admin/oidc/clients/" + rp.config.ClientID
		c.expect(c.do("PATCH", path, admin, map[string]any{"disabled": true}), http.StatusOK)
		// A disabled client cannot even authenticate to introspect.
		if _, err := rp.refresh(p.URL, tok.RefreshToken); err == nil {
			t.Fatalf("a disabled client refreshed")
		}
		c.expect(c.do("PATCH", path, admin, map[string]any{"disabled": false}), http.StatusOK)
		rp.refused("enabling the client again", tok, p.URL)
	}
	{ // rp_initiated_logout
		portalTok, tok, s := signIn()
		// Without an id_token_hint, a link to end_session (from any site)
		// ends nothing.
		rsp, err := browser(t, p.URL, portalTok).Get(p.URL + "/oauth/end_session")
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		c.expect(c.do("GET", "/api/v1/me", portalTok, nil), http.StatusOK)
		if !rp.introspect(p.URL, tok.AccessToken) {
			t.Fatalf("end_session without a hint ended the session's tokens")
		}
		raw, _ := tok.Extra("id_token").(string)
		q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}, "state": {"x"}}
		rsp, err = browser(t, p.URL, portalTok).Get(p.URL + "/oauth/end_session?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if loc := rsp.Header.Get("Location"); !strings.HasPrefix(loc, "http://127.0.0.1:1/bye?state=x") {
			t.Fatalf("end_session redirected to %q", loc)
		}
		c.expect(c.do("GET", "/api/v1/me", portalTok, nil), http.StatusUnauthorized)
		rp.refused("RP-initiated logout", tok, p.URL)
		lr.waitLogout(t, rp, s)
	}
	{ // user_deleted
		c.register("dave", "dave-password-1")
		daveTok, _ := c.login("dave", "dave-password-1")
		tok, id := rp.signIn(browser(t, p.URL, daveTok))
		c.expect(c.do("DELETE", "/api/v1/admin/users/"+me(daveTok), admin, nil), http.StatusNoContent)
		rp.refused("deleting the user", tok, p.URL)
		lr.waitLogout(t, rp, sid(t, id))
	}
	{ // user_disabled
		portalTok, tok, s := signIn()
		c.expect(c.do("PATCH", "/api/v1/admin/users/"+me(portalTok), admin, map[string]any{"disabled": true}), http.StatusOK)
		rp.refused("disabling the user", tok, p.URL)
		lr.waitLogout(t, rp, s)
	}
}

// TestOIDCConsentAndPrompt: a client that is not first-party needs the
// user's consent once (a CSRF-protected page); the consent is listed under
// the account and withdrawing it ends the application's tokens and asks
// again; a refusal reaches the application as access_denied; prompt=login
// and max_age send even a signed-in browser to Portal's login.
func TestOIDCConsentAndPrompt(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	rp := newRelyingParty(t, c, admin, p.URL, map[string]any{"first_party": false})
	c.register("alice", "alice-password-1")
	alice, _ := c.login("alice", "alice-password-1")
	b := browser(t, p.URL, alice)
	verifier := oauth2.GenerateVerifier()

	// answer loads the consent page at u and submits decision with its
	// CSRF token; it returns the answer's status and where Portal sends the
	// browser next (the link of the page that continues the flow).
	answer := func(u *url.URL, decision string, withCSRF bool) (int, string) {
		t.Helper()
		page, err := b.Get(p.URL + u.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if page.StatusCode != 200 || !strings.Contains(string(body), "wiki") {
			t.Fatalf("consent page: %d %s", page.StatusCode, body)
		}
		m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(body)
		form := url.Values{"id": {u.Query().Get("id")}, "decision": {decision}}
		if withCSRF {
			form.Set("csrf_token", string(m[1]))
		}
		rsp, err := b.PostForm(p.URL+"/consent", form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(rsp.Body)
		rsp.Body.Close()
		next := regexp.MustCompile(`href="([^"]+)" id="continue"`).FindSubmatch(body)
		if next == nil {
			return rsp.StatusCode, ""
		}
		return rsp.StatusCode, html.UnescapeString(string(next[1]))
	}

	at := rp.authorize(b, "st", "n", verifier)
	if at.Path != "/consent" {
		t.Fatalf("a third-party client went to %s, want the consent page", at)
	}
	if status, _ := answer(at, "allow", false); status != http.StatusForbidden {
		t.Fatalf("consent without the CSRF token: %d, want 403", status)
	}
	if status, next := answer(at, "allow", true); status != http.StatusOK || !strings.HasPrefix(next, "/oauth/login?id=") {
		t.Fatalf("consent: %d, then %q", status, next)
	}
	// Consent given: the flow goes through, this time and the next.
	tok, _ := rp.signIn(b)
	apps := c.expect(c.do("GET", "/api/v1/me/apps", alice, nil), http.StatusOK).json(t)["apps"].([]any)
	if len(apps) != 1 || apps[0].(map[string]any)["client_id"] != rp.config.ClientID {
		t.Fatalf("apps %v", apps)
	}
	c.expect(c.do("DELETE", "/api/v1/me/apps/"+rp.config.ClientID, alice, nil), http.StatusNoContent)
	rp.refused("withdrawn consent", tok, p.URL)
	at = rp.authorize(b, "st", "n", verifier)
	if at.Path != "/consent" {
		t.Fatalf("after withdrawal the flow went to %s, want the consent page again", at)
	}
	_, next := answer(at, "deny", true)
	// Consents given, withdrawn and refused are audited.
	for _, detail := range []string{"consent given", "consent withdrawn", "consent refused"} {
		poll.Wait(t, 15*time.Second, "audit entry "+detail, func() bool {
			entries, _ := listAudit(t, c, admin, "kind=oidc_consent")
			for _, e := range entries {
				if e.SubjectName == "wiki" && strings.Contains(e.Detail, detail) {
					return true
				}
			}
			return false
		})
	}
	back, _ := url.Parse(next)
	if back.Query().Get("error") != "access_denied" || back.Query().Get("state") != "st" || !strings.HasPrefix(back.String(), "http://127.0.0.1:1/callback") {
		t.Fatalf("a refusal went to %s", back)
	}

	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
		at := rp.authorize(b, "st", "n", verifier, opt)
		if at.Path != "/login" || !strings.HasPrefix(at.Query().Get("next"), "/oauth/login?id=") {
			t.Fatalf("prompt=login / max_age=0 went to %s, want Portal's login", at)
		}
		// Signed in again, the request goes on (to the consent withdrawn
		// above).
		fresh, _ := c.login("alice", "alice-password-1")
		if back := rp.follow(browser(t, p.URL, fresh), p.URL+at.Query().Get("next")); back.Path != "/consent" {
			t.Fatalf("after a fresh sign-in, prompt=login / max_age=0 went to %s", back)
		}
	}
}

// TestOIDCAdminPage: an admin registers an application on the page (CSRF
// form), sees its secret once, and disables it there; a user who is not an
// admin is refused the page and the API.
func TestOIDCAdminPage(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	b := browser(t, p.URL, admin)
	page := func(rsp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		body, _ := io.ReadAll(rsp.Body)
		if rsp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", rsp.Request.URL, rsp.StatusCode, body)
		}
		return string(body)
	}
	html := page(b.Get(p.URL + "/admin/oidc"))
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(html)[1]
	html = page(b.PostForm(p.URL+"/admin/oidc", url.Values{
		"csrf_token": {csrf}, "name": {"<b>wiki</b>"}, "redirect_uris": {"https://wiki.example.test/cb\n"},
		"confidential": {"1"}, "scopes": {"profile", "email"},
	}))
	secret := regexp.MustCompile(`shown this once: <code[^>]*>([^<]+)</code>`).FindStringSubmatch(html)
	if secret == nil || strings.Contains(html, "<b>wiki</b>") {
		t.Fatalf("the page did not show the secret once, or did not escape the name:\n%s", html)
	}
	clients := c.expect(c.do("GET", "/api/v1/admin/oidc/clients", admin, nil), http.StatusOK).json(t)["clients"].([]any)
	cl := clients[0].(map[string]any)
	if len(clients) != 1 || cl["client_secret"] != nil || cl["name"] != "<b>wiki</b>" {
		t.Fatalf("clients %v", clients)
	}
	if strings.Contains(page(b.Get(p.URL+"/admin/oidc")), secret[1]) {
		t.Fatalf("the secret is shown again")
	}
	// Disabling asks first (a confirm page naming the client), then acts.
	asked := page(b.PostForm(p.URL+"/admin/oidc/"+cl["client_id"].(string)+"/disable", url.Values{"csrf_token": {csrf}}))
	if !strings.Contains(asked, `name="confirmed" value="yes"`) || !strings.Contains(asked, "&lt;b&gt;wiki&lt;/b&gt;") {
		t.Fatalf("disable did not ask first:\n%s", asked)
	}
	if c.expect(c.do("GET", "/api/v1/admin/oidc/clients", admin, nil), http.StatusOK).json(t)["clients"].([]any)[0].(map[string]any)["disabled"] == true {
		t.Fatalf("the client was disabled before the confirmation")
	}
	rsp, err := b.PostForm(p.URL+"/admin/oidc/"+cl["client_id"].(string)+"/disable", url.Values{"csrf_token": {csrf}, "confirmed": {"yes"}})
	if err != nil || rsp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %v %v", err, rsp)
	}
	rsp.Body.Close()
	cl = c.expect(c.do("GET", "/api/v1/admin/oidc/clients", admin, nil), http.StatusOK).json(t)["clients"].([]any)[0].(map[string]any)
	if cl["disabled"] != true {
		t.Fatalf("the client is not disabled: %v", cl)
	}

	c.register("bob", "bob-password-12")
	bob, _ := c.login("bob", "bob-password-12")
	c.expect(c.do("POST", "/api/v1/admin/oidc/clients", bob, map[string]any{"name": "x", "redirect_uris": []string{"https://x.example.test/cb"}}), http.StatusForbidden)
	c.expect(c.do("GET", "/api/v1/admin/oidc/clients", bob, nil), http.StatusForbidden)
	rsp, err = browser(t, p.URL, bob).Get(p.URL + "/admin/oidc")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode == http.StatusOK {
		t.Fatalf("a user who is not an admin got the page")
	}
}

// oidcAcrossGateways is TestDistributed's step a5: see there.
func oidcAcrossGateways(t *testing.T, c *cluster) {
	ws := c.clients(t)
	issuer, other := c.urls[0], c.urls[1]
	admin, _ := ws[0].login("admin", testenv.AdminPassword)
	lr := newLogoutReceiver(t)
	rp := newRelyingParty(t, ws[0], admin, issuer, map[string]any{"backchannel_logout_uri": lr.URL})
	ws[1].register("carol", "carol-password-1")
	signIn := func() (string, *oauth2.Token, string) {
		tok, _ := ws[1].login("carol", "carol-password-1")
		at, id := rp.signIn(browser(t, issuer, tok))
		return tok, at, sid(t, id)
	}
	_, tok, _ := signIn()
	if _, err := rp.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if !rp.introspect(other, tok.AccessToken) {
		t.Fatalf("web2 does not know web1's token")
	}
	tok2, err := rp.refresh(other, tok.RefreshToken)
	if err != nil || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh on web2: %v", err)
	}
	if _, err := rp.refresh(issuer, tok.RefreshToken); err == nil {
		t.Fatalf("a used refresh token was accepted by the other gateway")
	}
	rp.refused("refresh-token reuse", tok2, issuer, other)

	// refusedWithin checks that both gateways refuse tok on the first try
	// after an action (no waiting: the check reads the store), the last
	// refusal within 1 s of the action, and notes how long after it came.
	refusedWithin := func(what string, at time.Time, tok *oauth2.Token) {
		t.Helper()
		rp.refused(what, tok, other, issuer)
		took := time.Since(at)
		c.note(t, "after %s, introspection and refresh refused on both gateways, the last %d ms after it", what, took.Milliseconds())
		if took > time.Second {
			t.Fatalf("after %s, the last refusal came %v after it, want within 1 s", what, took)
		}
	}
	portalTok, tok, s := signIn()
	ws[1].expect(ws[1].do("POST", "/api/v1/logout", portalTok, nil), http.StatusNoContent)
	done := time.Now()
	refusedWithin("logout on web2", done, tok)
	lr.waitLogout(t, rp, s)

	portalTok, tok, s = signIn()
	id := ws[1].expect(ws[1].do("GET", "/api/v1/me", portalTok, nil), http.StatusOK).json(t)["id"].(string)
	ws[0].expect(ws[0].do("PATCH", "/api/v1/admin/users/"+id, admin, map[string]any{"disabled": true}), http.StatusOK)
	done = time.Now()
	refusedWithin("disabling the user on web1", done, tok)
	lr.waitLogout(t, rp, s)
}

// TestOIDCClaims: the ID token and userinfo tell a relying party (go-oidc)
// the account's email and whether it is verified, its display name, and how
// the session was signed in: amr pwd and acr 1 after a password alone, amr
// pwd otp and acr 2 after a password and a TOTP code, kept on refresh; an
// account without an address has no email claims.
func TestOIDCClaims(t *testing.T) {
	p, srv := accountsPortal(t, "")
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	rp := newRelyingParty(t, c, admin, p.URL, nil)
	ctx := context.Background()
	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}), http.StatusCreated)
	c.register("bob", "bob-password-12")

	type claims struct {
		Email         string   `json:"email"`
		EmailVerified *bool    `json:"email_verified"`
		Name          string   `json:"name"`
		AMR           []string `json:"amr"`
		Acr           string   `json:"acr"`
	}
	check := func(what string, tok *oauth2.Token, id *oidc.IDToken, want claims) {
		t.Helper()
		var got claims
		if err := id.Claims(&got); err != nil {
			t.Fatal(err)
		}
		if got.Email != want.Email || (got.EmailVerified == nil) != (want.EmailVerified == nil) ||
			(got.EmailVerified != nil && *got.EmailVerified != *want.EmailVerified) || got.Name != want.Name ||
			strings.Join(got.AMR, " ") != strings.Join(want.AMR, " ") || got.Acr != want.Acr {
			t.Fatalf("%s: ID token claims %+v, want %+v", what, got, want)
		}
		info, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("%s: userinfo: %v", what, err)
		}
		var ui claims
		if err := info.Claims(&ui); err != nil {
			t.Fatal(err)
		}
		if ui.Email != want.Email || (ui.EmailVerified == nil) != (want.EmailVerified == nil) ||
			(ui.EmailVerified != nil && *ui.EmailVerified != *want.EmailVerified) || ui.Name != want.Name {
			t.Fatalf("%s: userinfo %+v, want %+v", what, ui, want)
		}
	}
	no, yes := false, true

	alice, _ := c.login("alice", "alice-password-1")
	tok, id := rp.signIn(browser(t, p.URL, alice))
	check("password, unverified address", tok, id, claims{Email: "alice@example.com", EmailVerified: &no, Name: "alice", AMR: []string{"pwd"}, Acr: "1"})

	verify := mailedLink(t, srv, "alice@example.com", "https://portal.example", "/email/verify", 0)
	c.expect(c.do("POST", "/api/v1/email/verify", "", map[string]string{"token": verify}), http.StatusOK)
	c.expect(c.do("PATCH", "/api/v1/me", alice, map[string]string{"display_name": "Alice A."}), http.StatusOK)
	secret, _ := enrolTOTP(t, c, alice)
	code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	r := c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1", "otp": code}), http.StatusOK).json(t)
	tok, id = rp.signIn(browser(t, p.URL, r["token"].(string)))
	want := claims{Email: "alice@example.com", EmailVerified: &yes, Name: "Alice A.", AMR: []string{"pwd", "otp"}, Acr: "2"}
	check("password and TOTP, verified address", tok, id, want)

	tok2, err := rp.refresh(p.URL, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	raw, _ := tok2.Extra("id_token").(string)
	id2, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	check("refreshed", tok2, id2, want)

	bob, _ := c.login("bob", "bob-password-12")
	tok, id = rp.signIn(browser(t, p.URL, bob))
	check("no address", tok, id, claims{Name: "bob", AMR: []string{"pwd"}, Acr: "1"})
}

// enrolTOTP turns on TOTP for the holder of tok, with a code of the
// current time step, and returns the secret and the recovery codes.
func enrolTOTP(t *testing.T, c *client, tok string) (string, []string) {
	t.Helper()
	secret, _ := c.expect(c.do("POST", "/api/v1/me/totp", tok, nil), http.StatusOK).json(t)["secret"].(string)
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := c.expect(c.do("POST", "/api/v1/me/totp/confirm", tok, map[string]string{"code": code}), http.StatusOK).json(t)
	var recovery []string
	for _, rc := range r["recovery_codes"].([]any) {
		recovery = append(recovery, rc.(string))
	}
	return secret, recovery
}

// TestOIDCCORS: a browser application (a public client) calls the token,
// userinfo and revocation endpoints from its own origin: they answer CORS,
// preflight included, for the origins of that client's redirect URIs only
// (not another client's, not any other; never a wildcard, never with
// credentials); discovery and the JWKS for any registered client's.
func TestOIDCCORS(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	const spa, other, evil = "https://spa.example.test", "https://other.example.test", "https://evil.example.test"
	register := func(origin string) string {
		reg := c.expect(c.do("POST", "/api/v1/admin/oidc/clients", admin, map[string]any{
			"name": "spa", "redirect_uris": []string{origin + "/cb"}, "first_party": true, "scopes": []string{"profile", "offline_access"},
		}), http.StatusCreated).json(t)
		return reg["client_id"].(string)
	}
	id := register(spa)
	register(other)
	c.register("alice", "alice-password-1")
	alice, _ := c.login("alice", "alice-password-1")

	call := func(method, path, origin string, form url.Values, header ...string) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, p.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rsp.Body)
		rsp.Body.Close()
		if rsp.Header.Get("Access-Control-Allow-Credentials") != "" || rsp.Header.Get("Access-Control-Allow-Origin") == "*" {
			t.Fatalf("%s %s from %s: credentials or a wildcard allowed: %v", method, path, origin, rsp.Header)
		}
		return rsp
	}
	allows := func(rsp *http.Response, origin string) bool {
		return rsp.Header.Get("Access-Control-Allow-Origin") == origin
	}

	for _, path := range []string{"/oauth/token", "/oauth/userinfo", "/oauth/revoke", "/.well-known/openid-configuration", "/oauth/keys"} {
		rsp := call("OPTIONS", path, spa, nil, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
		if rsp.StatusCode != http.StatusNoContent || !allows(rsp, spa) || !strings.Contains(rsp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight of %s from the client's origin: %d %v", path, rsp.StatusCode, rsp.Header)
		}
		if rsp := call("OPTIONS", path, evil, nil, "Access-Control-Request-Method", "POST"); rsp.StatusCode != http.StatusForbidden || allows(rsp, evil) {
			t.Fatalf("preflight of %s from an unknown origin: %d %v", path, rsp.StatusCode, rsp.Header)
		}
	}
	if rsp := call("GET", "/.well-known/openid-configuration", spa, nil); rsp.StatusCode != 200 || !allows(rsp, spa) {
		t.Fatalf("discovery from the client's origin: %d %v", rsp.StatusCode, rsp.Header)
	}
	if rsp := call("GET", "/.well-known/openid-configuration", evil, nil); rsp.StatusCode != 200 || allows(rsp, evil) {
		t.Fatalf("discovery from an unknown origin: %d %v", rsp.StatusCode, rsp.Header)
	}

	// The code flow of the public client, its token request from its origin.
	rp := &relyingParty{t: t, issuer: p.URL, config: oauth2.Config{ClientID: id, RedirectURL: spa + "/cb",
		Endpoint: oauth2.Endpoint{AuthURL: p.URL + "/oauth/authorize"}, Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}}
	verifier := oauth2.GenerateVerifier()
	code := rp.authorize(browser(t, p.URL, alice), "s", "n", verifier).Query().Get("code")
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {spa + "/cb"}, "client_id": {id}, "code_verifier": {verifier}}
	req, _ := http.NewRequest("POST", p.URL+"/oauth/token", strings.NewReader(exchange.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", spa)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(rsp.Body).Decode(&tok); err != nil || rsp.StatusCode != 200 || !allows(rsp, spa) || tok.AccessToken == "" {
		t.Fatalf("token from the client's origin: %d %v %v", rsp.StatusCode, err, rsp.Header)
	}
	rsp.Body.Close()

	bearer := []string{"Authorization", "Bearer " + tok.AccessToken}
	if rsp := call("GET", "/oauth/userinfo", spa, nil, bearer...); rsp.StatusCode != 200 || !allows(rsp, spa) {
		t.Fatalf("userinfo from the client's origin: %d %v", rsp.StatusCode, rsp.Header)
	}
	for _, o := range []string{other, evil} {
		if rsp := call("GET", "/oauth/userinfo", o, nil, bearer...); allows(rsp, o) {
			t.Fatalf("userinfo answered CORS for %s, not the client's origin", o)
		}
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {id}}
		if rsp := call("POST", "/oauth/token", o, refresh); allows(rsp, o) {
			t.Fatalf("the token endpoint answered CORS for %s, not the client's origin", o)
		}
	}
	revoke := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {id}}
	if rsp := call("POST", "/oauth/revoke", spa, revoke); rsp.StatusCode != 200 || !allows(rsp, spa) {
		t.Fatalf("revocation from the client's origin: %d %v", rsp.StatusCode, rsp.Header)
	}
}

// TestOIDCBackchannelRetried: back-channel logout reaches an application
// that refuses the first attempts (sent again, with backoff), and one that
// is down while the user service restarts (the logout token is queued in
// the store, in the same write as the grant's end, and sent after the
// restart once the application is up).
func TestOIDCBackchannelRetried(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	p := portaltest.Start(t, portaltest.Options{DataDir: dir, Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	lr := newLogoutReceiver(t)
	rp := newRelyingParty(t, c, admin, p.URL, map[string]any{"backchannel_logout_uri": lr.URL})
	c.register("alice", "alice-password-1")
	signIn := func(c *client) (string, string) {
		t.Helper()
		tok, _ := c.login("alice", "alice-password-1")
		_, id := rp.signIn(browser(t, p.URL, tok))
		return tok, sid(t, id)
	}

	lr.set(func(lr *logoutReceiver) { lr.refuse = 2 })
	tok, s := signIn(c)
	c.expect(c.do("POST", "/api/v1/logout", tok, nil), http.StatusNoContent)
	lr.waitLogout(t, rp, s)
	if n := lr.tries(); n != 3 {
		t.Fatalf("the logout token arrived after %d attempts, want 3", n)
	}

	lr.set(func(lr *logoutReceiver) { lr.down, lr.attempts = true, 0 })
	tok, s = signIn(c)
	c.expect(c.do("POST", "/api/v1/logout", tok, nil), http.StatusNoContent)
	poll.Wait(t, 15*time.Second, "a first attempt at the application that is down", func() bool { return lr.tries() > 0 })
	addr := strings.TrimPrefix(p.URL, "http://")
	p.Stop(t)
	p = portaltest.Start(t, portaltest.Options{DataDir: dir, Addr: addr, Config: testenv.RelaxedRates})
	lr.set(func(lr *logoutReceiver) { lr.down = false })
	// The next attempt is due within the backoff reached (1 s doubling).
	poll.Wait(t, 60*time.Second, "the logout token after the restart", func() bool {
		return slices.Contains(lr.received(rp), s)
	})
}
