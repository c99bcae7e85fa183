package portal_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// csrfFor reads the CSRF cookie a page sets for a caller.
func csrfFor(t *testing.T, c *client, tok string) string {
	t.Helper()
	r := c.do("GET", "/account", tok, nil)
	for _, ck := range r.Cookies() {
		if ck.Name == "portal_csrf" {
			return ck.Value
		}
	}
	t.Fatalf("no CSRF cookie from /account (status %d)", r.StatusCode)
	return ""
}

// postForm posts a form as tok's holder, with a valid CSRF token.
func postForm(c *client, tok, csrf, path string, form url.Values) response {
	form.Set("csrf_token", csrf)
	return c.do("POST", path, tok, form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", "portal_csrf="+csrf)
}

// setRole replaces a role's permissions through the admin API.
func setRole(c *client, admin, name string, perms ...string) {
	c.expect(c.do("PUT", "/api/v1/admin/roles/"+name, admin, map[string]any{"permissions": orNone(perms)}), http.StatusOK)
}

func orNone(p []string) []string {
	if p == nil {
		return []string{}
	}
	return p
}

// TestCustomRole: an admin makes a role auditor with audit.read and gives it
// to a user, who then reads the audit log and nothing else, in the API and
// the pages; forged forms for what the pages do not offer are refused by
// the services; taking audit.read from the role takes it from the user at
// once; every change is in the audit log.
func TestCustomRole(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)

	cat := c.expect(c.do("GET", "/api/v1/admin/permissions", admin, nil), http.StatusOK).json(t)
	found := false
	for _, e := range cat["permissions"].([]any) {
		m := e.(map[string]any)
		if m["name"] == "audit.read" {
			found = slices.Contains(m["endpoints"].([]any), any("System.ListAudit"))
		}
	}
	if !found {
		t.Fatalf("the catalogue lacks audit.read for System.ListAudit: %v", cat)
	}
	role := c.expect(c.do("POST", "/api/v1/admin/roles", admin, map[string]any{"name": "auditor", "permissions": []string{"audit.read"}}), http.StatusCreated).json(t)
	if role["name"] != "auditor" || len(role["permissions"].([]any)) != 1 {
		t.Fatalf("created %v", role)
	}
	c.expect(c.do("POST", "/api/v1/admin/roles", admin, map[string]any{"name": "bad", "permissions": []string{"root"}}), http.StatusBadRequest)
	c.expect(c.do("PUT", "/api/v1/admin/roles/admin", admin, map[string]any{"permissions": []string{}}), http.StatusConflict)
	c.expect(c.do("DELETE", "/api/v1/admin/roles/admin", admin, nil), http.StatusConflict)

	c.register("ana", "ana-password-1")
	anaID := userID(t, c, admin, "ana")
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+anaID, admin, map[string]any{"roles": []string{"user", "nope"}}), http.StatusBadRequest)
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+anaID, admin, map[string]any{"roles": []string{"user", "auditor"}}), http.StatusOK)
	ana, _ := c.login("ana", "ana-password-1")

	me := c.expect(c.do("GET", "/api/v1/me", ana, nil), http.StatusOK).json(t)
	if perms, _ := me["permissions"].([]any); len(perms) != 1 || perms[0] != "audit.read" {
		t.Errorf("/me permissions %v, want [audit.read]", me["permissions"])
	}
	c.expect(c.do("GET", "/api/v1/admin/audit", ana, nil), http.StatusOK)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/admin/users"}, {"PATCH", "/api/v1/admin/users/" + anaID}, {"PUT", "/api/v1/admin/config"},
		{"GET", "/api/v1/admin/config"}, {"GET", "/api/v1/admin/overview"}, {"POST", "/api/v1/admin/roles"},
	} {
		body := map[string]any{"disabled": true}
		if strings.Contains(r.path, "roles") {
			body = map[string]any{"name": "mine", "permissions": []string{"users.write"}}
		}
		if code := errorCode(t, c.expect(c.do(r.method, r.path, ana, body), http.StatusForbidden)); code != "auth.forbidden" {
			t.Errorf("%s %s as an auditor: %s, want auth.forbidden", r.method, r.path, code)
		}
	}

	// The pages: the admin navigation with the audit log alone.
	page := string(c.expect(c.do("GET", "/admin/audit", ana, nil), http.StatusOK).body)
	if !strings.Contains(page, `id="tab-audit"`) || !strings.Contains(page, `id="nav-admin"`) {
		t.Errorf("the audit page lacks the admin navigation")
	}
	for _, tab := range []string{"tab-overview", "tab-users", "tab-roles", "tab-config", "tab-services"} {
		if strings.Contains(page, `id="`+tab+`"`) {
			t.Errorf("an auditor is offered %s", tab)
		}
	}
	if r := c.expect(c.do("GET", "/admin", ana, nil), http.StatusSeeOther); r.Header.Get("Location") != "/admin/audit" {
		t.Errorf("/admin sends an auditor to %q, want /admin/audit", r.Header.Get("Location"))
	}
	for _, path := range []string{"/admin/users", "/admin/config", "/admin/services", "/admin/roles"} {
		c.expect(c.do("GET", path, ana, nil), http.StatusForbidden)
	}
	// Forged forms for what the pages do not offer: the services refuse.
	csrf := csrfFor(t, c, ana)
	for path, form := range map[string]url.Values{
		"/admin/config":                      {"yaml": {"login:\n  maxFailures: 1000\n"}},
		"/admin/config/rollback":             {"to": {"1"}},
		"/admin/users/" + anaID + "/roles":   {"role": {"admin"}},
		"/admin/users/" + anaID + "/disable": {},
		"/admin/roles/auditor":               {"permission": {"roles.write"}},
		"/admin/roles":                       {"name": {"mine"}, "permission": {"users.write"}},
		"/admin/services/user/restart":       {},
	} {
		form.Set("confirmed", "yes") // past the confirm page, to the service
		if r := postForm(c, ana, csrf, path, form); r.StatusCode != http.StatusForbidden {
			t.Errorf("forged POST %s as an auditor: %d, want 403: %.200s", path, r.StatusCode, r.body)
		}
	}
	if me := c.expect(c.do("GET", "/api/v1/me", ana, nil), http.StatusOK).json(t); len(me["roles"].([]any)) != 2 {
		t.Errorf("a forged form changed ana's roles: %v", me["roles"])
	}

	// The admin's pages offer everything.
	adminPage := string(c.expect(c.do("GET", "/admin/users/"+anaID, admin, nil), http.StatusOK).body)
	for _, want := range []string{`id="tab-roles"`, `id="role-auditor" checked`, `id="disable"`, `id="save-roles"`} {
		if !strings.Contains(adminPage, want) {
			t.Errorf("the admin's user page lacks %s", want)
		}
	}

	// The roles page: the admin makes a role with its form.
	rolesPage := string(c.expect(c.do("GET", "/admin/roles", admin, nil), http.StatusOK).body)
	if !strings.Contains(rolesPage, `id="role-auditor"`) || !strings.Contains(rolesPage, `<code>audit.read</code>`) || !strings.Contains(rolesPage, `id="new-role"`) {
		t.Errorf("the roles page lacks the auditor role, the catalogue or the form")
	}
	adminCSRF := csrfFor(t, c, admin)
	if r := postForm(c, admin, adminCSRF, "/admin/roles", url.Values{"name": {"helpdesk"}, "permission": {"users.read", "sessions.revoke"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("create a role with the form: %d %.300s", r.StatusCode, r.body)
	}
	if r := c.expect(c.do("GET", "/api/v1/admin/roles/helpdesk", admin, nil), http.StatusOK).json(t); len(r["permissions"].([]any)) != 2 {
		t.Errorf("helpdesk made by the form: %v", r)
	}
	if r := postForm(c, admin, adminCSRF, "/admin/roles/helpdesk", url.Values{"action": {"delete"}, "confirmed": {"yes"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete a role with the form: %d", r.StatusCode)
	}
	c.expect(c.do("GET", "/api/v1/admin/roles/helpdesk", admin, nil), http.StatusNotFound)

	// Taken from the role: refused at once.
	setRole(c, admin, "auditor")
	c.expect(c.do("GET", "/api/v1/admin/audit", ana, nil), http.StatusForbidden)
	c.expect(c.do("GET", "/admin/audit", ana, nil), http.StatusForbidden)
	setRole(c, admin, "auditor", "audit.read")
	c.expect(c.do("GET", "/api/v1/admin/audit", ana, nil), http.StatusOK)

	// Every change is in the audit log.
	for _, kind := range []string{"role_created", "role_updated", "role_change"} {
		poll.Wait(t, 10*time.Second, kind+" entries", func() bool {
			m := c.expect(c.do("GET", "/api/v1/admin/audit?kind="+kind, admin, nil), http.StatusOK).json(t)
			return m["total"].(float64) >= 1
		})
	}
}

// TestAPIKeyFlow: a user makes an API key with some of their permissions,
// uses it as a bearer token, lists it without its secret; it shrinks with
// its owner's role, and once revoked it is refused at once.
func TestAPIKeyFlow(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.expect(c.do("POST", "/api/v1/admin/roles", admin, map[string]any{"name": "auditor", "permissions": []string{"audit.read", "users.read"}}), http.StatusCreated)
	c.register("kim", "kim-password-1")
	kimID := userID(t, c, admin, "kim")
	c.expect(c.do("PATCH", "/api/v1/admin/users/"+kimID, admin, map[string]any{"roles": []string{"user", "auditor"}}), http.StatusOK)
	kim, _ := c.login("kim", "kim-password-1")

	exp := time.Now().Add(24 * time.Hour).Unix()
	c.expect(c.do("POST", "/api/v1/me/tokens", kim, map[string]any{"name": "ci", "permissions": []string{"config.write"}, "expires_at": exp}), http.StatusForbidden)
	made := c.expect(c.do("POST", "/api/v1/me/tokens", kim, map[string]any{"name": "ci", "permissions": []string{"audit.read"}, "expires_at": exp}), http.StatusCreated).json(t)
	key, _ := made["token"].(string)
	id, _ := made["id"].(string)
	if !strings.HasPrefix(key, "ptk_") || id == "" || made["expires_at"].(float64) != float64(exp) {
		t.Fatalf("made %v", made)
	}
	list := c.expect(c.do("GET", "/api/v1/me/tokens", kim, nil), http.StatusOK)
	if strings.Contains(string(list.body), key) || !strings.Contains(string(list.body), id) {
		t.Errorf("the list shows the secret, or not the key: %s", list.body)
	}

	c.expect(c.do("GET", "/api/v1/admin/audit", key, nil), http.StatusOK)
	c.expect(c.do("GET", "/api/v1/admin/users", key, nil), http.StatusForbidden) // kim may, the key may not
	c.expect(c.do("GET", "/api/v1/admin/users", kim, nil), http.StatusOK)
	c.expect(c.do("PUT", "/api/v1/admin/config", key, map[string]any{}), http.StatusForbidden)
	c.expect(c.do("POST", "/api/v1/me/tokens", key, map[string]any{"name": "x", "permissions": []string{}, "expires_at": exp}), http.StatusForbidden)
	if me := c.expect(c.do("GET", "/api/v1/me", key, nil), http.StatusOK).json(t); me["username"] != "kim" {
		t.Errorf("/me with the key: %v", me)
	}
	// An admin sees it.
	if l := c.expect(c.do("GET", "/api/v1/admin/users/"+kimID+"/tokens", admin, nil), http.StatusOK); !strings.Contains(string(l.body), id) {
		t.Errorf("the admin's list of kim's keys: %s", l.body)
	}

	// The owner loses audit.read: so does the key, at once.
	setRole(c, admin, "auditor", "users.read")
	c.expect(c.do("GET", "/api/v1/admin/audit", key, nil), http.StatusForbidden)
	setRole(c, admin, "auditor", "audit.read", "users.read")
	c.expect(c.do("GET", "/api/v1/admin/audit", key, nil), http.StatusOK)

	c.expect(c.do("DELETE", "/api/v1/me/tokens/"+id, kim, nil), http.StatusNoContent)
	c.expect(c.do("GET", "/api/v1/admin/audit", key, nil), http.StatusUnauthorized)
	c.expect(c.do("GET", "/api/v1/me", key, nil), http.StatusUnauthorized)

	// The account page offers keys: made with its form, shown once.
	page := string(c.expect(c.do("GET", "/account", kim, nil), http.StatusOK).body)
	if !strings.Contains(page, `id="key-form"`) || !strings.Contains(page, `value="audit.read"`) {
		t.Errorf("the account page lacks the key form with kim's permissions")
	}
	made2 := postForm(c, kim, csrfFor(t, c, kim), "/account/tokens", url.Values{"name": {"cron"}, "days": {"7"}, "permission": {"audit.read"}})
	shown := regexp.MustCompile(`id="new-key">(ptk_[^<]+)<`).FindSubmatch(made2.body)
	if made2.StatusCode != http.StatusCreated || shown == nil {
		t.Fatalf("the key form: %d, no key shown", made2.StatusCode)
	}
	c.expect(c.do("GET", "/api/v1/admin/audit", string(shown[1]), nil), http.StatusOK)
	if again := string(c.expect(c.do("GET", "/account", kim, nil), http.StatusOK).body); strings.Contains(again, string(shown[1])) || !strings.Contains(again, "cron") {
		t.Errorf("the account page shows the key again, or not its name")
	}
	for _, kind := range []string{"token_created", "token_revoked"} {
		poll.Wait(t, 10*time.Second, kind+" entries", func() bool {
			m := c.expect(c.do("GET", "/api/v1/admin/audit?kind="+kind, admin, nil), http.StatusOK).json(t)
			return m["total"].(float64) >= 1
		})
	}
}
