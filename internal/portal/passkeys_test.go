package portal_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portal-go/portal/internal/testenv/portaltest"
	"github.com/portal-go/portal/internal/user/passkeytest"
)

// ceremony is a begun passkey ceremony as the API answers it.
type ceremony struct {
	Ceremony  string          `json:"ceremony"`
	PublicKey json.RawMessage `json:"publicKey"`
}

func (c *client) begin(path, token string) ceremony {
	c.t.Helper()
	var cer ceremony
	r := c.expect(c.do("POST", path, token, map[string]any{}), http.StatusOK)
	if err := json.Unmarshal(r.body, &cer); err != nil || cer.Ceremony == "" || len(cer.PublicKey) == 0 {
		c.t.Fatalf("%s answered %s (%v)", path, r.body, err)
	}
	return cer
}

// TestPasskeyAPI drives the passkey routes over HTTP: add, list, rename,
// sign in with one (the session is as good as a password's), the refusals
// as the API words them, delete, and the routes in the OpenAPI document.
func TestPasskeyAPI(t *testing.T) {
	p := portaltest.Start(t, portaltest.Options{Config: "accounts:\n  publicURL: https://portal.example\n"})
	c := newClient(t, p)
	c.register("alice", "alice-password-1")
	tok, _ := c.login("alice", "alice-password-1")
	key := passkeytest.New(t, "https://portal.example", "portal.example")

	b := c.begin("/api/v1/me/passkeys/begin", tok)
	cred := key.Create(t, b.PublicKey)
	finish := map[string]any{"ceremony": b.Ceremony, "name": "Laptop", "credential": json.RawMessage(cred)}
	pk := c.expect(c.do("POST", "/api/v1/me/passkeys/finish", tok, finish), http.StatusCreated).json(t)
	if pk["name"] != "Laptop" || pk["id"] == "" {
		t.Fatalf("added %v", pk)
	}
	// The same answer again: its ceremony is spent.
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/me/passkeys/finish", tok, finish), http.StatusBadRequest)); code != "user.passkey_expired" {
		t.Fatalf("replayed registration: %q", code)
	}
	// Not JSON, or an unknown field: refused before any RPC.
	c.expect(c.do("POST", "/api/v1/me/passkeys/finish", tok, "{garbled"), http.StatusBadRequest)
	c.expect(c.do("POST", "/api/v1/me/passkeys/finish", tok, map[string]any{"ceremony": b.Ceremony, "extra": 1}), http.StatusBadRequest)
	id, _ := pk["id"].(string)
	c.expect(c.do("PATCH", "/api/v1/me/passkeys/"+id, tok, map[string]string{"name": "Work laptop"}), http.StatusOK)
	list := c.expect(c.do("GET", "/api/v1/me/passkeys", tok, nil), http.StatusOK).json(t)
	if ps, _ := list["passkeys"].([]any); len(ps) != 1 || ps[0].(map[string]any)["name"] != "Work laptop" {
		t.Fatalf("list %v", list)
	}

	// Sign in with it: no username, no password.
	signIn := func(k *passkeytest.Key) response {
		lb := c.begin("/api/v1/login/passkey/begin", "")
		return c.do("POST", "/api/v1/login/passkey/finish", "", map[string]any{"ceremony": lb.Ceremony, "credential": json.RawMessage(k.Get(t, lb.PublicKey))})
	}
	m := c.expect(signIn(key), http.StatusOK).json(t)
	ptok, _ := m["token"].(string)
	if me := c.expect(c.do("GET", "/api/v1/me", ptok, nil), http.StatusOK).json(t); me["username"] != "alice" {
		t.Fatalf("/me with the passkey's token: %v", me)
	}

	// Refusals: another origin, a cloned authenticator, a garbled answer.
	evil := *key
	evil.Origin = "https://evil.example"
	if code := errorCode(t, c.expect(signIn(&evil), http.StatusUnauthorized)); code != "user.passkey_invalid" {
		t.Fatalf("wrong origin: %q", code)
	}
	clone := *key
	c.expect(signIn(key), http.StatusOK)
	if code := errorCode(t, c.expect(signIn(&clone), http.StatusUnauthorized)); code != "user.passkey_invalid" {
		t.Fatalf("cloned authenticator: %q", code)
	}
	lb := c.begin("/api/v1/login/passkey/begin", "")
	c.expect(c.do("POST", "/api/v1/login/passkey/finish", "", map[string]any{"ceremony": lb.Ceremony}), http.StatusBadRequest)
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login/passkey/finish", "", map[string]any{"ceremony": lb.Ceremony, "credential": map[string]string{"id": "x"}}), http.StatusUnauthorized)); code != "user.passkey_invalid" {
		t.Fatalf("garbled answer: %q", code)
	}

	// Deleted (moments after signing in: no password asked), it signs in
	// no more.
	c.expect(c.do("DELETE", "/api/v1/me/passkeys/"+id, ptok, nil), http.StatusNoContent)
	c.expect(c.do("DELETE", "/api/v1/me/passkeys/"+id, ptok, nil), http.StatusNotFound)
	c.expect(signIn(key), http.StatusUnauthorized)

	doc := string(c.expect(c.do("GET", "/api/openapi.json", "", nil), http.StatusOK).body)
	for _, path := range []string{`"/api/v1/me/passkeys"`, `"/api/v1/me/passkeys/{id}"`, `"/api/v1/me/passkeys/begin"`, `"/api/v1/me/passkeys/finish"`, `"/api/v1/login/passkey/begin"`, `"/api/v1/login/passkey/finish"`} {
		if !strings.Contains(doc, path) {
			t.Errorf("OpenAPI lacks %s", path)
		}
	}
}
