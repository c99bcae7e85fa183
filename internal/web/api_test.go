package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAPIConsistency: a wrong method is 405 with Allow; a login or
// registration without its fields is 400 request.missing_field naming them
// (never a 401); a 401 says how to authenticate.
func TestAPIConsistency(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)

	w := serve(g, httptest.NewRequest(http.MethodGet, "/api/v1/login", nil))
	if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Header().Get("Allow"), "POST") {
		t.Errorf("GET /api/v1/login: %d Allow %q, want 405 with POST allowed", w.Code, w.Header().Get("Allow"))
	}
	if e := apiErr(t, w); e.Code != "request.method_not_allowed" {
		t.Errorf("405 code %q", e.Code)
	}

	for _, path := range []string{"/api/v1/login", "/api/v1/register"} {
		w = serve(g, postJSON(path, `{}`))
		if e := apiErr(t, w); w.Code != http.StatusBadRequest || e.Code != "request.missing_field" || !strings.Contains(e.Message, "username, password") {
			t.Errorf("POST %s {}: %d %+v, want 400 request.missing_field naming both", path, w.Code, e)
		}
		w = serve(g, postJSON(path, `{"username":"alice"}`))
		if e := apiErr(t, w); w.Code != http.StatusBadRequest || !strings.Contains(e.Message, "password") || strings.Contains(e.Message, "username") {
			t.Errorf("POST %s without password: %d %+v", path, w.Code, e)
		}
	}
	if n := users.count("Login") + users.count("Register"); n != 0 {
		t.Errorf("the services were called %d times for bodies without fields", n)
	}

	w = serve(g, get("/api/v1/me"))
	if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET /api/v1/me without a token: %d WWW-Authenticate %q", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}
