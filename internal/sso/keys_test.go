package sso

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/filestore"
)

// newStore is a real file store, which is also a Claimer.
func newStore(t *testing.T) *filestore.Store {
	t.Helper()
	st, err := filestore.New(t.TempDir(), store.Database("user"), store.Table("user"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var testSecret = bytes.Repeat([]byte{7}, 32)

func newRing(t *testing.T, st *filestore.Store, secret []byte, now *time.Time) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(st, st, secret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r.bits = 1024 // fast to make; production keys are 2048 bits
	r.now = func() time.Time { return *now }
	return r
}

func kids(t *testing.T, r *KeyRing) []string {
	t.Helper()
	keys, err := r.Published(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	return ids
}

// TestKeyRotation: a new key signs each period; the previous one stays
// published for one more period (its tokens verify until they expire), then
// goes.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	r := newRing(t, newStore(t), testSecret, &now)
	a, err := r.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(t, r); len(got) != 1 || got[0] != a.ID() {
		t.Fatalf("first period publishes %v, want [%s]", got, a.ID())
	}
	now = now.Add(time.Hour)
	b, _ := r.Current(ctx)
	if b.ID() == a.ID() {
		t.Fatalf("the key did not rotate after a period")
	}
	if got := kids(t, r); len(got) != 2 || got[0] != b.ID() || got[1] != a.ID() {
		t.Fatalf("after rotation publishes %v, want [%s %s]", got, b.ID(), a.ID())
	}
	now = now.Add(time.Hour)
	c, _ := r.Current(ctx)
	if got := kids(t, r); len(got) != 2 || got[0] != c.ID() || got[1] != b.ID() {
		t.Fatalf("two periods on publishes %v, want [%s %s] (the first key retired)", got, c.ID(), b.ID())
	}
}

// TestKeyRingShared: instances sharing a store sign with the same key, and a
// store read with another service key does not give the private key away.
func TestKeyRingShared(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	st := newStore(t)
	r1, r2 := newRing(t, st, testSecret, &now), newRing(t, st, testSecret, &now)
	k1, err := r1.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := r2.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() {
		t.Fatalf("two instances sign with %s and %s", k1.ID(), k2.ID())
	}
	other := newRing(t, st, bytes.Repeat([]byte{8}, 32), &now)
	if _, err := other.Current(ctx); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("a ring with another secret opened the key: %v", err)
	}
	names, _ := st.List(store.ListPrefix(keyPrefix))
	for _, name := range names {
		recs, _ := st.Read(name)
		if bytes.Contains(recs[0].Value, []byte("PRIVATE")) || bytes.Contains(recs[0].Value, []byte("MII")) {
			t.Fatalf("the key is stored in the clear")
		}
	}
}

// fakeAccounts are sessions in a map: userID/sessionID -> person.
type fakeAccounts struct {
	live  map[string]Person
	in    *SignIn
	holds map[string]bool
}

func (f *fakeAccounts) Live(_ context.Context, uid, sid string) (Person, error) {
	p, ok := f.live[uid+"/"+sid]
	if !ok {
		return Person{}, ErrEnded
	}
	return p, nil
}

func (f *fakeAccounts) Identify(context.Context) (SignIn, error) {
	if f.in == nil {
		return SignIn{}, ErrEnded
	}
	return *f.in, nil
}

func (f *fakeAccounts) EndSession(_ context.Context, uid, sid string) error {
	delete(f.live, uid+"/"+sid)
	return nil
}

func (f *fakeAccounts) Holds(_ context.Context, uid, perm string) (bool, error) {
	return f.holds[uid+"/"+perm], nil
}

func newProvider(t *testing.T, st *filestore.Store, acc Accounts) *Provider {
	t.Helper()
	p, err := New(st, st, testSecret, acc, Options{Issuer: "https://sso.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	p.storage.keys.bits = 1024
	return p
}

func get(t *testing.T, h http.Handler, path string) map[string]any {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://sso.example.test"+path, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return m
}

// TestDiscoveryAndJWKS: the discovery document names the issuer and the
// endpoints under it, PKCE S256 and back-channel logout; the JWKS publishes
// the signing key with its kid.
func TestDiscoveryAndJWKS(t *testing.T) {
	st := newStore(t)
	p := newProvider(t, st, &fakeAccounts{})
	d := get(t, p, DiscoveryPath)
	for k, want := range map[string]any{
		"issuer":                       "https://sso.example.test",
		"jwks_uri":                     "https://sso.example.test/oauth/keys",
		"authorization_endpoint":       "https://sso.example.test/oauth/authorize",
		"token_endpoint":               "https://sso.example.test/oauth/token",
		"introspection_endpoint":       "https://sso.example.test/oauth/introspect",
		"revocation_endpoint":          "https://sso.example.test/oauth/revoke",
		"end_session_endpoint":         "https://sso.example.test/oauth/end_session",
		"backchannel_logout_supported": true,
	} {
		if d[k] != want {
			t.Errorf("discovery %s = %v, want %v", k, d[k], want)
		}
	}
	if m, _ := d["code_challenge_methods_supported"].([]any); len(m) == 0 || m[len(m)-1] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v, want S256", d["code_challenge_methods_supported"])
	}
	cur, err := p.storage.keys.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := get(t, p, KeysPath)["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(keys))
	}
	k := keys[0].(map[string]any)
	if k["kid"] != cur.ID() || k["alg"] != "RS256" || k["use"] != "sig" || k["kty"] != "RSA" || k["d"] != nil {
		t.Fatalf("JWKS key %v, want the public RS256 key %s", k, cur.ID())
	}
}

func TestDefaultIssuer(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "http://localhost:8080",
		"":               "http://localhost:8080",
		"[::]:8080":      "http://localhost:8080",
		"0.0.0.0:9000":   "http://localhost:9000",
		"127.0.0.1:4321": "http://127.0.0.1:4321",
	} {
		if got := DefaultIssuer(in); got != want {
			t.Errorf("DefaultIssuer(%q) = %q, want %q", in, got, want)
		}
	}
}
