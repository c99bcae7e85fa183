package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	merrors "go-micro.dev/v4/errors"
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
		return int(e.Code), e.Id, e.Detail
	}
	return http.StatusInternalServerError, "internal", "internal error"
}

// abortRPC ends the request with the error an RPC returned, logging it once
// here when it is the server's fault.
func (g *Gateway) abortRPC(c *gin.Context, err error) {
	status, code, msg := rpcStatus(err)
	if status >= 500 {
		g.Log.Error("rpc failed", "path", c.Request.URL.Path, "status", status, "err", err)
	}
	g.fail(c, status, code, msg)
}
