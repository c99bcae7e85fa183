package portal_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// adminRoutes are every admin route of the JSON API and the pages.
var adminRoutes = []struct{ method, path string }{
	{"GET", "/api/v1/admin/overview"},
	{"GET", "/api/v1/admin/users"},
	{"GET", "/api/v1/admin/users/some-id"},
	{"PATCH", "/api/v1/admin/users/some-id"},
	{"DELETE", "/api/v1/admin/users/some-id"},
	{"DELETE", "/api/v1/admin/sessions/some-id"},
	{"GET", "/api/v1/admin/config"},
	{"PUT", "/api/v1/admin/config"},
	{"GET", "/api/v1/admin/config/schema"},
	{"GET", "/api/v1/admin/config/history"},
	{"POST", "/api/v1/admin/config/rollback"},
	{"GET", "/api/v1/admin/services"},
	{"POST", "/api/v1/admin/services/user/restart"},
	{"GET", "/api/v1/admin/services/user/logs"},
	{"GET", "/api/v1/admin/audit"},
	{"GET", "/api/v1/admin/oidc/clients"},
	{"POST", "/api/v1/admin/oidc/clients"},
	{"PATCH", "/api/v1/admin/oidc/clients/some-id"},
	{"DELETE", "/api/v1/admin/oidc/clients/some-id"},
	{"GET", "/api/v1/admin/overview"},
	{"GET", "/api/v1/admin/permissions"},
	{"GET", "/api/v1/admin/roles"},
	{"POST", "/api/v1/admin/roles"},
	{"GET", "/api/v1/admin/roles/auditor"},
	{"PUT", "/api/v1/admin/roles/auditor"},
	{"DELETE", "/api/v1/admin/roles/auditor"},
	{"GET", "/api/v1/admin/users/some-id/tokens"},
	{"GET", "/api/v1/admin/lockouts"},
	{"DELETE", "/api/v1/admin/lockouts/address/192.0.2.1"},
	{"GET", "/admin"},
	{"GET", "/admin/roles"},
	{"GET", "/admin/lockouts"},
	{"GET", "/admin/users"},
	{"GET", "/admin/users/some-id"},
	{"GET", "/admin/config"},
	{"GET", "/admin/services"},
	{"GET", "/admin/services/user/logs"},
	{"GET", "/admin/audit"},
	{"GET", "/admin/oidc"},
}

// TestAdminRoutesRefuseNonAdmins: a signed-in user without the admin role
// gets 403 on every admin route; no token gets 401 (API) or the login page.
func TestAdminRoutesRefuseNonAdmins(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	c.register("plain_user", "plain-password")
	tok, _ := c.login("plain_user", "plain-password")
	for _, r := range adminRoutes {
		var body any
		switch {
		case strings.Contains(r.path, "/roles"):
			body = map[string]any{"name": "auditor", "permissions": []string{"audit.read"}}
		case r.method == "PATCH" || r.method == "PUT":
			body = map[string]any{"disabled": true}
		case strings.HasSuffix(r.path, "/rollback"):
			body = map[string]any{"version": 1}
		}
		rsp := c.do(r.method, r.path, tok, body)
		if rsp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s as a user: status %d, want 403: %.200s", r.method, r.path, rsp.StatusCode, rsp.body)
		}
		rsp = c.do(r.method, r.path, "", body)
		want := http.StatusUnauthorized
		if !strings.HasPrefix(r.path, "/api/") {
			want = http.StatusSeeOther
		}
		if rsp.StatusCode != want {
			t.Errorf("%s %s without a token: status %d, want %d", r.method, r.path, rsp.StatusCode, want)
		}
	}
}

// account is a user as the admin API returns it.
type account struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Disabled bool     `json:"disabled"`
}

func listUsers(t *testing.T, c *client, tok, query string) (users []account, total int) {
	t.Helper()
	var body struct {
		Users []account `json:"users"`
		Total int       `json:"total"`
	}
	r := c.expect(c.do("GET", "/api/v1/admin/users?"+query, tok, nil), http.StatusOK)
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Users, body.Total
}

func userID(t *testing.T, c *client, tok, name string) string {
	t.Helper()
	users, _ := listUsers(t, c, tok, "q="+name)
	for _, u := range users {
		if u.Username == name {
			return u.ID
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}

// TestAdminUsers: an admin lists, searches, promotes, disables, enables and
// deletes users; each change applies to the user's live session at once; the
// last admin stays.
func TestAdminUsers(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	for i := range 25 {
		c.register(fmt.Sprintf("member%02d", i), "member-password")
	}
	c.register("bob", "bob-password-1")
	bob, _ := c.login("bob", "bob-password-1")
	c.expect(c.do("GET", "/api/v1/me", bob, nil), http.StatusOK)

	users, total := listUsers(t, c, admin, "offset=20&limit=10")
	if total != 27 || len(users) != 7 {
		t.Fatalf("page 3: %d users of %d, want 7 of 27", len(users), total)
	}
	if users, total = listUsers(t, c, admin, "q=MEMBER1"); total != 10 || users[0].Username != "member10" {
		t.Fatalf("search member1: %d, first %v", total, users)
	}
	// Booleans are always there: an enabled user says disabled false.
	if r := c.expect(c.do("GET", "/api/v1/admin/users?q=bob", admin, nil), http.StatusOK); !strings.Contains(string(r.body), `"disabled":false`) {
		t.Errorf("an enabled user without disabled: %s", r.body)
	}
	// Paging parameters that are not non-negative integers are refused.
	for _, q := range []string{"limit=abc", "offset=-5"} {
		if code := errorCode(t, c.expect(c.do("GET", "/api/v1/admin/users?"+q, admin, nil), http.StatusBadRequest)); code != "request.bad_param" {
			t.Errorf("%s: code %q", q, code)
		}
	}
	bobID := userID(t, c, admin, "bob")

	// Promotion: bob's live token reaches the admin plane at once.
	c.expect(c.do("GET", "/api/v1/admin/users", bob, nil), http.StatusForbidden)
	r := c.expect(c.do("PATCH", "/api/v1/admin/users/"+bobID, admin, map[string]any{"roles": []string{"user", "admin"}}), http.StatusOK)
	if !strings.Contains(string(r.body), `"admin"`) {
		t.Fatalf("patch roles: %s", r.body)
	}
	c.expect(c.do("GET", "/api/v1/admin/users", bob, nil), http.StatusOK)
	// And back: the role goes as fast.
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+bobID, admin, map[string]any{"roles": []string{"user"}}), http.StatusOK)
	c.expect(c.do("GET", "/api/v1/admin/users", bob, nil), http.StatusForbidden)

	// Bad input is refused with a reason.
	for _, tc := range []struct {
		body any
		code string
	}{
		{map[string]any{"roles": []string{"root"}}, "user.bad_roles"},
		{map[string]any{"roles": []string{}}, "user.bad_roles"},
		{map[string]any{}, "request.bad_input"},
		{map[string]any{"disabled": "yes"}, "request.bad_json"},
		{map[string]any{"password": "x"}, "request.bad_json"},
	} {
		r := c.do("PATCH", "/api/v1/admin/users/"+bobID, admin, tc.body)
		if r.StatusCode != http.StatusBadRequest || errorCode(t, r) != tc.code {
			t.Errorf("PATCH %v: %d %s, want 400 %s", tc.body, r.StatusCode, r.body, tc.code)
		}
	}
	if r := c.do("PATCH", "/api/v1/admin/users/no-such-id", admin, map[string]any{"disabled": true}); r.StatusCode != http.StatusNotFound {
		t.Errorf("PATCH unknown user: %d", r.StatusCode)
	}

	// Disable: bob's session ends at once, and login is refused.
	r = c.expect(c.do("PATCH", "/api/v1/admin/users/"+bobID, admin, map[string]any{"disabled": true}), http.StatusOK)
	if m := r.json(t); m["sessions_ended"] != float64(1) {
		t.Errorf("disable: %v, want 1 session ended", m)
	}
	if code := errorCode(t, c.expect(c.do("GET", "/api/v1/me", bob, nil), http.StatusUnauthorized)); code != "auth.session_ended" {
		t.Errorf("disabled user's token: %s", code)
	}
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "bob", "password": "bob-password-1"}), http.StatusForbidden)); code != "user.disabled" {
		t.Errorf("disabled login: %s", code)
	}
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+bobID, admin, map[string]any{"disabled": false}), http.StatusOK)
	bob, _ = c.login("bob", "bob-password-1")

	// The last admin can be neither demoted, disabled nor deleted.
	adminID := userID(t, c, admin, "admin")
	for _, tc := range []struct {
		method string
		body   any
	}{
		{"PATCH", map[string]any{"roles": []string{"user"}}},
		{"PATCH", map[string]any{"disabled": true}},
		{"DELETE", nil},
	} {
		r := c.do(tc.method, "/api/v1/admin/users/"+adminID, admin, tc.body)
		if r.StatusCode != http.StatusConflict || errorCode(t, r) != "user.last_admin" {
			t.Errorf("%s last admin %v: %d %s, want 409 user.last_admin", tc.method, tc.body, r.StatusCode, r.body)
		}
	}

	// Delete: bob's session ends, his name is free again.
	c.expect(c.do("DELETE", "/api/v1/admin/users/"+bobID, admin, nil), http.StatusNoContent)
	c.expect(c.do("GET", "/api/v1/me", bob, nil), http.StatusUnauthorized)
	c.expect(c.do("GET", "/api/v1/admin/users/"+bobID, admin, nil), http.StatusNotFound)
	c.register("bob", "bob-password-2")
}

// TestSessions: a user sees and ends their own sessions, never another's; an
// admin ends anyone's.
func TestSessions(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("carol", "carol-password")
	c.register("dave", "dave-password-1")
	first, _ := c.login("carol", "carol-password")
	second, _ := c.login("carol", "carol-password")
	dave, _ := c.login("dave", "dave-password-1")

	var body struct {
		Sessions []struct {
			ID         string `json:"id"`
			ClientAddr string `json:"client_addr"`
			UserAgent  string `json:"user_agent"`
			Current    bool   `json:"current"`
			CreatedAt  int64  `json:"created_at"`
			LastSeen   int64  `json:"last_seen"`
		} `json:"sessions"`
	}
	r := c.expect(c.do("GET", "/api/v1/me/sessions", second, nil), http.StatusOK)
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Sessions) != 2 {
		t.Fatalf("carol has %d sessions, want 2: %s", len(body.Sessions), r.body)
	}
	var firstID, secondID string
	for _, s := range body.Sessions {
		if s.ClientAddr != "127.0.0.1" || s.UserAgent == "" || s.CreatedAt == 0 || s.LastSeen == 0 {
			t.Errorf("session %+v lacks its client, user agent or times", s)
		}
		if s.Current {
			secondID = s.ID
		} else {
			firstID = s.ID
		}
	}
	if firstID == "" || secondID == "" {
		t.Fatalf("sessions %s: want one current, one not", r.body)
	}
	// Dave cannot end Carol's session, and learns nothing of it.
	if code := errorCode(t, c.expect(c.do("DELETE", "/api/v1/me/sessions/"+firstID, dave, nil), http.StatusNotFound)); code != "user.session_not_found" {
		t.Errorf("dave ending carol's session: %s", code)
	}
	c.expect(c.do("GET", "/api/v1/me", first, nil), http.StatusOK)
	// Carol ends her first session from the second.
	c.expect(c.do("DELETE", "/api/v1/me/sessions/"+firstID, second, nil), http.StatusNoContent)
	c.expect(c.do("GET", "/api/v1/me", first, nil), http.StatusUnauthorized)
	c.expect(c.do("GET", "/api/v1/me", second, nil), http.StatusOK)
	// An admin ends the second.
	c.expect(c.do("DELETE", "/api/v1/admin/sessions/"+secondID, admin, nil), http.StatusNoContent)
	c.expect(c.do("GET", "/api/v1/me", second, nil), http.StatusUnauthorized)
	c.expect(c.do("DELETE", "/api/v1/admin/sessions/"+secondID, admin, nil), http.StatusNotFound)
}

// TestAdminConfig: an admin reads the live config, a valid edit is written to
// the file and applies at once, an invalid one is refused with the reason and
// changes nothing.
func TestAdminConfig(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	m := c.expect(c.do("GET", "/api/v1/admin/config", admin, nil), http.StatusOK).json(t)
	if m["writable"] != true || !strings.Contains(m["yaml"].(string), "expireTime: 900") {
		t.Fatalf("config: %v", m)
	}
	// /api/v1/register is whitelisted; /api/v1/me is not.
	c.expect(c.do("GET", "/api/v1/me", "", nil), http.StatusUnauthorized)

	for _, bad := range []struct {
		body any
		want string
	}{
		{map[string]any{"auth": map[string]any{"expireTime": 2}}, "auth.expireTime"},
		{map[string]any{"auth": map[string]any{"expiretime": 600}}, "expiretime"},
		{map[string]any{"login": map[string]any{"maxFailures": "many"}}, "maxFailures"},
		{map[string]any{"auth": map[string]any{"whiteList": []string{"no-slash"}}}, "no-slash"},
	} {
		r := c.do("PUT", "/api/v1/admin/config", admin, bad.body)
		if r.StatusCode != http.StatusBadRequest || errorCode(t, r) != "system.bad_config" || !strings.Contains(string(r.body), bad.want) {
			t.Errorf("PUT %v: %d %s, want 400 system.bad_config naming %s", bad.body, r.StatusCode, r.body, bad.want)
		}
	}
	if _, err := os.Stat(p.ConfigFile); err == nil {
		t.Fatalf("a refused edit wrote %s", p.ConfigFile)
	}

	newCfg := map[string]any{
		"auth":  map[string]any{"expireTime": 600, "refreshTime": 120, "whiteList": []string{"/login", "/register", "/healthz", "/readyz", "/static/*", "/api/v1/login", "/api/v1/register", "/api/v1/me"}},
		"login": map[string]any{"maxFailures": 7},
	}
	m = c.expect(c.do("PUT", "/api/v1/admin/config", admin, newCfg), http.StatusOK).json(t)
	if !strings.Contains(m["yaml"].(string), "expireTime: 600") {
		t.Fatalf("PUT answered %v", m)
	}
	doc, err := os.ReadFile(p.ConfigFile)
	if err != nil || !strings.Contains(string(doc), "maxFailures: 7") || !strings.Contains(string(doc), "/api/v1/me") {
		t.Fatalf("config file after the edit: %q, %v", doc, err)
	}
	// Applied at once: /api/v1/me now passes without a token (and, having
	// no caller, says so), new tokens live 600 s.
	if r := c.do("GET", "/api/v1/me", "", nil); r.StatusCode != http.StatusUnauthorized || errorCode(t, r) != "auth.unauthenticated" {
		t.Errorf("whitelisted /api/v1/me: %d %s", r.StatusCode, r.body)
	}
	if _, exp := c.login("admin", testenv.AdminPassword); !near(lifetime(exp), 600e9) {
		t.Errorf("token lives %v after the edit, want 600s", lifetime(exp))
	}
	// A yaml body works too.
	r := c.do("PUT", "/api/v1/admin/config", admin, "auth:\n  expireTime: 900\n", "Content-Type", "application/yaml")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("PUT yaml: %d %s", r.StatusCode, r.body)
	}
	// The file is watched from now on: an edit by hand applies too.
	if err := os.WriteFile(p.ConfigFile, []byte("auth:\n  expireTime: 300\n  refreshTime: 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10e9, "the hand edit to apply", func() bool {
		_, exp := c.login("admin", testenv.AdminPassword)
		return near(lifetime(exp), 300e9)
	})
}

// TestOverview: the counts match what happened.
func TestOverview(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("erin", "erin-password")
	c.register("frank", "frank-password")
	c.login("erin", "erin-password")
	c.login("erin", "erin-password")
	c.login("frank", "frank-password")
	frankID := userID(t, c, admin, "frank")
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+frankID, admin, map[string]any{"disabled": true}), http.StatusOK)
	m := c.expect(c.do("GET", "/api/v1/admin/overview", admin, nil), http.StatusOK).json(t)
	want := map[string]float64{"users": 3, "disabled_users": 1, "active_sessions": 3, "services_up": 3, "nodes": 3}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("overview %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	if hours, _ := m["hours"].([]any); len(hours) != 24 {
		t.Errorf("overview has %d hours, want 24", len(hours))
	}
}

// auditEntry is an entry as GET /api/v1/admin/audit returns it.
type auditEntry struct {
	Kind        string `json:"kind"`
	ActorName   string `json:"actor_name"`
	SubjectName string `json:"subject_name"`
	ClientAddr  string `json:"client_addr"`
	Detail      string `json:"detail"`
	Time        int64  `json:"time"`
}

func listAudit(t *testing.T, c *client, tok, query string) (entries []auditEntry, total int) {
	t.Helper()
	entries, total, _ = listAuditPage(t, c, tok, query)
	return entries, total
}

// listAuditPage is listAudit with the cursor of the next page.
func listAuditPage(t *testing.T, c *client, tok, query string) (entries []auditEntry, total int, next string) {
	t.Helper()
	var body struct {
		Entries []auditEntry `json:"entries"`
		Total   int          `json:"total"`
		Next    string       `json:"next"`
	}
	if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/admin/audit?"+query, tok, nil), http.StatusOK).body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Entries, body.Total, body.Next
}

// TestAdminAudit: each admin action is in the audit log with who did what to
// whom from where, newest first, filtered by user and kind, paged; the
// overview's chart counts the logins.
func TestAdminAudit(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("gina", "gina-password")
	c.login("gina", "gina-password")
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "gina", "password": "wrong-password"}), http.StatusUnauthorized)
	ginaID := userID(t, c, admin, "gina")
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+ginaID, admin, map[string]any{"roles": []string{"admin", "user"}}), http.StatusOK)
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+ginaID, admin, map[string]any{"disabled": true}), http.StatusOK)
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+ginaID, admin, map[string]any{"disabled": false}), http.StatusOK)
	gina, _ := c.login("gina", "gina-password")
	var sessions struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/me/sessions", gina, nil), http.StatusOK).body, &sessions); err != nil || len(sessions.Sessions) != 1 {
		t.Fatalf("gina's sessions: %+v, %v", sessions, err)
	}
	c.expect(c.do("DELETE", "/api/v1/admin/sessions/"+sessions.Sessions[0].ID, admin, nil), http.StatusNoContent)
	c.expect(c.do("PUT", "/api/v1/admin/config", admin, map[string]any{"login": map[string]any{"maxFailures": 8}}), http.StatusOK)
	c.expect(c.do("DELETE", "/api/v1/admin/users/"+ginaID, admin, nil), http.StatusNoContent)

	want := []struct{ kind, actor, subject, detail string }{
		{"delete", "admin", "gina", ""},
		{"config_change", "admin", "", "login.maxFailures: 5 -> 8"},
		{"session_ended", "admin", "gina", "by an admin"},
		{"login", "gina", "gina", ""},
		{"enable", "admin", "gina", ""},
		{"disable", "admin", "gina", ""},
		{"role_change", "admin", "gina", "user -> admin,user"},
	}
	var got []auditEntry
	poll.Wait(t, 10e9, "the audit entries", func() bool {
		got, _ = listAudit(t, c, admin, "limit=7")
		return len(got) == 7 && got[0].Kind == "delete"
	})
	for i, w := range want {
		e := got[i]
		if e.Kind != w.kind || e.ActorName != w.actor || e.SubjectName != w.subject || !strings.Contains(e.Detail, w.detail) || e.ClientAddr != "127.0.0.1" {
			t.Errorf("entry %d = %+v, want %+v from 127.0.0.1", i, e, w)
		}
	}
	// Times are unix seconds, as everywhere in the API.
	if now := time.Now().Unix(); got[0].Time < now-600 || got[0].Time > now+60 {
		t.Errorf("audit time %d: want unix seconds near %d", got[0].Time, now)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time > got[i-1].Time {
			t.Errorf("entries not newest first: %d after %d", got[i].Time, got[i-1].Time)
		}
	}
	if entries, total := listAudit(t, c, admin, "kind=login_failed"); total != 1 || entries[0].SubjectName != "gina" {
		t.Errorf("login_failed entries: %d %+v", total, entries)
	}
	// register, login, login_failed, role_change, disable, enable, login,
	// session_ended, delete.
	poll.Wait(t, 10e9, "gina's 9 entries", func() bool {
		_, total := listAudit(t, c, admin, "user=gina")
		return total == 9
	})
	_, _, next := listAuditPage(t, c, admin, "limit=2")
	page2, total, _ := listAuditPage(t, c, admin, "limit=2&cursor="+url.QueryEscape(next))
	if len(page2) != 2 || page2[0].Kind != got[2].Kind || page2[1].Kind != got[3].Kind || total != 11 {
		t.Errorf("page 2: %+v of %d", page2, total)
	}
	if r := c.do("GET", "/api/v1/admin/audit?cursor=bogus", admin, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("bad cursor: %d %s", r.StatusCode, r.body)
	}
	if r := c.do("GET", "/api/v1/admin/audit?kind=bogus", admin, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown kind: %d %s", r.StatusCode, r.body)
	}

	m := c.expect(c.do("GET", "/api/v1/admin/overview", admin, nil), http.StatusOK).json(t)
	var logins, failed float64
	for _, h := range m["hours"].([]any) {
		hc := h.(map[string]any)
		l, _ := hc["logins"].(float64)
		f, _ := hc["failed_logins"].(float64)
		logins, failed = logins+l, failed+f
	}
	if logins != 3 || failed != 1 {
		t.Errorf("overview chart: %v logins, %v failed; want 3 and 1", logins, failed)
	}
}
