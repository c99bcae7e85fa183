package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// csrfCookie holds a random value per browser; every form repeats it in the
// csrf_token field (double submit). A cross-site page can neither read the
// cookie nor, with SameSite=Lax, send it on a POST.
const (
	csrfCookie = "portal_csrf"
	csrfField  = "csrf_token"
)

// csrfToken returns the browser's CSRF token, setting the cookie when absent.
func csrfToken(c *gin.Context) string {
	if v, err := c.Cookie(csrfCookie); err == nil && len(v) == 43 {
		return v
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(c.Writer, &http.Cookie{
		Name: csrfCookie, Value: v, Path: "/", MaxAge: int((24 * time.Hour).Seconds()),
		HttpOnly: true, Secure: isHTTPS(c), SameSite: http.SameSiteLaxMode,
	})
	return v
}

// csrf refuses a form whose token does not match the browser's cookie. It
// also parses the form, refusing oversized bodies with 413.
func (g *Gateway) csrf(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			g.fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, "the form is too large")
			return
		}
		g.fail(c, http.StatusBadRequest, codeBadForm, "malformed form")
		return
	}
	ck, err := c.Cookie(csrfCookie)
	sent := c.Request.PostForm.Get(csrfField)
	if err != nil || ck == "" || subtle.ConstantTimeCompare([]byte(ck), []byte(sent)) != 1 {
		g.fail(c, http.StatusForbidden, codeCSRF, "the form has expired or did not come from this site; reload the page and try again")
		return
	}
	c.Next()
}

// navOf names the navigation entry each page belongs to, for aria-current;
// the page's title is the message "title.<page>".
var navOf = map[string]string{
	"login.html": "login", "register.html": "register", "home.html": "home", "account.html": "account",
	"admin_overview.html": "overview", "admin_users.html": "users", "admin_user.html": "users",
	"admin_config.html": "config", "admin_services.html": "services", "admin_logs.html": "services",
	"admin_audit.html": "audit", "admin_lockouts.html": "lockouts", "admin_roles.html": "roles",
	"admin_oidc.html": "oidc",
}

// page renders a template, in the request's language, with the data every
// page needs.
func (g *Gateway) page(c *gin.Context, status int, name string, data gin.H) {
	if data == nil {
		data = gin.H{}
	}
	base := strings.TrimSuffix(name, ".html")
	data["Title"] = tr(c, "title."+base)
	data["Nav"] = navOf[name]
	data["Wide"] = name == "account.html" || name == "home.html" || name == "api_docs.html" || strings.HasPrefix(name, "admin_")
	data["CSRF"] = csrfToken(c)
	data["Zone"] = zoneOf(c)
	// Here is where the language switch comes back to: this page when it
	// was a GET, else home (a POST's URL is not a page).
	data["Here"] = "/"
	if c.Request.Method == http.MethodGet {
		data["Here"] = c.Request.URL.RequestURI()
	}
	if cl := callerOf(c); cl != nil {
		data["Me"] = cl.Info
		can := map[string]bool{}
		for _, p := range cl.Info.Permissions {
			can[p] = true
		}
		// Can answers {{if index .Can "users.write"}}; AdminPages are the
		// admin pages the caller may open, for the navigation.
		data["Can"] = can
		var pages []adminPage
		for _, p := range adminPages {
			if can[string(p.Needs)] {
				pages = append(pages, p)
			}
		}
		data["AdminPages"] = pages
		data["Admin"] = len(pages) > 0
		data["AdminPage"] = len(pages) > 0 && strings.HasPrefix(name, "admin_")
	}
	if n, ok := c.GetQuery("done"); ok && data["Notice"] == nil && slices.Contains(notices, n) {
		data["Notice"] = tr(c, "notice."+n)
	}
	g.render(c, status, name, data)
}

func (g *Gateway) loginPage(c *gin.Context) {
	data := gin.H{"Next": safeNext(c.Query("next"))}
	if c.Query("registered") != "" {
		data["Notice"] = tr(c, "notice.registered")
	}
	g.page(c, http.StatusOK, "login.html", data)
}

func (g *Gateway) loginForm(c *gin.Context) {
	name, next := c.PostForm("username"), safeNext(c.PostForm("next"))
	newPW := c.PostForm("new_password")
	if name == "" || c.PostForm("password") == "" {
		g.page(c, http.StatusBadRequest, "login.html", gin.H{"Next": next, "Username": name, "Error": tr(c, "login.missing")})
		return
	}
	if newPW != c.PostForm("confirm") {
		g.page(c, http.StatusBadRequest, "login.html", gin.H{"Next": next, "Username": name, "ChangePassword": true, "Error": tr(c, "form.passwords_differ")})
		return
	}
	rsp, err := g.Users.Login(rpcContext(c), &userpb.LoginRequest{
		Username: name, Password: c.PostForm("password"), NewPassword: newPW, Otp: c.PostForm("otp"),
		PasskeyCeremony: c.PostForm("passkey_ceremony"), Passkey: []byte(c.PostForm("passkey")),
		ClientAddr: c.ClientIP(), UserAgent: c.Request.UserAgent(), DeviceToken: deviceToken(c, ""),
	}, slow)
	if err != nil {
		status, code, msg := rpcMessage(c, err)
		if code == "user.mfa_required" || code == "user.bad_code" || code == "user.passkey_invalid" || code == "user.passkey_expired" {
			// The second step: the code, and the password typed again (the
			// page never holds it).
			g.page(c, http.StatusUnauthorized, "login.html", gin.H{"Next": next, "Username": name, "AskCode": true, "ChangePassword": newPW != "", "Error": msg})
			return
		}
		if code == "user.password_change_required" || (newPW != "" && status == http.StatusBadRequest) {
			// The password was right: ask for it again with a new one.
			g.page(c, status, "login.html", gin.H{"Next": next, "Username": name, "ChangePassword": true, "Error": msg})
			return
		}
		g.page(c, status, "login.html", gin.H{"Next": next, "Username": name, "Error": msg})
		return
	}
	setSessionCookie(c, rsp.Token, rsp.ExpiresAt)
	setDeviceCookie(c, rsp.DeviceToken, rsp.DeviceExpiresAt)
	g.afterForm(c, next)
}

func (g *Gateway) registerPage(c *gin.Context) {
	g.page(c, http.StatusOK, "register.html", nil)
}

// fieldOf names the form field an error code is about, so that the page
// shows the message beside it.
var fieldOf = map[string]string{
	"user.exists": "username", "user.bad_username": "username", "user.bad_password": "password",
	"user.wrong_password": "old_password",
}

func (g *Gateway) registerForm(c *gin.Context) {
	name, pw, email := c.PostForm("username"), c.PostForm("password"), c.PostForm("email")
	if pw != c.PostForm("confirm") {
		g.page(c, http.StatusBadRequest, "register.html", gin.H{"Username": name, "Email": email, "Errors": map[string]string{"confirm": tr(c, "form.passwords_differ")}})
		return
	}
	if _, err := g.Users.Register(rpcContext(c), &userpb.RegisterRequest{Username: name, Password: pw, Email: email, Lang: langOf(c)}, slow); err != nil {
		status, code, msg := rpcMessage(c, err)
		data := gin.H{"Username": name, "Email": email}
		if f := fieldOf[code]; f != "" {
			data["Errors"] = map[string]string{f: msg}
		} else {
			data["Error"] = msg
		}
		g.page(c, status, "register.html", data)
		return
	}
	c.Redirect(http.StatusSeeOther, "/login?registered=1&next="+url.QueryEscape("/"))
}

func (g *Gateway) logoutForm(c *gin.Context) {
	if !g.logout(c) {
		return
	}
	clearSessionCookie(c)
	c.Redirect(http.StatusSeeOther, "/login")
}

func (g *Gateway) homePage(c *gin.Context) {
	cl := callerOf(c)
	data := gin.H{"SessionExpires": cl.Info.SessionExpiresAt}
	if rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{}); err == nil {
		recent := rsp.Sessions
		slices.SortFunc(recent, func(a, b *userpb.Session) int { return int(b.CreatedAt - a.CreatedAt) })
		data["Recent"] = recent[:min(len(recent), 5)]
	}
	if slices.Contains(cl.Info.Permissions, string(endpoint.OverviewRead)) {
		if o, err := g.System.Overview(rpcContext(c), &systempb.OverviewRequest{}); err == nil {
			data["Overview"], data["O"] = true, o
		}
	}
	g.page(c, http.StatusOK, "home.html", data)
}

// passwordForm changes the caller's password; it comes back to /account
// with a notice (post/redirect/get), or shows the form's errors beside
// their fields.
func (g *Gateway) passwordForm(c *gin.Context) {
	if c.PostForm("new_password") != c.PostForm("confirm") {
		g.accountView(c, http.StatusBadRequest, gin.H{"Errors": map[string]string{"confirm": tr(c, "form.passwords_differ")}})
		return
	}
	rsp, err := g.Users.ChangePassword(rpcContext(c), &userpb.ChangePasswordRequest{
		OldPassword: c.PostForm("old_password"), NewPassword: c.PostForm("new_password"), DeviceToken: deviceToken(c, ""),
	}, slow)
	if err != nil {
		status, code, msg := rpcMessage(c, err)
		data := gin.H{}
		if f := fieldOf[code]; f != "" {
			if f == "password" {
				f = "new_password"
			}
			data["Errors"] = map[string]string{f: msg}
		} else {
			data["Error"] = msg
		}
		g.accountView(c, status, data)
		return
	}
	u := url.URL{Path: "/account", RawQuery: url.Values{"done": {"password"}, "ended": {strconv.Itoa(int(rsp.SessionsEnded))}}.Encode()}
	c.Redirect(http.StatusSeeOther, u.String())
}

// zoneForm keeps the caller's chosen time zone in a cookie ("" forgets it,
// and the browser's own zone applies).
func (g *Gateway) zoneForm(c *gin.Context) {
	name := strings.TrimSpace(c.PostForm("zone"))
	if name != "" {
		if _, err := loadZone(name); err != nil {
			g.accountView(c, http.StatusBadRequest, gin.H{"Errors": map[string]string{"zone": tr(c, "form.bad_zone")}, "ZoneValue": name})
			return
		}
	}
	ck := &http.Cookie{Name: tzCookie, Value: name, Path: "/", MaxAge: 365 * 24 * 3600, Secure: c.Request.TLS != nil, SameSite: http.SameSiteLaxMode}
	if name == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(c.Writer, ck)
	back(c, "/account", "zone")
}
