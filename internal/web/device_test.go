package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	userpb "github.com/portal-go/portal/proto/user"
)

// TestDeviceCookie: a login form's success keeps the device token in an
// HttpOnly, SameSite=Strict cookie, Secure over https; the cookie, or an API
// client's device_token, goes to User.Login with later attempts, and the
// API login answers the token.
func TestDeviceCookie(t *testing.T) {
	const csrf = "csrf-value-0123456789-0123456789-012345678"
	exp := time.Now().Add(90 * 24 * time.Hour).Unix()
	users := newFakeUsers()
	users.login = &userpb.LoginResponse{Token: "fresh-token", ExpiresAt: time.Now().Add(time.Minute).Unix(), SessionId: "s-9", DeviceToken: "dev-1", DeviceExpiresAt: exp}
	g := newGateway(t, settings(), users)
	form := url.Values{"username": {"alice"}, "password": {"pw"}, "next": {"/"}}

	for _, https := range []bool{false, true} {
		r := csrfPost(t, "/login", form, csrf, csrf)
		if https {
			r.TLS = &tls.ConnectionState{}
		}
		w := serve(g, r)
		c := cookieNamed(w, deviceCookie)
		if w.Code != http.StatusSeeOther || c == nil || c.Value != "dev-1" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
			c.Secure != https || c.Path != "/" || c.MaxAge < 89*24*3600 {
			t.Fatalf("https=%v: status %d, device cookie %+v", https, w.Code, c)
		}
		if users.lastLogin.DeviceToken != "" {
			t.Errorf("a login without the cookie sent device token %q", users.lastLogin.DeviceToken)
		}
	}

	// With the cookie, the form sends it.
	r := csrfPost(t, "/login", form, csrf, csrf)
	r.AddCookie(&http.Cookie{Name: deviceCookie, Value: "dev-1"})
	serve(g, r)
	if users.lastLogin.DeviceToken != "dev-1" {
		t.Errorf("the form sent device token %q, want dev-1", users.lastLogin.DeviceToken)
	}

	// The API: the body's field, else the cookie; the answer carries it.
	for _, tc := range []struct{ body, cookie, want string }{
		{`{"username":"alice","password":"pw","device_token":"dev-api"}`, "", "dev-api"},
		{`{"username":"alice","password":"pw"}`, "dev-1", "dev-1"},
		{`{"username":"alice","password":"pw","device_token":"dev-api"}`, "dev-1", "dev-api"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/login", strings.NewReader(tc.body))
		r.Header.Set("Content-Type", "application/json")
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: deviceCookie, Value: tc.cookie})
		}
		w := serve(g, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"device_token":"dev-1"`) {
			t.Fatalf("API login: %d %s", w.Code, w.Body.String())
		}
		if users.lastLogin.DeviceToken != tc.want {
			t.Errorf("API login sent device token %q, want %q", users.lastLogin.DeviceToken, tc.want)
		}
	}
}
