package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	merrors "go-micro.dev/v4/errors"

	userpb "github.com/portal-go/portal/proto/user"
)

// apiError is the body of every error the JSON API returns.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// abortError ends the request with a JSON error.
func abortError(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, apiError{Code: code, Message: msg})
}

// fail ends the request with an error: JSON for the API, a page otherwise.
func (g *Gateway) fail(c *gin.Context, status int, code, msg string) {
	if isAPI(c) {
		abortError(c, status, code, msg)
		return
	}
	g.page(c, status, "error.html", gin.H{"Status": status, "Message": msg})
	c.Abort()
}

// rpcStatus maps an error from an RPC to the HTTP status, code and message the
// client sees. Service errors in 4xx pass through with their id and detail;
// anything else is the server's problem: 503 when a service or its store
// cannot be reached, else 500, with a generic message.
func rpcStatus(err error) (status int, code, msg string) {
	e := merrors.FromError(err)
	switch {
	case e.Code == http.StatusRequestTimeout || e.Id == "go.micro.client" ||
		e.Code == http.StatusServiceUnavailable || strings.HasSuffix(e.Id, ".unavailable"):
		return http.StatusServiceUnavailable, "unavailable", "a service is unavailable, try again shortly"
	case e.Code >= 400 && e.Code < 500:
		if l, ok := userpb.LockoutOf(err); ok {
			return int(e.Code), e.Id, l.Message + "; try again in " + strconv.Itoa(int(l.RetryAfterSeconds)) + " seconds"
		}
		return int(e.Code), e.Id, e.Detail
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// setRetryAfter sets the Retry-After header when err asks to wait.
func setRetryAfter(c *gin.Context, err error) {
	if l, ok := userpb.LockoutOf(err); ok {
		c.Header("Retry-After", strconv.Itoa(int(l.RetryAfterSeconds)))
	}
}

// abortRPC ends the request with the error an RPC returned, logging it once
// here when it is the server's fault, with a Retry-After header when the
// service asked for one (429 user.locked).
func (g *Gateway) abortRPC(c *gin.Context, err error) {
	status, code, msg := rpcStatus(err)
	if status >= 500 {
		g.Log.Error("rpc failed", "path", c.Request.URL.Path, "status", status, "err", err)
	}
	setRetryAfter(c, err)
	g.fail(c, status, code, msg)
}
