package portal_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// lockoutSeconds is how long 3 failures lock (lockoutConfig). Long enough
// that the request after the third failure is still inside it on a busy
// machine, where a login under -race can wait seconds for a hashing slot
// (2 s once failed that way).
const lockoutSeconds = 10

// lockoutConfig: 3 failures lock for lockoutSeconds.
var lockoutConfig = "login:\n  maxFailures: 3\n  lockoutSeconds: " + strconv.Itoa(lockoutSeconds) + "\n  addressMaxFailures: 3\n"

// wantLockedResponse checks a 429 user.locked with a Retry-After of 1 to
// maxSecs seconds.
func wantLockedResponse(t *testing.T, c *client, r response, maxSecs int) {
	t.Helper()
	c.expect(r, http.StatusTooManyRequests)
	if code := errorCode(t, r); code != "user.locked" {
		t.Fatalf("code %q, want user.locked", code)
	}
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > maxSecs {
		t.Fatalf("Retry-After %q, want 1 to %d seconds", r.Header.Get("Retry-After"), maxSecs)
	}
	if msg, _ := r.json(t)["message"].(string); strings.Contains(msg, "retry_after=") || strings.Contains(msg, "retryAfterSeconds") || !strings.Contains(strings.ToLower(msg), "try again in") {
		t.Errorf("message %q: want a human one, without the machine suffix", msg)
	}
}

func TestLoginLockout(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: lockoutConfig})
	c := newClient(t, p)
	c.register("lock_alice", "alice-password-1")
	creds := func(pw string) map[string]string { return map[string]string{"username": "lock_alice", "password": pw} }

	for i := range 3 {
		r := c.expect(c.do("POST", "/api/v1/login", "", creds("wrong-password-"+strconv.Itoa(i))), http.StatusUnauthorized)
		if code := errorCode(t, r); code != "user.bad_credentials" {
			t.Fatalf("failure %d: code %q", i+1, code)
		}
	}
	// The fourth attempt, with the right password: locked.
	wantLockedResponse(t, c, c.do("POST", "/api/v1/login", "", creds("alice-password-1")), lockoutSeconds)

	// The login form says so too, on the login page, with Retry-After.
	r := c.do("GET", "/login", "", nil)
	csrf := ""
	for _, ck := range r.Cookies() {
		if ck.Name == "portal_csrf" {
			csrf = ck.Value
		}
	}
	form := url.Values{"csrf_token": {csrf}, "username": {"lock_alice"}, "password": {"alice-password-1"}, "next": {"/"}}
	r = c.do("POST", "/login", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", "portal_csrf="+csrf)
	c.expect(r, http.StatusTooManyRequests)
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > lockoutSeconds {
		t.Errorf("form: Retry-After %q", r.Header.Get("Retry-After"))
	}
	if body := string(r.body); !strings.Contains(body, "Too many sign-in attempts") || !strings.Contains(body, `action="/login"`) {
		t.Errorf("form: the login page with the lockout message expected, got %s", body)
	}

	// The lockout ends by itself: the right password works again.
	deadline := time.Now().Add(lockoutSeconds*time.Second + 5*time.Second)
	for {
		r := c.do("POST", "/api/v1/login", "", creds("alice-password-1"))
		if r.StatusCode == http.StatusOK {
			break
		}
		wantLockedResponse(t, c, r, lockoutSeconds)
		if time.Now().After(deadline) {
			t.Fatalf("still locked 5s after a %ds lockout", lockoutSeconds)
		}
		time.Sleep(100 * time.Millisecond) // pacing between polls
	}
	c.login("lock_alice", "alice-password-1")
}

// TestLoginLockoutByAddress: wrong passwords spread over accounts lock the
// client's address (every test request comes from 127.0.0.1).
func TestLoginLockoutByAddress(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: lockoutConfig})
	c := newClient(t, p)
	for _, n := range []string{"addr_a", "addr_b", "addr_c", "addr_d"} {
		c.register(n, n+"-password")
	}
	for _, n := range []string{"addr_a", "addr_b", "addr_c"} {
		c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": n, "password": "wrong-password"}), http.StatusUnauthorized)
	}
	// Each account has one failure; the address has three.
	wantLockedResponse(t, c, c.do("POST", "/api/v1/login", "", map[string]string{"username": "addr_d", "password": "addr_d-password"}), lockoutSeconds)
}
