package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

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
			g.fail(c, http.StatusRequestEntityTooLarge, "too_large", "the form is too large")
			return
		}
		g.fail(c, http.StatusBadRequest, "bad_request", "malformed form")
		return
	}
	ck, err := c.Cookie(csrfCookie)
	sent := c.Request.PostForm.Get(csrfField)
	if err != nil || ck == "" || subtle.ConstantTimeCompare([]byte(ck), []byte(sent)) != 1 {
		g.fail(c, http.StatusForbidden, "csrf", "the form has expired or did not come from this site; reload the page and try again")
		return
	}
	c.Next()
}

// titles are the pages' titles.
var titles = map[string]string{
	"login.html": "Sign in", "register.html": "Register", "home.html": "Home",
	"account.html": "Account", "error.html": "Error",
	"admin_overview.html": "Admin", "admin_users.html": "Users", "admin_user.html": "User",
	"admin_config.html": "Config", "admin_services.html": "Services", "admin_audit.html": "Audit log", "admin_logs.html": "Logs",
	"admin_roles.html": "Roles", "admin_lockouts.html": "Lockouts",
	"continue.html": "Signed in", "consent.html": "Allow an application", "admin_oidc.html": "Applications",
}

// page renders a template with the data every page needs.
func (g *Gateway) page(c *gin.Context, status int, name string, data gin.H) {
	if data == nil {
		data = gin.H{}
	}
	data["Title"] = titles[name]
	data["Wide"] = name == "account.html" || strings.HasPrefix(name, "admin_")
	data["CSRF"] = csrfToken(c)
	if cl := callerOf(c); cl != nil {
		data["Me"] = cl.Info
		can := map[string]bool{}
		for _, p := range cl.Info.Permissions {
			can[p] = true
		}
		// Can answers {{if index .Can "users.write"}}; AdminPages are the
		// admin pages the caller may open, for the navigation.
		data["Can"] = can
		var pages []any
		for _, p := range adminPages {
			if can[string(p.Needs)] {
				pages = append(pages, p)
			}
		}
		data["AdminPages"] = pages
		if len(pages) > 0 {
			data["Admin"] = true
		}
	}
	c.HTML(status, name, data)
}

func (g *Gateway) loginPage(c *gin.Context) {
	data := gin.H{"Next": safeNext(c.Query("next"))}
	if c.Query("registered") != "" {
		data["Notice"] = "Account created. Sign in to continue."
	}
	g.page(c, http.StatusOK, "login.html", data)
}

func (g *Gateway) loginForm(c *gin.Context) {
	name, next := c.PostForm("username"), safeNext(c.PostForm("next"))
	newPW := c.PostForm("new_password")
	if newPW != c.PostForm("confirm") {
		g.page(c, http.StatusBadRequest, "login.html", gin.H{"Next": next, "Username": name, "ChangePassword": true, "Error": "The two new passwords differ."})
		return
	}
	rsp, err := g.Users.Login(rpcContext(c), &userpb.LoginRequest{
		Username: name, Password: c.PostForm("password"), NewPassword: newPW, Otp: c.PostForm("otp"),
		ClientAddr: c.ClientIP(), UserAgent: c.Request.UserAgent(), DeviceToken: deviceToken(c, ""),
	}, slow)
	if err != nil {
		status, code, msg := rpcStatus(err)
		if code == "user.mfa_required" || code == "user.bad_code" {
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
		switch status {
		case http.StatusUnauthorized:
			msg = "Wrong username or password."
		case http.StatusTooManyRequests:
			msg = "Too many sign-in attempts. Try again later."
			if l, ok := userpb.LockoutOf(err); ok {
				msg = "Too many sign-in attempts. Try again in " + strconv.Itoa(int(l.RetryAfterSeconds)) + " seconds."
			}
		}
		setRetryAfter(c, err)
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

func (g *Gateway) registerForm(c *gin.Context) {
	name, pw, email := c.PostForm("username"), c.PostForm("password"), c.PostForm("email")
	if pw != c.PostForm("confirm") {
		g.page(c, http.StatusBadRequest, "register.html", gin.H{"Username": name, "Email": email, "Error": "The two passwords differ."})
		return
	}
	if _, err := g.Users.Register(rpcContext(c), &userpb.RegisterRequest{Username: name, Password: pw, Email: email}, slow); err != nil {
		status, _, msg := rpcStatus(err)
		g.page(c, status, "register.html", gin.H{"Username": name, "Email": email, "Error": msg})
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
	g.page(c, http.StatusOK, "home.html", gin.H{
		"TokenExpires":   time.Unix(cl.ExpiresAt, 0).UTC().Format(time.RFC1123),
		"SessionExpires": time.Unix(cl.Info.SessionExpiresAt, 0).UTC().Format(time.RFC1123),
	})
}

func (g *Gateway) passwordForm(c *gin.Context) {
	if c.PostForm("new_password") != c.PostForm("confirm") {
		g.accountView(c, http.StatusBadRequest, gin.H{"Error": "The two new passwords differ."})
		return
	}
	rsp, err := g.Users.ChangePassword(rpcContext(c), &userpb.ChangePasswordRequest{
		OldPassword: c.PostForm("old_password"), NewPassword: c.PostForm("new_password"), DeviceToken: deviceToken(c, ""),
	}, slow)
	if err != nil {
		status, _, msg := rpcStatus(err)
		setRetryAfter(c, err)
		g.accountView(c, status, gin.H{"Error": msg})
		return
	}
	g.accountView(c, http.StatusOK, gin.H{"Notice": "Password changed.", "Ended": rsp.SessionsEnded})
}
