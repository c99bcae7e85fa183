package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/platform"

	userpb "github.com/portal-go/portal/proto/user"
)

// slow is the call option of RPCs that hash a password and may queue for it.
var slow = platform.Timeout(platform.SlowRequestTimeout)

// credentials is the body of register and login.
type credentials struct {
	Username string `json:"username" required:"true"`
	Password string `json:"password" required:"true"`
}

// loginBody is the body of POST /login: device_token is the one a previous
// login returned (the device cookie stands in for it when absent).
type loginBody struct {
	credentials
	DeviceToken string `json:"device_token"`
	// NewPassword, for an account that must change its password
	// (403 user.password_change_required), replaces it in this login.
	NewPassword string `json:"new_password"`
	// Otp is a TOTP or recovery code, for an account with two factors
	// (401 user.mfa_required without it).
	Otp string `json:"otp"`
}

// passwordChange is the body of PUT /me/password; device_token as for login.
type passwordChange struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
	DeviceToken string `json:"device_token"`
}

// decodeJSON reads exactly one JSON object into v (readJSON). It answers
// the request itself and returns false when the body is refused.
func decodeJSON(c *gin.Context, v any) bool {
	if err := readJSON(c, v); err != nil {
		abortError(c, err.Status, err.Code, err.Message)
		return false
	}
	return true
}

// readJSON reads exactly one JSON object into v, refusing other content
// types (415), unknown fields, wrong types and trailing data (400) and
// oversized bodies (413).
func readJSON(c *gin.Context, v any) *endpoint.InputError {
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		return &endpoint.InputError{Status: http.StatusUnsupportedMediaType, Code: codeMediaType, Message: "send Content-Type: application/json"}
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Reading past the object can hit the size limit (an object
		// padded with whitespace): that is a 413, not trailing data.
		if err = dec.Decode(&struct{}{}); err == io.EOF {
			err = nil
		} else if !errors.As(err, new(*http.MaxBytesError)) {
			err = errors.New("one JSON object expected, found more")
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &endpoint.InputError{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge, Message: fmt.Sprintf("the request body is over %d bytes", tooLarge.Limit)}
	case err != nil:
		return &endpoint.InputError{Status: http.StatusBadRequest, Code: codeBadJSON, Message: "malformed JSON: " + err.Error()}
	}
	return nil
}

// registration is the body of POST /register.
type registration struct {
	credentials
	Email string `json:"email"`
}

func (g *Gateway) apiRegister(c *gin.Context) {
	var req registration
	if !decodeJSON(c, &req) || !required(c, req) {
		return
	}
	rsp, err := g.Users.Register(rpcContext(c), &userpb.RegisterRequest{Username: req.Username, Password: req.Password, Email: req.Email, Lang: langOf(c)}, slow)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusCreated, account{rsp.Id, rsp.Username})
}

func (g *Gateway) apiLogin(c *gin.Context) {
	var req loginBody
	if !decodeJSON(c, &req) || !required(c, req) {
		return
	}
	rsp, err := g.Users.Login(rpcContext(c), &userpb.LoginRequest{
		Username: req.Username, Password: req.Password, NewPassword: req.NewPassword, Otp: req.Otp,
		ClientAddr: c.ClientIP(), UserAgent: c.Request.UserAgent(), DeviceToken: deviceToken(c, req.DeviceToken),
	}, slow)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, signedIn{rsp.Token, rsp.ExpiresAt, rsp.DeviceToken, rsp.DeviceExpiresAt})
}

func (g *Gateway) apiLogout(c *gin.Context) {
	if !g.logout(c) {
		return
	}
	c.Status(http.StatusNoContent)
}

// logout ends the caller's session everywhere: in the store (the user
// service), on this gateway at once, and on the others by event.
func (g *Gateway) logout(c *gin.Context) bool {
	cl := callerOf(c)
	if _, err := g.Users.Logout(rpcContext(c), &userpb.LogoutRequest{}); err != nil {
		g.abortRPC(c, err)
		return false
	}
	g.revoke(c.Request.Context(), cl.Info.SessionId)
	if cl.FromCookie {
		clearSessionCookie(c)
	}
	return true
}

func (g *Gateway) apiMe(c *gin.Context) {
	info := callerOf(c).Info
	c.JSON(http.StatusOK, me{info.Id, info.Username, endpoint.OrEmpty(info.Roles), endpoint.OrEmpty(info.Permissions),
		info.Email, info.EmailVerified, info.DisplayName, info.TotpEnabled, info.TwoFactorRequired, info.Language})
}

func (g *Gateway) apiPassword(c *gin.Context) {
	var req passwordChange
	if !decodeJSON(c, &req) {
		return
	}
	rsp, err := g.Users.ChangePassword(rpcContext(c), &userpb.ChangePasswordRequest{
		OldPassword: req.OldPassword, NewPassword: req.NewPassword, DeviceToken: deviceToken(c, req.DeviceToken),
	}, slow)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, sessionsEnded{rsp.SessionsEnded})
}

// required answers 400 request.missing_field, naming every field of body
// that endpoint.Missing finds, unless there is none.
func required(c *gin.Context, body any) bool {
	missing := endpoint.Missing(body)
	if len(missing) == 0 {
		return true
	}
	abortError(c, http.StatusBadRequest, codeMissing, strings.Join(missing, ", "))
	return false
}

// The answers of the gateway's own JSON routes.
type (
	account struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	}
	signedIn struct {
		Token     string `json:"token"`
		ExpiresAt int64  `json:"expires_at"`
		// DeviceToken lets this device skip the per-client lockout next
		// time (send it back as device_token).
		DeviceToken     string `json:"device_token"`
		DeviceExpiresAt int64  `json:"device_expires_at"`
	}
	me struct {
		ID                string   `json:"id"`
		Username          string   `json:"username"`
		Roles             []string `json:"roles"`
		Permissions       []string `json:"permissions"`
		Email             string   `json:"email"`
		EmailVerified     bool     `json:"email_verified"`
		DisplayName       string   `json:"display_name"`
		TOTPEnabled       bool     `json:"totp_enabled"`
		TwoFactorRequired bool     `json:"two_factor_required"`
		// Language is the account's, which its mail is written in; empty:
		// the config's ui.language.
		Language string `json:"language"`
	}
	sessionsEnded struct {
		SessionsEnded int32 `json:"sessions_ended"`
	}
)
