package auth

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"go-micro.dev/v4/auth"
)

// TestInspectRemembersVerifiedTokens: a token inspected twice gives the same
// account; only tokens that verified are remembered; an account's fields
// belong to its caller.
func TestInspectRemembersVerifiedTokens(t *testing.T) {
	j, _ := newTestJWT(t)
	pair, other := keyPairs(t)
	_, tok := mint(t, j, defaultMint())
	first, err := j.Inspect(tok.AccessToken)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	first.Scopes[0] = "admin" // the caller's to change
	second, err := j.Inspect(tok.AccessToken)
	if err != nil {
		t.Fatalf("second Inspect: %v", err)
	}
	if second.ID != "user-1" || len(second.Scopes) != 1 || second.Scopes[0] != RoleUser || second.Metadata[MetaSession] != "sess-1" {
		t.Fatalf("second Inspect = %+v", second)
	}
	if n := j.seen.len(); n != 1 {
		t.Fatalf("%d tokens remembered, want 1", n)
	}
	for name, bad := range badTokens(t, j, pair, other) {
		for range 2 {
			if _, err := j.Inspect(bad); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("%s: Inspect = %v, want ErrInvalidToken", name, err)
			}
		}
	}
	if n := j.seen.len(); n != 1 {
		t.Fatalf("%d tokens remembered after invalid ones, want still 1", n)
	}
}

// TestRememberedTokenTimes: a remembered token still expires, and is not
// valid before its issue time when the clock goes back.
func TestRememberedTokenTimes(t *testing.T) {
	j, clk := newTestJWT(t)
	_, tok := mint(t, j, defaultMint()) // issued at baseTime, lives 15 min
	if _, err := j.Inspect(tok.AccessToken); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	for _, tc := range []struct {
		name string
		at   time.Duration
		want error
	}{
		{"a second before expiry", 15*time.Minute - time.Second, nil},
		{"clock gone back before iat", -time.Second, auth.ErrInvalidToken},
		{"at expiry", 15 * time.Minute, ErrExpired},
		{"after expiry, forgotten", time.Hour, ErrExpired},
	} {
		clk.Set(baseTime.Add(tc.at))
		acc, err := j.Inspect(tok.AccessToken)
		if !errors.Is(err, tc.want) || (err == nil) != (acc != nil) {
			t.Errorf("%s: Inspect = %v, %v; want %v", tc.name, acc, err, tc.want)
		}
	}
	if n := j.seen.len(); n != 0 {
		t.Errorf("an expired token is still remembered (%d)", n)
	}
}

// TestInitForgetsVerifiedTokens: tokens verified with a key that Init
// replaced are verified again, and refused.
func TestInitForgetsVerifiedTokens(t *testing.T) {
	j, _ := newTestJWT(t)
	_, other := keyPairs(t)
	_, tok := mint(t, j, defaultMint())
	if _, err := j.Inspect(tok.AccessToken); err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	priv, pub := other.b64()
	j.Init(auth.PublicKey(pub), auth.PrivateKey(priv))
	if _, err := j.Inspect(tok.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a token of the replaced key: Inspect = %v, want ErrInvalidToken", err)
	}
}

// TestVerifiedBounded: the memo never holds more than verifiedMax tokens.
func TestVerifiedBounded(t *testing.T) {
	var v verified
	c := &claims{}
	for i := range verifiedMax + 100 {
		v.put("token-"+strconv.Itoa(i), c)
	}
	if n := v.len(); n != verifiedMax {
		t.Fatalf("memo holds %d, want %d", n, verifiedMax)
	}
	if _, ok := v.get("token-" + strconv.Itoa(verifiedMax+99)); !ok {
		t.Fatal("the newest token was not kept")
	}
}
