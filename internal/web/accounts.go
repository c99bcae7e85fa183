package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"

	userpb "github.com/portal-go/portal/proto/user"
)

// The account recovery and profile routes: email verification, forgotten
// passwords, the profile, and the outbox's failures for admins. Each page
// is a plain form (CSRF-protected) that works without JavaScript.

func init() {
	// Accounts' notices (?done=name), each the message "notice.<name>";
	// their pages' titles are "title.<page>".
	notices = append(notices, "profile", "verification_sent", "created", "invited", "reset_link", "change_required", "factors_reset")
	for name, nav := range map[string]string{"admin_mail.html": "mail", "admin_password.html": "users"} {
		navOf[name] = nav
	}
}

// accountRoutes adds the gateway's own account routes to its engine e and
// its API groups: api (no session needed), me (a caller). The rest of the
// Accounts calls are routed from the user service's endpoint table; the
// admin forms are checked by the user service (users.write).
func (g *Gateway) accountRoutes(e *gin.Engine, api, me *gin.RouterGroup) {
	e.GET("/password/forgot", g.forgotPage)
	e.POST("/password/forgot", g.csrf, g.forgotForm)
	e.GET("/password/reset", g.resetPage)
	e.POST("/password/reset", g.csrf, g.resetForm)
	e.GET("/email/verify", g.verifyPage)
	e.POST("/email/verify", g.csrf, g.verifyForm)
	e.POST("/account/profile", g.requireCaller, g.csrf, g.profileForm)
	e.POST("/account/email/verification", g.requireCaller, g.csrf, g.resendForm)
	e.GET("/admin/mail", g.requireCaller, g.needs(endpoint.UsersRead), g.failedMailPage)
	e.POST("/admin/users", g.requireCaller, g.csrf, g.createUserForm)
	e.POST("/admin/users/:id/password/:mode", g.requireCaller, g.csrf, g.userPasswordForm)
	e.POST("/admin/users/:id/factors/reset", g.requireCaller, g.csrf, g.resetFactorsForm)
	e.POST("/account/totp", g.requireCaller, g.csrf, g.totpBeginForm)
	e.POST("/account/totp/confirm", g.requireCaller, g.csrf, g.totpConfirmForm)
	e.GET("/account/totp/qr.png", g.requireCaller, g.totpQR)

	api.POST("/password/forgot", g.apiForgot)
	api.POST("/password/reset", g.apiReset)
	api.POST("/email/verify", g.apiVerify)
	me.PATCH("/me", g.apiPatchMe)
	me.GET("/me/totp/qr.png", g.totpQR)
}

// totpQR serves the pending enrolment's QR code, made by the user service.
func (g *Gateway) totpQR(c *gin.Context) {
	rsp, err := g.Accounts.TOTPQRCode(rpcContext(c), &userpb.TOTPQRCodeRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "image/png", rsp.Png)
}

func (g *Gateway) totpBeginForm(c *gin.Context) {
	rsp, err := g.Accounts.BeginTOTP(rpcContext(c), &userpb.BeginTOTPRequest{})
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.accountView(c, status, gin.H{"Error": msg})
		return
	}
	c.Header("Cache-Control", "no-store")
	g.page(c, http.StatusOK, "totp.html", gin.H{"Secret": rsp.Secret})
}

func (g *Gateway) totpConfirmForm(c *gin.Context) {
	rsp, err := g.Accounts.ConfirmTOTP(rpcContext(c), &userpb.ConfirmTOTPRequest{Code: c.PostForm("code")})
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "totp.html", gin.H{"Secret": c.PostForm("secret"), "Error": msg})
		return
	}
	g.forgetCaller(c)
	c.Header("Cache-Control", "no-store")
	g.page(c, http.StatusOK, "totp.html", gin.H{"Codes": rsp.RecoveryCodes})
}

func (g *Gateway) resetFactorsForm(c *gin.Context) {
	id := c.Param("id")
	if _, err := g.Accounts.ResetFactors(rpcContext(c), &userpb.ResetFactorsRequest{UserId: id}); err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "error.html", gin.H{"Error": msg})
		return
	}
	back(c, "/admin/users/"+id, "factors_reset")
}

// createUserForm is the users page's form: roles user (and admin when
// ticked); without a password, an invitation.
func (g *Gateway) createUserForm(c *gin.Context) {
	roles := []string{"user"}
	if c.PostForm("admin") == "on" {
		roles = append(roles, "admin")
	}
	rsp, err := g.Accounts.CreateUser(rpcContext(c), &userpb.CreateUserRequest{
		Username: c.PostForm("username"), Email: c.PostForm("email"), Roles: roles, Password: c.PostForm("password"),
	}, slow)
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "error.html", gin.H{"Error": msg})
		return
	}
	notice := "created"
	if rsp.Invited {
		notice = "invited"
	}
	back(c, "/admin/users/"+rsp.Id, notice)
}

// userPasswordForm is the user page's password actions: mode link (mail a
// reset link), temporary (set one, shown once on the page answered), or
// require (a change at the next sign-in).
func (g *Gateway) userPasswordForm(c *gin.Context) {
	id, ctx := c.Param("id"), rpcContext(c)
	var err error
	notice := ""
	switch c.Param("mode") {
	case "link":
		_, err = g.Accounts.ResetUserPassword(ctx, &userpb.ResetUserPasswordRequest{UserId: id}, slow)
		notice = "reset_link"
	case "temporary":
		var rsp *userpb.ResetUserPasswordResponse
		if rsp, err = g.Accounts.ResetUserPassword(ctx, &userpb.ResetUserPasswordRequest{UserId: id, Temporary: true}, slow); err == nil {
			g.page(c, http.StatusOK, "admin_password.html", gin.H{"UserID": id, "Password": rsp.TemporaryPassword, "Ended": rsp.SessionsEnded})
			return
		}
	case "require":
		_, err = g.Accounts.RequirePasswordChange(ctx, &userpb.RequirePasswordChangeRequest{UserId: id})
		notice = "change_required"
	default:
		g.fail(c, http.StatusNotFound, "not_found", "no such action")
		return
	}
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "error.html", gin.H{"Error": msg})
		return
	}
	back(c, "/admin/users/"+id, notice)
}

// The bodies of the routes for mailed links and the answers of these
// routes.
type (
	tokenBody struct {
		Token string `json:"token"`
	}
	forgotBody struct {
		// Login is a username or an email address.
		Login string `json:"login"`
	}
	resetBody struct {
		Token       string `json:"token"`
		NewPassword string `json:"new_password"`
	}
	profile struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
		DisplayName   string `json:"display_name"`
	}
	verified struct {
		Username string `json:"username"`
		Email    string `json:"email"`
	}
	passwordSet struct {
		Username      string `json:"username"`
		SessionsEnded int32  `json:"sessions_ended"`
	}
)

// profilePatch is the body of PATCH /api/v1/me: absent fields stay.
type profilePatch struct {
	DisplayName *string `json:"display_name"`
	Email       *string `json:"email"`
}

func (g *Gateway) apiPatchMe(c *gin.Context) {
	var req profilePatch
	if !decodeJSON(c, &req) {
		return
	}
	if req.DisplayName == nil && req.Email == nil {
		abortError(c, http.StatusBadRequest, codeMissing, "nothing to change: send display_name and/or email")
		return
	}
	p, err := g.Accounts.UpdateProfile(rpcContext(c), &userpb.UpdateProfileRequest{DisplayName: req.DisplayName, Email: req.Email})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.forgetCaller(c)
	c.JSON(http.StatusOK, profile{p.Email, p.EmailVerified, p.DisplayName})
}

// forgetCaller drops what this gateway cached of the caller's session, so
// that the next request reads the changed profile (other gateways hear
// user.updated).
func (g *Gateway) forgetCaller(c *gin.Context) {
	if cl := callerOf(c); cl != nil {
		_ = g.Cache.Delete(c.Request.Context(), cacheSession+cl.Info.SessionId)
	}
}

func (g *Gateway) apiVerify(c *gin.Context) {
	var req tokenBody
	if !decodeJSON(c, &req) {
		return
	}
	rsp, err := g.Accounts.VerifyEmail(rpcContext(c), &userpb.TokenRequest{Token: req.Token})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, verified{rsp.Username, rsp.Email})
}

// apiForgot always answers 202 with an empty body: the user service
// answers before it looks the login up, and a failure is logged here, not
// shown, so that nothing tells whether the account exists.
func (g *Gateway) apiForgot(c *gin.Context) {
	var req forgotBody
	if !decodeJSON(c, &req) {
		return
	}
	g.forgot(c, req.Login)
	c.Status(http.StatusAccepted)
}

func (g *Gateway) forgot(c *gin.Context, login string) {
	if _, err := g.Accounts.ForgotPassword(rpcContext(c), &userpb.ForgotPasswordRequest{Login: login}); err != nil {
		g.Log.Warn("password reset request not passed on", "err", err)
	}
}

func (g *Gateway) apiReset(c *gin.Context) {
	var req resetBody
	if !decodeJSON(c, &req) {
		return
	}
	rsp, err := g.Accounts.ResetPassword(rpcContext(c), &userpb.ResetPasswordRequest{Token: req.Token, NewPassword: req.NewPassword}, slow)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, passwordSet{rsp.Username, rsp.SessionsEnded})
}

func (g *Gateway) forgotPage(c *gin.Context) {
	g.page(c, http.StatusOK, "forgot.html", nil)
}

func (g *Gateway) forgotForm(c *gin.Context) {
	g.forgot(c, c.PostForm("login"))
	g.page(c, http.StatusAccepted, "forgot.html", gin.H{"Sent": true})
}

func (g *Gateway) resetPage(c *gin.Context) {
	g.page(c, http.StatusOK, "reset.html", gin.H{"Token": c.Query("token")})
}

func (g *Gateway) resetForm(c *gin.Context) {
	tok, pw := c.PostForm("token"), c.PostForm("new_password")
	if pw != c.PostForm("confirm") {
		g.page(c, http.StatusBadRequest, "reset.html", gin.H{"Token": tok, "Errors": map[string]string{"confirm": tr(c, "form.passwords_differ")}})
		return
	}
	rsp, err := g.Accounts.ResetPassword(rpcContext(c), &userpb.ResetPasswordRequest{Token: tok, NewPassword: pw}, slow)
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "reset.html", gin.H{"Token": tok, "Error": msg})
		return
	}
	// The browser's own session, if any, ended with the others.
	clearSessionCookie(c)
	g.page(c, http.StatusOK, "reset.html", gin.H{"Done": true, "Username": rsp.Username, "Ended": rsp.SessionsEnded})
}

func (g *Gateway) verifyPage(c *gin.Context) {
	g.page(c, http.StatusOK, "verify.html", gin.H{"Token": c.Query("token")})
}

func (g *Gateway) verifyForm(c *gin.Context) {
	rsp, err := g.Accounts.VerifyEmail(rpcContext(c), &userpb.TokenRequest{Token: c.PostForm("token")})
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		g.page(c, status, "verify.html", gin.H{"Error": msg})
		return
	}
	g.forgetCaller(c)
	g.page(c, http.StatusOK, "verify.html", gin.H{"Done": true, "Email": rsp.Email})
}

func (g *Gateway) profileForm(c *gin.Context) {
	name, email := c.PostForm("display_name"), c.PostForm("email")
	if _, err := g.Accounts.UpdateProfile(rpcContext(c), &userpb.UpdateProfileRequest{DisplayName: &name, Email: &email}); err != nil {
		status, _, msg := rpcMessage(c, err)
		g.accountView(c, status, gin.H{"Error": msg})
		return
	}
	g.forgetCaller(c)
	back(c, "/account", "profile")
}

func (g *Gateway) resendForm(c *gin.Context) {
	if _, err := g.Accounts.SendVerification(rpcContext(c), &userpb.SendVerificationRequest{}); err != nil {
		status, _, msg := rpcMessage(c, err)
		g.accountView(c, status, gin.H{"Error": msg})
		return
	}
	back(c, "/account", "verification_sent")
}

func (g *Gateway) failedMailPage(c *gin.Context) {
	rsp, err := g.Accounts.ListFailedMail(rpcContext(c), &userpb.ListFailedMailRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_mail.html", gin.H{"Messages": rsp.Messages})
}
