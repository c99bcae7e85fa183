package web

import (
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	pauth "github.com/portal-go/portal/internal/auth"
	oidcpb "github.com/portal-go/portal/proto/oidc"
)

// forwardedHeaders are the request headers the OpenID provider reads.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Accept", "Origin"}

// openID forwards a request to the OpenID provider in the user service and
// writes its answer back. The browser's Portal session, if it sent its
// cookie, goes along as the call's token; no cookie is forwarded.
func (g *Gateway) openID(c *gin.Context) {
	if g.OIDC == nil {
		g.fail(c, http.StatusNotFound, "not_found", "no such page")
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		g.fail(c, http.StatusRequestEntityTooLarge, "too_large", "the request body is too large")
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
