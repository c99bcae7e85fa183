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
	Username string `json:"username"`
	Password string `json:"password"`
}

// loginBody is the body of POST /login: device_token is the one a previous
// login returned (the device cookie stands in for it when absent).
type loginBody struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
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
	if !decodeJSON(c, &req) || !required(c, "username", req.Username, "password", req.Password) {
		return
	}
	rsp, err := g.Users.Register(rpcContext(c), &userpb.RegisterRequest{Username: req.Username, Password: req.Password, Email: req.Email, Lang: langOf(c)}, slow)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": rsp.Id, "username": rsp.Username})
}

func (g *Gateway) apiLogin(c *gin.Context) {
	var req loginBody
	if !decodeJSON(c, &req) || !required(c, "username", req.Username, "password", req.Password) {
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
	c.JSON(http.StatusOK, gin.H{"token": rsp.Token, "expires_at": rsp.ExpiresAt, "device_token": rsp.DeviceToken, "device_expires_at": rsp.DeviceExpiresAt})
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
	c.JSON(http.StatusOK, gin.H{"id": info.Id, "username": info.Username, "roles": endpoint.OrEmpty(info.Roles), "permissions": endpoint.OrEmpty(info.Permissions),
		"email": info.Email, "email_verified": info.EmailVerified, "display_name": info.DisplayName, "totp_enabled": info.TotpEnabled, "two_factor_required": info.TwoFactorRequired, "language": info.Language})
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
	c.JSON(http.StatusOK, gin.H{"sessions_ended": rsp.SessionsEnded})
}

// required answers 400 request.missing_field, naming every field left
// empty, unless each of the name/value pairs has a value.
func required(c *gin.Context, pairs ...string) bool {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	if len(missing) == 0 {
		return true
	}
	abortError(c, http.StatusBadRequest, codeMissing, strings.Join(missing, ", "))
	return false
}
