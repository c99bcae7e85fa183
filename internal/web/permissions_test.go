package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"

	userpb "github.com/portal-go/portal/proto/user"
)

// TestAPIKeyNeverCached: a request with an API key asks the user service
// every time (so a revoked key is refused at once on every gateway), and a
// key in a cookie is not taken.
func TestAPIKeyNeverCached(t *testing.T) {
	users := newFakeUsers()
	users.info = &userpb.InfoResponse{Id: "u-1", Username: "alice", Roles: []string{"user"}, KeyId: "k1", Permissions: []string{"audit.read"}}
	g := newGateway(t, settings(), users)
	const key = "ptk_0123456789abcdef_secret"
	for i := range 3 {
		if w := serve(g, get("/api/v1/me", bearer(key))); w.Code != http.StatusOK {
			t.Fatalf("request %d with a key: %d", i, w.Code)
		}
	}
	if n := users.count("Info"); n != 3 {
		t.Errorf("Info asked %d times for 3 requests with a key, want 3 (never cached)", n)
	}
	if got := users.tokensOf("Info"); got[0] != key {
		t.Errorf("Info got token %q, want the key", got[0])
	}
	users.mu.Lock()
	users.infoErr = merrors.Unauthorized("auth.session_ended", "revoked")
	users.mu.Unlock()
	w := serve(g, get("/api/v1/me", bearer(key)))
	if w.Code != http.StatusUnauthorized || apiErr(t, w).Code != "auth.session_ended" {
		t.Errorf("a revoked key: %d %s, want 401 auth.session_ended", w.Code, w.Body)
	}
	users.mu.Lock()
	users.infoErr = nil
	users.mu.Unlock()
	before := users.count("Info")
	if w := serve(g, get("/api/v1/me", withCookie(sessionCookie, key))); w.Code != http.StatusUnauthorized {
		t.Errorf("a key in the session cookie: %d, want 401", w.Code)
	}
	if users.count("Info") != before {
		t.Errorf("a key in a cookie reached the user service")
	}
}

// TestPagesFollowPermissions: the navigation lists the admin pages the
// caller may open, /admin sends them to the first, and a page they may not
// open is refused; a role.updated event makes the cached permissions stale.
func TestPagesFollowPermissions(t *testing.T) {
	users := newFakeUsers()
	users.info = &userpb.InfoResponse{Id: "u-1", Username: "alice", Roles: []string{"auditor"}, SessionId: "s-1", Permissions: []string{"audit.read"}}
	g := newGateway(t, settings(), users)
	tok := validToken(t, "s-1")

	w := serve(g, get("/account", bearer(tok)))
	if w.Code != http.StatusOK {
		t.Fatalf("/account: %d", w.Code)
	}
	for _, want := range []string{`id="nav-admin"`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if w := serve(g, get("/admin", bearer(tok))); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/audit" {
		t.Errorf("/admin: %d %q, want 303 /admin/audit", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/admin/users", "/admin/config", "/admin/services", "/admin/roles"} {
		if w := serve(g, get(path, bearer(tok))); w.Code != http.StatusForbidden {
			t.Errorf("GET %s with audit.read alone: %d, want 403", path, w.Code)
		}
	}
	if w := serve(g, withMethod("DELETE", get("/api/v1/admin/sessions/s-9", bearer(tok)))); w.Code != http.StatusForbidden {
		t.Errorf("DELETE an admin session without sessions.revoke: %d, want 403", w.Code)
	}

	// No permission at all: no admin link, and /admin is refused.
	users.mu.Lock()
	users.info = &userpb.InfoResponse{Id: "u-1", Username: "alice", Roles: []string{"user"}, SessionId: "s-1"}
	users.mu.Unlock()
	if w := serve(g, get("/admin", bearer(tok))); w.Code != http.StatusSeeOther {
		t.Fatalf("cached verdict: /admin %d, want the cached auditor's 303", w.Code)
	}
	if err := g.OnRoleChanged(context.Background(), &userpb.RoleChanged{Name: "auditor"}); err != nil {
		t.Fatal(err)
	}
	if w := serve(g, get("/admin", bearer(tok))); w.Code != http.StatusForbidden {
		t.Errorf("after role.updated: /admin %d, want 403", w.Code)
	}
	if w := serve(g, get("/account", bearer(tok))); strings.Contains(w.Body.String(), `id="nav-admin"`) {
		t.Errorf("a caller without permissions is offered the admin link")
	}
}

// withMethod changes a request's method.
func withMethod(m string, r *http.Request) *http.Request {
	r.Method = m
	return r
}
