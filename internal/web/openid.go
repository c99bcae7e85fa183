package web

import (
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/sso"
	oidcpb "github.com/portal-go/portal/proto/oidc"
)

// forwardedHeaders are the request headers the OpenID provider reads.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Accept", "Origin"}

// withOIDC answers 404 for the OpenID provider's routes on a gateway built
// without one.
func (g *Gateway) withOIDC(c *gin.Context) {
	if g.OIDC == nil {
		g.fail(c, http.StatusNotFound, codeNotFound, "no such page")
		return
	}
	c.Next()
}

// openID forwards a request to the OpenID provider in the user service and
// writes its answer back. The browser's Portal session, if it sent its
// cookie, goes along as the call's token; no cookie is forwarded.
func (g *Gateway) openID(c *gin.Context) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		g.fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is too large")
		return
	}
	req := &oidcpb.HTTPRequest{Method: c.Request.Method, Url: c.Request.URL.RequestURI(), Body: body}
	for _, name := range forwardedHeaders {
		if vs := c.Request.Header.Values(name); len(vs) > 0 {
			req.Headers = append(req.Headers, &oidcpb.Header{Name: name, Values: vs})
		}
	}
	ctx := pauth.ContextWithClient(c.Request.Context(), c.ClientIP())
	if cl := callerOf(c); cl != nil && cl.FromCookie {
		ctx = pauth.ContextWithToken(ctx, cl.Token)
	}
	rsp, err := g.OIDC.Serve(ctx, req)
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	for _, h := range rsp.Headers {
		if strings.EqualFold(h.Name, "Content-Length") || strings.EqualFold(h.Name, "Set-Cookie") {
			continue
		}
		c.Writer.Header()[http.CanonicalHeaderKey(h.Name)] = h.Values
	}
	c.Status(int(rsp.Status))
	_, _ = c.Writer.Write(rsp.Body)
}

// The bodies and answers of the OpenID routes of the JSON API.
type (
	newClient struct {
		Name                   string   `json:"name"`
		RedirectURIs           []string `json:"redirect_uris"`
		PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
		BackchannelLogoutURI   string   `json:"backchannel_logout_uri"`
		Confidential           bool     `json:"confidential"`
		FirstParty             bool     `json:"first_party"`
		Scopes                 []string `json:"scopes"`
		Permission             string   `json:"permission"`
	}
	clientPatch struct {
		Disabled     *bool `json:"disabled"`
		RotateSecret bool  `json:"rotate_secret"`
	}
	clientList struct {
		Clients []clientJSON `json:"clients"`
	}
	// app is an application the caller allowed to sign them in.
	app struct {
		ClientID string `json:"client_id"`
		Name     string `json:"name"`
		Given    int64  `json:"given"`
	}
	appList struct {
		Apps []app `json:"apps"`
	}
)

// clientJSON is a registered client in the JSON API.
type clientJSON struct {
	ClientID               string   `json:"client_id"`
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	Confidential           bool     `json:"confidential"`
	FirstParty             bool     `json:"first_party"`
	Scopes                 []string `json:"scopes"`
	Permission             string   `json:"permission,omitempty"`
	Disabled               bool     `json:"disabled"`
	Created                int64    `json:"created"`
	// ClientSecret is shown once, at creation and rotation.
	ClientSecret string `json:"client_secret,omitempty"`
}

func clientOut(c *oidcpb.Client, secret string) clientJSON {
	return clientJSON{
		ClientID: c.Id, Name: c.Name, RedirectURIs: endpoint.OrEmpty(c.RedirectUris), PostLogoutRedirectURIs: endpoint.OrEmpty(c.PostLogoutRedirectUris),
		BackchannelLogoutURI: c.BackchannelLogoutUri, Confidential: c.Confidential, FirstParty: c.FirstParty,
		Scopes: endpoint.OrEmpty(c.Scopes), Permission: c.Permission, Disabled: c.Disabled, Created: c.Created, ClientSecret: secret,
	}
}

// apiCreateClient registers an OpenID client: 201 with its secret, once.
func (g *Gateway) apiCreateClient(c *gin.Context) {
	var in newClient
	if !decodeJSON(c, &in) {
		return
	}
	rsp, err := g.OIDC.CreateClient(rpcContext(c), &oidcpb.CreateClientRequest{
		Name: in.Name, RedirectUris: in.RedirectURIs, PostLogoutRedirectUris: in.PostLogoutRedirectURIs,
		BackchannelLogoutUri: in.BackchannelLogoutURI, Confidential: in.Confidential, FirstParty: in.FirstParty,
		Scopes: in.Scopes, Permission: in.Permission,
	})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusCreated, clientOut(rsp.Client, rsp.ClientSecret))
}

func (g *Gateway) apiClients(c *gin.Context) {
	rsp, err := g.OIDC.ListClients(rpcContext(c), &oidcpb.ListClientsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	out := []clientJSON{}
	for _, cl := range rsp.Clients {
		out = append(out, clientOut(cl, ""))
	}
	c.JSON(http.StatusOK, clientList{out})
}

// apiPatchClient disables or enables a client, or rotates its secret.
func (g *Gateway) apiPatchClient(c *gin.Context) {
	var in clientPatch
	if !decodeJSON(c, &in) {
		return
	}
	if in.Disabled == nil && !in.RotateSecret {
		abortError(c, http.StatusBadRequest, codeMissing, "nothing to change: send disabled and/or rotate_secret")
		return
	}
	rsp, err := g.OIDC.UpdateClient(rpcContext(c), &oidcpb.UpdateClientRequest{Id: c.Param("id"), Disabled: in.Disabled, RotateSecret: in.RotateSecret})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	c.JSON(http.StatusOK, clientOut(rsp.Client, rsp.ClientSecret))
}

func (g *Gateway) apiDeleteClient(c *gin.Context) {
	if _, err := g.OIDC.DeleteClient(rpcContext(c), &oidcpb.DeleteClientRequest{Id: c.Param("id")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// scopes are the scopes the consent page explains, each by the message
// "scope.<name>".
var scopes = []string{"openid", "profile", "email", "offline_access"}

// scopeText says, in the request's language, what each scope lets an
// application see.
func scopeText(c *gin.Context) map[string]string {
	text := map[string]string{}
	for _, s := range scopes {
		text[s] = tr(c, "scope."+s)
	}
	return text
}

// consentPage asks the signed-in user whether an application may sign
// them in.
func (g *Gateway) consentPage(c *gin.Context) {
	rsp, err := g.OIDC.ConsentInfo(rpcContext(c), &oidcpb.ConsentInfoRequest{Id: c.Query("id")})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "consent.html", gin.H{
		"ID": c.Query("id"), "ClientName": rsp.ClientName, "Scopes": rsp.Scopes, "ScopeText": scopeText(c),
	})
}

// consentForm records the answer and sends the browser on.
func (g *Gateway) consentForm(c *gin.Context) {
	rsp, err := g.OIDC.Consent(rpcContext(c), &oidcpb.ConsentRequest{Id: c.PostForm("id"), Allow: c.PostForm("decision") == "allow"})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.afterForm(c, rsp.Redirect)
}

// afterForm sends the browser on to next after a form was submitted. Where
// next is a step of the OpenID provider, whose redirects end at an
// application's redirect URI on another origin, it is a page that
// navigates there (a meta refresh, no script): the pages' CSP form-action
// 'self' would stop a redirect chain that began with the form.
func (g *Gateway) afterForm(c *gin.Context, next string) {
	if u, err := url.Parse(next); err == nil && (u.IsAbs() || sso.Public(u.Path)) {
		g.page(c, http.StatusOK, "continue.html", gin.H{"Next": next, "Refresh": "0; url=" + next})
		return
	}
	c.Redirect(http.StatusSeeOther, next)
}

func (g *Gateway) revokeAppForm(c *gin.Context) {
	if _, err := g.OIDC.RevokeConsent(rpcContext(c), &oidcpb.RevokeConsentRequest{ClientId: c.Param("id")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/account", "app_revoked")
}

func (g *Gateway) apiMyApps(c *gin.Context) {
	rsp, err := g.OIDC.ListConsents(rpcContext(c), &oidcpb.ListConsentsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	out := []app{}
	for _, a := range rsp.Consents {
		out = append(out, app{a.ClientId, a.ClientName, a.Given})
	}
	c.JSON(http.StatusOK, appList{out})
}

func (g *Gateway) apiRevokeApp(c *gin.Context) {
	if _, err := g.OIDC.RevokeConsent(rpcContext(c), &oidcpb.RevokeConsentRequest{ClientId: c.Param("id")}); err != nil {
		g.abortRPC(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// clientsPage lists the registered applications; secret, when set, is one
// just made (shown once).
func (g *Gateway) clientsPage(c *gin.Context) { g.clientsView(c, "", "") }

func (g *Gateway) clientsView(c *gin.Context, secretFor, secret string) {
	rsp, err := g.OIDC.ListClients(rpcContext(c), &oidcpb.ListClientsRequest{})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.page(c, http.StatusOK, "admin_oidc.html", gin.H{
		"Clients": rsp.Clients, "Secret": secret, "SecretFor": secretFor, "Issuer": g.Issuer,
	})
}

// lines splits a textarea into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (g *Gateway) createClientForm(c *gin.Context) {
	rsp, err := g.OIDC.CreateClient(rpcContext(c), &oidcpb.CreateClientRequest{
		Name: c.PostForm("name"), RedirectUris: lines(c.PostForm("redirect_uris")),
		PostLogoutRedirectUris: lines(c.PostForm("post_logout_redirect_uris")),
		BackchannelLogoutUri:   strings.TrimSpace(c.PostForm("backchannel_logout_uri")),
		Confidential:           c.PostForm("confidential") != "", FirstParty: c.PostForm("first_party") != "",
		Scopes: c.PostFormArray("scopes"), Permission: strings.TrimSpace(c.PostForm("permission")),
	})
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	g.clientsView(c, rsp.Client.Name, rsp.ClientSecret)
}

func (g *Gateway) clientActionForm(c *gin.Context) {
	id, ctx := c.Param("id"), rpcContext(c)
	var err error
	switch c.Param("action") {
	case "disable", "enable":
		disabled := c.Param("action") == "disable"
		_, err = g.OIDC.UpdateClient(ctx, &oidcpb.UpdateClientRequest{Id: id, Disabled: &disabled})
	case "rotate":
		var rsp *oidcpb.UpdateClientResponse
		if rsp, err = g.OIDC.UpdateClient(ctx, &oidcpb.UpdateClientRequest{Id: id, RotateSecret: true}); err == nil {
			g.clientsView(c, rsp.Client.Name, rsp.ClientSecret)
			return
		}
	case "delete":
		_, err = g.OIDC.DeleteClient(ctx, &oidcpb.DeleteClientRequest{Id: id})
	default:
		g.fail(c, http.StatusNotFound, codeNoSuchAction, "no such action")
		return
	}
	if err != nil {
		g.abortRPC(c, err)
		return
	}
	back(c, "/admin/oidc", "client_"+c.Param("action"))
}
