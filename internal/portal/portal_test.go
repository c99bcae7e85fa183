package portal_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/apicheck"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
	"github.com/portal-go/portal/internal/user"
)

// client talks to a test Portal without following redirects.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, p *portaltest.Portal) *client {
	return &client{t: t, base: p.URL, http: &http.Client{
		// Every API response is checked against the document the server
		// serves: a mismatch fails t.
		Transport:     apicheck.Transport(t, nil),
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a finished request.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %q", r.Request.Method, r.Request.URL.Path, err, r.body)
	}
	return m
}

func (c *client) do(method, path, token string, body any, header ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rsp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer rsp.Body.Close()
	data, err := io.ReadAll(rsp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{rsp, data}
}

func (c *client) expect(r response, status int) response {
	c.t.Helper()
	if r.StatusCode != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
	return r
}

func (c *client) register(name, pw string) {
	c.t.Helper()
	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": name, "password": pw}), http.StatusCreated)
}

func (c *client) login(name, pw string) (token string, expiresAt int64) {
	c.t.Helper()
	m := c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}), http.StatusOK).json(c.t)
	tok, _ := m["token"].(string)
	exp, _ := m["expires_at"].(float64)
	if tok == "" || exp == 0 {
		c.t.Fatalf("login answered %v", m)
	}
	return tok, int64(exp)
}

func errorCode(t *testing.T, r response) string {
	t.Helper()
	m := r.json(t)
	code, _ := m["code"].(string)
	if code == "" || m["message"] == nil {
		t.Fatalf("error body lacks code or message: %s", r.body)
	}
	return code
}

func TestLoginFlow(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)

	c.register("alice", "alice-password-1")
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "ALICE", "password": "another-password"}), http.StatusConflict)); code != "user.exists" {
		t.Fatalf("duplicate register code %q, want user.exists", code)
	}
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "wrong-password"}), http.StatusUnauthorized)); code != "user.bad_credentials" {
		t.Fatalf("bad login code %q", code)
	}

	tok, exp := c.login("alice", "alice-password-1")
	if d := time.Until(time.Unix(exp, 0)); d < 14*time.Minute || d > 16*time.Minute {
		t.Fatalf("token lives %v, want the default 15m", d)
	}
	me := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t)
	if me["username"] != "alice" || me["id"] == "" || fmt.Sprint(me["roles"]) != "[user]" {
		t.Fatalf("/me = %v", me)
	}
	// The article's ?token= form and the cookie work as well as the header.
	c.expect(c.do("GET", "/api/v1/me?token="+url.QueryEscape(tok), "", nil), http.StatusOK)
	c.expect(c.do("GET", "/api/v1/me", "", nil, "Cookie", "portal_session="+tok), http.StatusOK)
	home := c.expect(c.do("GET", "/", "", nil, "Cookie", "portal_session="+tok), http.StatusOK)
	if !strings.Contains(string(home.body), "alice") {
		t.Fatalf("home page does not show the username")
	}

	// A second session, then a password change ends it but keeps this one.
	other, _ := c.login("alice", "alice-password-1")
	rsp := c.expect(c.do("PUT", "/api/v1/me/password", tok, map[string]string{"old_password": "alice-password-1", "new_password": "alice-password-2"}), http.StatusOK).json(t)
	if rsp["sessions_ended"] != float64(1) {
		t.Fatalf("password change ended %v sessions, want 1", rsp["sessions_ended"])
	}
	c.expect(c.do("GET", "/api/v1/me", other, nil), http.StatusUnauthorized)
	c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK)
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1"}), http.StatusUnauthorized)

	c.expect(c.do("POST", "/api/v1/logout", tok, nil), http.StatusNoContent)
	if code := errorCode(t, c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusUnauthorized)); code != "auth.session_ended" {
		t.Fatalf("after logout: code %q, want auth.session_ended", code)
	}
	// The same token on a page: 303 to the login page, never 301.
	r := c.expect(c.do("GET", "/account", "", nil, "Cookie", "portal_session="+tok), http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/login?next=%2Faccount" {
		t.Fatalf("redirect to %q", loc)
	}
}

func TestUnauthenticated(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	for _, tc := range []struct {
		path, location string
	}{
		{"/", "/login?next=%2F"},
		{"/account?tab=password", "/login?next=%2Faccount%3Ftab%3Dpassword"},
	} {
		r := c.expect(c.do("GET", tc.path, "", nil), http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != tc.location {
			t.Errorf("GET %s: Location %q, want %q", tc.path, loc, tc.location)
		}
	}
	for _, tok := range []string{"", "garbage", "a.b.c"} {
		r := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusUnauthorized)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("401 Content-Type %q", ct)
		}
		errorCode(t, r)
	}
	// Whitelisted paths need nothing.
	c.expect(c.do("GET", "/login", "", nil), http.StatusOK)
	c.expect(c.do("GET", "/healthz", "", nil), http.StatusOK)
	c.expect(c.do("GET", "/readyz", "", nil), http.StatusOK)
}

func TestBadInput(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"short username", `{"username":"ab","password":"long-enough-pw"}`, 400, "user.bad_username"},
		{"bad characters", `{"username":"a b<c>","password":"long-enough-pw"}`, 400, "user.bad_username"},
		{"short password", `{"username":"bob","password":"short"}`, 400, "user.bad_password"},
		{"unknown field", `{"username":"bob","password":"long-enough-pw","admin":true}`, 400, "request.bad_json"},
		{"wrong type", `{"username":7,"password":"long-enough-pw"}`, 400, "request.bad_json"},
		{"not json", `username=bob`, 400, "request.bad_json"},
		{"two objects", `{"username":"bob","password":"long-enough-pw"}{}`, 400, "request.bad_json"},
		{"too large", `{"username":"bob","password":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "request.too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.expect(c.do("POST", "/api/v1/register", "", tc.body), tc.status)
			if code := errorCode(t, r); code != tc.code {
				t.Fatalf("code %q, want %q", code, tc.code)
			}
		})
	}
	r := c.expect(c.do("POST", "/api/v1/login", "", nil, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
	errorCode(t, r)
}

// TestRenewal runs with short token lifetimes: a token close to expiry is
// renewed, renewals never pass the session's end, and at the end the session
// is over.
func TestRenewal(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: `
auth:
  expireTime: 6
  refreshTime: 5
  sessionMaxAge: 9
`})
	c := newClient(t, p)
	c.register("renee", "renee-password")
	tok, exp := c.login("renee", "renee-password")
	if d := time.Until(time.Unix(exp, 0)); d > 6*time.Second {
		t.Fatalf("token lives %v, config says 6s", d)
	}
	sessionEnd := time.Now().Add(9 * time.Second).Unix()

	// The API client gets the new token in a header.
	var renewed string
	deadline := time.Now().Add(5 * time.Second)
	for renewed == "" && time.Now().Before(deadline) {
		r := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK)
		renewed = r.Header.Get("X-Refreshed-Token")
		if renewed != "" {
			newExp, _ := strconv.ParseInt(r.Header.Get("X-Refreshed-Expires-At"), 10, 64)
			if newExp <= exp {
				t.Fatalf("renewed token expires at %d, not after the old %d", newExp, exp)
			}
			if newExp > sessionEnd {
				t.Fatalf("renewed token expires at %d, past the session end %d", newExp, sessionEnd)
			}
		}
		time.Sleep(200 * time.Millisecond) // pacing between polls
	}
	if renewed == "" {
		t.Fatalf("no X-Refreshed-Token within 5s of a 6s token with refreshTime 5")
	}
	c.expect(c.do("GET", "/api/v1/me", renewed, nil), http.StatusOK)

	// A browser gets a new cookie.
	r := c.expect(c.do("GET", "/", "", nil, "Cookie", "portal_session="+renewed), http.StatusOK)
	if ck := r.Header.Get("Set-Cookie"); strings.HasPrefix(ck, "portal_session=") {
		if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") {
			t.Fatalf("session cookie lacks HttpOnly or SameSite=Lax: %s", ck)
		}
	}

	// Keep renewing: no token outlives the session; after its end, 401.
	latest := renewed
	for time.Now().Unix() <= sessionEnd+1 {
		r := c.do("GET", "/api/v1/me", latest, nil)
		if r.StatusCode == http.StatusUnauthorized {
			break
		}
		c.expect(r, http.StatusOK)
		if nt := r.Header.Get("X-Refreshed-Token"); nt != "" {
			ne, _ := strconv.ParseInt(r.Header.Get("X-Refreshed-Expires-At"), 10, 64)
			if ne > sessionEnd {
				t.Fatalf("renewal to %d passes the session end %d", ne, sessionEnd)
			}
			latest = nt
		}
		time.Sleep(250 * time.Millisecond) // pacing between polls
	}
	if time.Now().Unix() < sessionEnd-1 {
		t.Fatalf("the token stopped working at %d, before the session end %d", time.Now().Unix(), sessionEnd)
	}
	c.expect(c.do("GET", "/api/v1/me", latest, nil), http.StatusUnauthorized)
}

// TestLiveWhitelist changes the config file while Portal runs.
func TestLiveWhitelist(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: "auth:\n  expireTime: 900\n"})
	c := newClient(t, p)
	c.expect(c.do("GET", "/register", "", nil), http.StatusOK)
	// Drop /register from the whitelist: the page now needs a session.
	doc := "auth:\n  whiteList: [\"/login\", \"/api/v1/login\", \"/healthz\", \"/static/*\"]\n"
	if err := os.WriteFile(p.ConfigFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, "GET /register to need a session", func() bool {
		return c.do("GET", "/register", "", nil).StatusCode == http.StatusSeeOther
	})
	// An invalid change is refused and the last good config stays.
	if err := os.WriteFile(p.ConfigFile, []byte("auth:\n  expireTime: 1\n  whiteList: [\"/register\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Holds(t, 2*time.Second, "the last good config", func() bool {
		return c.do("GET", "/register", "", nil).StatusCode == http.StatusSeeOther
	})
}

// TestRestart: accounts, sessions and keys survive a restart.
func TestRestart(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	p := portaltest.Start(t, portaltest.Options{DataDir: dir})
	c := newClient(t, p)
	c.register("rita", "rita-password")
	tok, _ := c.login("rita", "rita-password")
	p.Stop(t)

	p = portaltest.Start(t, portaltest.Options{DataDir: dir})
	c = newClient(t, p)
	c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK)
	c.login("rita", "rita-password")
	c.login("admin", testenv.AdminPassword)
}

// TestConcurrentRegistration: of several registrations of one name sent at
// once, one wins and the rest get 409. Twice as many as there are hashing
// slots (plus two), so that some queue for a slot. The in-process Portal
// hashes cheaply (TestMain); TestDistributed/a3_unique_name_across_instances
// races 40 at the production cost across two user processes.
func TestConcurrentRegistration(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	_, slots := user.HashParams()
	raceRegistrations(t, "same_name", 2*slots+2, newClient(t, p))
}

// raceRegistrations sends n registrations of one name at once, spread over
// the gateways, and checks that exactly one wins and the rest get 409.
func raceRegistrations(t *testing.T, name string, n int, gateways ...*client) {
	t.Helper()
	codes := make(chan int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(c *client, i int) {
			defer wg.Done()
			<-start
			body := fmt.Sprintf(`{"username":%q,"password":"password-%02d-long"}`, name, i)
			rsp, err := c.http.Post(c.base+"/api/v1/register", "application/json", strings.NewReader(body))
			if err != nil {
				codes <- -1
				return
			}
			rsp.Body.Close()
			codes <- rsp.StatusCode
		}(gateways[i%len(gateways)], i)
	}
	close(start)
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
}

// TestServicesNeedAdmin: System.* is for admins, checked by the system
// service itself; an admin sees the three services in the registry.
func TestServicesNeedAdmin(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	c.register("plain_user", "plain-password")
	userTok, _ := c.login("plain_user", "plain-password")
	if code := errorCode(t, c.expect(c.do("GET", "/api/v1/admin/services", userTok, nil), http.StatusForbidden)); code != "auth.forbidden" {
		t.Fatalf("non-admin: code %q, want auth.forbidden", code)
	}
	adminTok, _ := c.login("admin", testenv.AdminPassword)
	var body struct {
		Services []struct {
			Name      string   `json:"name"`
			Endpoints []string `json:"endpoints"`
			Nodes     []struct {
				Address string `json:"address"`
			} `json:"nodes"`
		} `json:"services"`
	}
	r := c.expect(c.do("GET", "/api/v1/admin/services", adminTok, nil), http.StatusOK)
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range body.Services {
		names = append(names, s.Name)
		if len(s.Nodes) != 1 || !strings.HasPrefix(s.Nodes[0].Address, "127.0.0.1:") {
			t.Errorf("service %s nodes %+v, want one on loopback", s.Name, s.Nodes)
		}
		if s.Name == "user" && !slices.Contains(s.Endpoints, "User.Login") {
			t.Errorf("user endpoints %v lack User.Login", s.Endpoints)
		}
	}
	if strings.Join(names, ",") != "system,user,web" {
		t.Fatalf("services %v, want system, user, web", names)
	}
}
