package portal_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/portal-go/portal/internal/testenv"
)

// TestOIDCRelyingParty: a relying party Portal did not write (go-oidc,
// x/oauth2) signs a user in against the embedded Portal: discovery, the code
// flow with PKCE S256 for a browser that holds a Portal session (not asked
// again), the ID token verified against the JWKS, userinfo, introspection,
// refresh with rotation, and a reused refresh token ending the grant.
func TestOIDCRelyingParty(t *testing.T) {
	t.Parallel()
	p := testenv.StartPortal(t, testenv.PortalOptions{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	rp := newRelyingParty(t, c, admin, p.URL, nil)
	c.register("alice", "alice-password-1")
	alice, _ := c.login("alice", "alice-password-1")
	ctx := context.Background()

	tok, id := rp.signIn(browser(t, p.URL, alice))
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
	_ = oidc.ScopeOpenID
}
