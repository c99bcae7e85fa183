package web

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	userpb "github.com/portal-go/portal/proto/user"
)

// Passkeys: signing in with one is the gateway's own route (it sets the
// session cookie, or answers a token); adding, listing, renaming and
// deleting are the user service's table's JSON routes (/api/v1/me/passkeys),
// and the account page's forms below. The ceremonies themselves run in
// static/passkeys.js: the only part of Portal that needs JavaScript.

func init() {
	notices = append(notices, "passkey_added", "passkey_renamed", "passkey_deleted")
}

// passkeyRoutes adds the passkey routes to e and the API groups api (no
// session needed) and me (a caller).
func (g *Gateway) passkeyRoutes(e *gin.Engine, api *gin.RouterGroup) {
	e.POST("/login/passkey", g.csrf, g.passkeyLoginForm)
	e.POST("/account/passkeys/:id/rename", g.requireCaller, g.csrf, g.passkeyRenameForm)
	e.POST("/account/passkeys/:id/delete", g.requireCaller, g.csrf, g.passkeyDeleteForm)
	api.POST("/login/passkey/finish", g.apiPasskeyFinish)
}

// passkeyLogin is the body of POST /login/passkey/finish.
type passkeyLogin struct {
	Ceremony    string          `json:"ceremony" required:"true"`
	Credential  json.RawMessage `json:"credential" required:"true"`
	DeviceToken string          `json:"device_token"`
}

func (g *Gateway) apiPasskeyFinish(c *gin.Context) {
	var req passkeyLogin
	if !decodeJSON(c, &req) || !required(c, req) {
		return
	}
	rsp, err := g.finishPasskey(c, req.Ceremony, req.Credential, req.DeviceToken)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, signedIn{rsp.Token, rsp.ExpiresAt, rsp.DeviceToken, rsp.DeviceExpiresAt})
}

// finishPasskey asks the user service to sign in with a passkey's answer.
func (g *Gateway) finishPasskey(c *gin.Context, ceremony string, credential []byte, device string) (*userpb.LoginResponse, error) {
	return g.Passkeys.FinishLogin(rpcContext(c), &userpb.PasskeyLoginRequest{
		Ceremony: ceremony, Credential: credential,
		ClientAddr: c.ClientIP(), UserAgent: c.Request.UserAgent(), DeviceToken: deviceToken(c, device),
	})
}

// passkeyLoginForm is the login page's passkey form, filled and sent by
// passkeys.js.
func (g *Gateway) passkeyLoginForm(c *gin.Context) {
	next := safeNext(c.PostForm("next"))
	rsp, err := g.finishPasskey(c, c.PostForm("ceremony"), []byte(c.PostForm("credential")), "")
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		if status >= 500 {
			g.abortRPC(c, err)
			return
		}
		g.page(c, status, "login.html", gin.H{"Next": next, "Error": msg})
		return
	}
	setSessionCookie(c, rsp.Token, rsp.ExpiresAt)
	setDeviceCookie(c, rsp.DeviceToken, rsp.DeviceExpiresAt)
	g.afterForm(c, next)
}

func (g *Gateway) passkeyRenameForm(c *gin.Context) {
	if _, err := g.Passkeys.RenamePasskey(rpcContext(c), &userpb.RenamePasskeyRequest{Id: c.Param("id"), Name: c.PostForm("name")}); err != nil {
		g.accountError(c, err)
		return
	}
	back(c, "/account", "passkey_renamed")
}

func (g *Gateway) passkeyDeleteForm(c *gin.Context) {
	if _, err := g.Passkeys.DeletePasskey(rpcContext(c), &userpb.DeletePasskeyRequest{
		Id: c.Param("id"), Password: c.PostForm("password"), DeviceToken: deviceToken(c, ""),
	}, slow); err != nil {
		g.accountError(c, err)
		return
	}
	back(c, "/account", "passkey_deleted")
}

// accountError shows the account page with the error of a form on it.
func (g *Gateway) accountError(c *gin.Context, err error) {
	status, _, msg := rpcMessage(c, err)
	if status >= 500 {
		g.abortRPC(c, err)
		return
	}
	g.accountView(c, status, gin.H{"Error": msg})
}
