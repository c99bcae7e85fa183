package portal_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// startBinary runs the built portal binary in the embedded mode on dataDir
// and returns a client for it.
func startBinary(t *testing.T, bin, dataDir, config string) (*testenv.Proc, *client) {
	t.Helper()
	cfg := filepath.Join(dataDir, "portal.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProc(t, bin, []string{"--http_address", "127.0.0.1:0", "--data_dir", dataDir, "--config", cfg},
		map[string]string{"PORTAL_ADMIN_PASSWORD": testenv.AdminPassword}, `msg="portal ready"`)
	addr := p.LogValue("portal ready", "http")
	if addr == "" {
		t.Fatalf("no address in the log: %s", p.Tail(20))
	}
	return p, newClient(t, &portaltest.Portal{URL: "http://" + addr})
}

// cookieOf returns the named cookie a response sets, nil when none.
func cookieOf(r response, name string) *http.Cookie {
	for _, ck := range r.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// formLogin signs in through the login form, with the cookies given, and
// returns the response.
func formLogin(c *client, name, pw string, cookies ...*http.Cookie) response {
	c.t.Helper()
	csrf := cookieOf(c.do("GET", "/login", "", nil), "portal_csrf")
	form := url.Values{"csrf_token": {csrf.Value}, "username": {name}, "password": {pw}, "next": {"/"}}
	hdr := "portal_csrf=" + csrf.Value
	for _, ck := range cookies {
		hdr += "; " + ck.Name + "=" + ck.Value
	}
	return c.do("POST", "/login", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", hdr)
}

// pollAudit waits until the audit log holds an entry of kind whose detail
// contains detail, and returns it.
func pollAudit(t *testing.T, c *client, admin, kind, detail string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := c.expect(c.do("GET", "/api/v1/admin/audit?kind="+kind, admin, nil), http.StatusOK).json(t)
		entries, _ := m["entries"].([]any)
		for _, e := range entries {
			if em, _ := e.(map[string]any); strings.Contains(em["detail"].(string), detail) {
				return em
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s entry with %q in the audit log: %s", kind, detail, m)
		}
		time.Sleep(100 * time.Millisecond) // pacing between polls
	}
}

// TestLockoutEndToEnd runs the portal binary (embedded mode) and drives the
// lockout defences over HTTP: the device cookie lets its browser past a
// lockout of its address, and the lockout is listed and lifted by an admin
// (API and page, audited); a wrong current password counts and locks (429);
// login is rate limited (429, Retry-After); the first admin, deleted, does
// not come back at a restart.
func TestLockoutEndToEnd(t *testing.T) {
	parallel(t)
	bin := testenv.BuildPortal(t)
	dataDir := t.TempDir()
	const cfg = "login:\n  maxFailures: 3\n  lockoutSeconds: 300\nrateLimit:\n  loginPerAccount: 12\n"
	proc, c := startBinary(t, bin, dataDir, cfg)
	c.register("dev_alice", "alice-password-1")
	c.register("dev_bob", "bob-password-12")
	creds := func(name, pw string) map[string]string { return map[string]string{"username": name, "password": pw} }

	// A browser signs in: it gets the device cookie.
	r := c.expect(formLogin(c, "dev_alice", "alice-password-1"), http.StatusSeeOther)
	dev := cookieOf(r, "portal_device")
	if dev == nil || !dev.HttpOnly || dev.SameSite != http.SameSiteStrictMode || dev.Secure || dev.Path != "/" || dev.MaxAge < 89*24*3600 {
		t.Fatalf("device cookie %+v: want HttpOnly, SameSite=Strict, not Secure over http, 90 days", dev)
	}

	// Someone at the same address guesses: the account is locked from it.
	for i := range 3 {
		c.expect(c.do("POST", "/api/v1/login", "", creds("dev_alice", "wrong-password-"+strconv.Itoa(i))), http.StatusUnauthorized)
	}
	wantLockedResponse(t, c, c.do("POST", "/api/v1/login", "", creds("dev_alice", "alice-password-1")), 300)
	c.expect(formLogin(c, "dev_alice", "alice-password-1"), http.StatusTooManyRequests)
	// The owner's browser, with its cookie: signs in.
	c.expect(formLogin(c, "dev_alice", "alice-password-1", dev), http.StatusSeeOther)
	// An API client that kept the device token: the same.
	m := c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "dev_alice", "password": "alice-password-1", "device_token": dev.Value}), http.StatusOK).json(t)
	if tok, _ := m["device_token"].(string); tok == "" {
		t.Fatalf("API login answered no device_token: %v", m)
	}

	// The admin sees the lockout and lifts it (API), audited.
	admin, _ := c.login("admin", testenv.AdminPassword)
	m = c.expect(c.do("GET", "/api/v1/admin/lockouts", admin, nil), http.StatusOK).json(t)
	if !strings.Contains(string(mustJSON(t, m)), `"key":"dev_alice@127.0.0.1"`) {
		t.Fatalf("lockouts %v, want dev_alice@127.0.0.1", m)
	}
	c.expect(c.do("GET", "/api/v1/admin/lockouts", "", nil), http.StatusUnauthorized)
	c.expect(c.do("DELETE", "/api/v1/admin/lockouts/account_address/dev_alice@127.0.0.1", admin, nil), http.StatusNoContent)
	c.expect(c.do("DELETE", "/api/v1/admin/lockouts/account_address/dev_alice@127.0.0.1", admin, nil), http.StatusNotFound)
	// An IPv6 network's key holds a slash: it reaches the service.
	if code := errorCode(t, c.expect(c.do("DELETE", "/api/v1/admin/lockouts/address/2001:db8::/64", admin, nil), http.StatusNotFound)); code != "user.lockout_not_found" {
		t.Fatalf("DELETE of an IPv6 network's lockout: code %q, want user.lockout_not_found", code)
	}
	c.login("dev_alice", "alice-password-1")
	pollAudit(t, c, admin, "lockout_lifted", "account_address dev_alice@127.0.0.1")

	// The page: bob locked, listed, lifted with the form.
	for range 3 {
		c.expect(c.do("POST", "/api/v1/login", "", creds("dev_bob", "wrong-password")), http.StatusUnauthorized)
	}
	page := c.expect(c.do("GET", "/admin/lockouts", "", nil, "Cookie", "portal_session="+admin), http.StatusOK)
	csrf := cookieOf(page, "portal_csrf")
	if !strings.Contains(string(page.body), "dev_bob@127.0.0.1") || csrf == nil {
		t.Fatalf("lockouts page lacks dev_bob: %s", page.body)
	}
	form := url.Values{"csrf_token": {csrf.Value}, "kind": {"account_address"}, "key": {"dev_bob@127.0.0.1"}, "confirmed": {"yes"}}
	c.expect(c.do("POST", "/admin/lockouts/lift", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded",
		"Cookie", "portal_session="+admin), http.StatusForbidden) // no CSRF cookie
	r = c.expect(c.do("POST", "/admin/lockouts/lift", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded",
		"Cookie", "portal_session="+admin+"; portal_csrf="+csrf.Value), http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/admin/lockouts?done=lifted" {
		t.Fatalf("lift redirects to %q", loc)
	}
	c.login("dev_bob", "bob-password-12")

	// A wrong current password counts as a failed login, audited; the
	// fourth check is refused, 429, even with the right one.
	carol := "pw_carol"
	c.register(carol, "carol-password-1")
	tok, _ := c.login(carol, "carol-password-1")
	for range 3 {
		c.expect(c.do("PUT", "/api/v1/me/password", tok, map[string]string{"old_password": "wrong-password", "new_password": "carol-password-2"}), http.StatusForbidden)
	}
	wantLockedResponse(t, c, c.do("PUT", "/api/v1/me/password", tok, map[string]string{"old_password": "carol-password-1", "new_password": "carol-password-2"}), 300)
	pollAudit(t, c, admin, "login_failed", "wrong current password")

	// Rate limit: 12 logins a minute for dev_bob from untrusted devices.
	limited := false
	for range 12 {
		if r := c.do("POST", "/api/v1/login", "", creds("dev_bob", "bob-password-12")); r.StatusCode == http.StatusTooManyRequests {
			if code := errorCode(t, r); code != "user.rate_limited" {
				t.Fatalf("429 %s, want user.rate_limited", code)
			}
			if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 60 {
				t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("13 logins in a minute were not rate limited")
	}

	// The first admin, deleted, does not come back at a restart.
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+userID(t, c, admin, "dev_alice"), admin, map[string]any{"roles": []string{"admin", "user"}}), http.StatusOK)
	alice, _ := c.login("dev_alice", "alice-password-1")
	c.expect(c.do("DELETE", "/api/v1/admin/users/"+userID(t, c, alice, "admin"), alice, nil), http.StatusNoContent)
	proc.Stop(t)
	_, c = startBinary(t, bin, dataDir, cfg)
	alice, _ = c.login("dev_alice", "alice-password-1")
	if users, _ := listUsers(t, c, alice, "q=admin"); len(users) != 0 {
		t.Fatalf("the deleted admin came back at the restart: %+v", users)
	}
	c.expect(c.do("POST", "/api/v1/login", "", creds("admin", testenv.AdminPassword)), http.StatusUnauthorized)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lockoutAcrossInstances is step i of TestDistributed (login.maxFailures 5,
// rate limits relaxed): failure counters in Redis lock an account from an
// address whichever gateway and user instance see the failures; a device
// token one user instance issued lets its device past that lock on every
// instance; an admin lists and lifts the lock through either gateway; a
// rate limit set in etcd holds over both; and the first admin, deleted, is
// not made again by a user instance that starts later.
func lockoutAcrossInstances(t *testing.T, c *cluster) {
	c.start("user") // a fresh instance beside those running
	ws := c.clients(t)
	const name, pw = "dist_dave", "dave-password-1"
	ws[0].register(name, pw)
	m := ws[0].expect(ws[0].do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}), http.StatusOK).json(t)
	dev, _ := m["device_token"].(string)
	if dev == "" {
		t.Fatalf("login answered no device token: %v", m)
	}
	for i := range 5 {
		w := ws[i%2]
		w.expect(w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": "wrong-password"}), http.StatusUnauthorized)
	}
	for _, w := range ws {
		wantLockedResponse(t, w, w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}), 300)
	}
	// The device token, on each gateway, several times (round robin over
	// the user instances): trusted everywhere.
	for i := range 6 {
		w := ws[i%2]
		w.expect(w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw, "device_token": dev}), http.StatusOK)
	}
	admin, _ := ws[1].login("admin", testenv.AdminPassword)
	list := ws[1].expect(ws[1].do("GET", "/api/v1/admin/lockouts", admin, nil), http.StatusOK).json(t)
	if !strings.Contains(string(mustJSON(t, list)), `"key":"dist_dave@127.0.0.1"`) {
		t.Fatalf("lockouts %v, want dist_dave@127.0.0.1", list)
	}
	ws[0].expect(ws[0].do("DELETE", "/api/v1/admin/lockouts/account_address/dist_dave@127.0.0.1", admin, nil), http.StatusNoContent)
	for _, w := range ws {
		w.login(name, pw)
	}

	// A rate limit put in etcd: one registration per name a minute, on
	// every instance. Poll until both gateways refuse a second try (the
	// user instances pick the document up within moments).
	c.env.Etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 300\n  refreshTime: 60\nrateLimit:\n  registerPerAccount: 1\n  loginPerAddress: 1000000\n  loginPerAccount: 1000000\n  registerPerAddress: 1000000\n")
	deadline := time.Now().Add(15 * time.Second)
	for i, streak := 0, 0; streak < 4; i++ {
		n := "rl_" + strconv.Itoa(i)
		ws[i%2].register(n, "rl-password-1")
		r := ws[(i+1)%2].do("POST", "/api/v1/register", "", map[string]string{"username": n, "password": "rl-password-1"})
		switch r.StatusCode {
		case http.StatusTooManyRequests:
			streak++
		case http.StatusConflict:
			streak = 0
		default:
			t.Fatalf("second registration of %s: %d %s", n, r.StatusCode, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("registerPerAccount: 1 not in force on every instance 15s after the put")
		}
	}
	c.env.Etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 300\n  refreshTime: 60\n"+testenv.RelaxedRates)

	// The first admin, deleted, is not made again by a new user instance.
	ws[0].expect(ws[0].do("PATCH", "/api/v1/admin/users/"+userID(t, ws[0], admin, name), admin, map[string]any{"roles": []string{"admin", "user"}}), http.StatusOK)
	dave, _ := ws[0].login(name, pw)
	ws[0].expect(ws[0].do("DELETE", "/api/v1/admin/users/"+userID(t, ws[0], dave, "admin"), dave, nil), http.StatusNoContent)
	c.start("user")
	if users, _ := listUsers(t, ws[1], dave, "q=admin"); len(users) != 0 {
		t.Fatalf("the deleted admin came back with a new user instance: %+v", users)
	}
	ws[1].expect(ws[1].do("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": testenv.AdminPassword}), http.StatusUnauthorized)
}
