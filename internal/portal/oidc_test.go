package portal_test

import (
	"context"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/portal-go/portal/internal/testenv"
)

// TestOIDCDiscovery: a relying party Portal did not write (go-oidc) finds
// the embedded Portal's provider: the issuer derived from the listen
// address, and a JWKS it can fetch through the gateway.
func TestOIDCDiscovery(t *testing.T) {
	p := testenv.StartPortal(t, testenv.PortalOptions{})
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, p.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if prov.Endpoint().TokenURL != p.URL+"/oauth/token" {
		t.Fatalf("token endpoint %q", prov.Endpoint().TokenURL)
	}
	var claims struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := prov.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	ks := oidc.NewRemoteKeySet(ctx, claims.JWKS)
	if _, err := ks.VerifySignature(ctx, "e30.e30.e30"); err == nil {
		t.Fatalf("a forged token verified")
	}
	c := newClient(t, p)
	keys := c.expect(c.do("GET", "/oauth/keys", "", nil), 200).json(t)["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["kid"] == "" {
		t.Fatalf("JWKS %v", keys)
	}
}
