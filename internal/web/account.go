package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"

	oidcpb "github.com/portal-go/portal/proto/oidc"
	userpb "github.com/portal-go/portal/proto/user"
)

// The caller's own account: their sessions (JSON and the /account page)
// and, on the page, their API keys. The JSON routes of API keys are the
// user service's table's (/api/v1/me/tokens).

func (g *Gateway) apiMySessions(c *gin.Context) {
	rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, sessionList{endpoint.Present(rsp.Sessions)})
}

// sessionList is the answer of GET /me/sessions.
type sessionList struct {
	Sessions endpoint.Presented[[]*userpb.Session] `json:"sessions"`
}

func (g *Gateway) apiEndMySession(c *gin.Context) {
	if !g.endSession(c, c.Param("id")) {
		return
	}
	c.Status(http.StatusNoContent)
}

// endSession ends a session through the user service (the caller's own, or
// anyone's with sessions.revoke: the service decides) and drops it on this
// gateway at once.
func (g *Gateway) endSession(c *gin.Context, id string) bool {
	if _, err := g.Users.RevokeSession(rpcContext(c), &userpb.RevokeSessionRequest{SessionId: id}); err != nil {
		g.abortRPC(c, err)
		return false
	}
	g.revoke(c.Request.Context(), id)
	if cl := callerOf(c); cl.Info.SessionId == id && cl.FromCookie {
		clearSessionCookie(c)
	}
	return true
}

func (g *Gateway) accountPage(c *gin.Context) {
	g.accountView(c, http.StatusOK, gin.H{})
}

// accountView renders /account with the caller's sessions and API keys.
func (g *Gateway) accountView(c *gin.Context, status int, data gin.H) {
	ctx := rpcContext(c)
	rsp, err := g.Users.ListSessions(ctx, &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	keys, err := g.Users.ListTokens(ctx, &userpb.ListTokensRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	data["Sessions"], data["Tokens"] = rsp.Sessions, keys.Tokens
	if g.OIDC != nil {
		apps, err := g.OIDC.ListConsents(ctx, &oidcpb.ListConsentsRequest{})
		if err != nil {
			g.abortRPC(c, err)
			return
		}
		data["Apps"] = apps.Consents
	}
	if n, err := strconv.Atoi(c.Query("ended")); err == nil && n > 0 {
		data["Ended"] = n
	}
	data["ZoneName"] = zoneOf(c).String()
	if v, ok := data["ZoneValue"]; ok {
		data["ZoneName"] = v
	}
	data["Zones"] = commonZones
	g.page(c, status, "account.html", data)
}

func (g *Gateway) endMySessionForm(c *gin.Context) {
	id := c.Param("id")
	if id == "others" {
		g.endOtherSessionsForm(c)
		return
	}
	mine := callerOf(c).Info.SessionId == id
	if !g.endSession(c, id) {
		return
	}
	if mine {
		c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	back(c, "/account", "session_ended")
}

// endOtherSessionsForm ends every session of the caller but the current one.
func (g *Gateway) endOtherSessionsForm(c *gin.Context) {
	rsp, err := g.Users.ListSessions(rpcContext(c), &userpb.ListSessionsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	n := 0
	for _, s := range rsp.Sessions {
		if s.Current {
			continue
		}
		if !g.endSession(c, s.Id) {
			return
		}
		n++
	}
	u := url.URL{Path: "/account", RawQuery: url.Values{"done": {"sessions_ended"}, "ended": {strconv.Itoa(n)}}.Encode()}
	c.Redirect(http.StatusSeeOther, u.String())
}

// tokenForm makes an API key from the account page's form: a name, a number
// of days, and the permissions ticked (each one the caller holds). The key
// is shown on the page this once.
func (g *Gateway) tokenForm(c *gin.Context) {
	days, err := strconv.Atoi(c.PostForm("days"))
	if err != nil || days < 1 {
		g.accountView(c, http.StatusBadRequest, gin.H{"Errors": map[string]string{"days": tr(c, "form.key_days")}})
		return
	}
	rsp, err := g.Users.CreateToken(rpcContext(c), &userpb.CreateTokenRequest{
		Name: strings.TrimSpace(c.PostForm("name")), Permissions: c.PostFormArray("permission"),
		ExpiresAt: time.Now().Add(time.Duration(days) * 24 * time.Hour).Unix(),
	})
	if err != nil {
		status, _, msg := rpcMessage(c, err)
		if status >= 500 {
			g.abortRPC(c, err)
			return
		}
		g.accountView(c, status, gin.H{"Error": msg})
		return
	}
	g.accountView(c, http.StatusCreated, gin.H{"Notice": tr(c, "notice.key_made"), "NewKey": rsp.Secret})
}

// revokeTokenForm revokes one of the caller's API keys.
func (g *Gateway) revokeTokenForm(c *gin.Context) {
	if _, err := g.Users.RevokeToken(rpcContext(c), &userpb.RevokeTokenRequest{Id: c.Param("id")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/account", "token_revoked")
}
