package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	merrors "go-micro.dev/v4/errors"

	"github.com/portal-go/portal/internal/i18n"
	userpb "github.com/portal-go/portal/proto/user"
)

// apiError is the body of every error the JSON API returns: a stable code
// (<area>.<reason>) and a message in the request's language.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// The codes the gateway itself answers with. Codes from the services
// (user.*, system.*, auth.*) pass through rpcStatus; every code, theirs and
// these, has a message "error.<code>" in each language (TestErrorCodes).
const (
	codeBadJSON      = "request.bad_json"
	codeBadForm      = "request.bad_form"
	codeMissing      = "request.missing_field"
	codeBadParam     = "request.bad_param"
	codeBadLanguage  = "request.bad_language"
	codeTooLarge     = "request.too_large"
	codeMediaType    = "request.unsupported_media_type"
	codeNotFound     = "request.not_found"
	codeMethod       = "request.method_not_allowed"
	codeCSRF         = "request.csrf"
	codeCrossOrigin  = "request.cross_origin"
	codeInternal     = "server.internal"
	codeUnavailable  = "server.unavailable"
	codeForbidden    = "auth.forbidden"
	codeNoSuchAction = "request.no_such_action"
)

// abortError ends the request with a JSON error whose message is code's in
// the request's language (detail, in English, when code has none).
func abortError(c *gin.Context, status int, code, detail string, args ...any) {
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="portal"`)
	}
	c.AbortWithStatusJSON(status, apiError{Code: code, Message: errorMessage(c, code, detail, args...)})
}

// errorMessage is code's message in the request's language, or detail
// when the code has no message of its own.
func errorMessage(c *gin.Context, code, detail string, args ...any) string {
	id := "error." + code
	if !i18n.Has(i18n.English, id) {
		return detail
	}
	return tr(c, id, append(args, "Detail", detail)...)
}

// fail ends the request with an error: JSON for the API, a page inside the
// layout, with a way back, otherwise.
func (g *Gateway) fail(c *gin.Context, status int, code, detail string, args ...any) {
	if isAPI(c) {
		abortError(c, status, code, detail, args...)
		return
	}
	back := "/"
	if c.Request.Method == http.MethodGet && status != http.StatusNotFound {
		back = c.Request.URL.RequestURI()
	} else if ref := c.Request.Referer(); ref != "" {
		back = safeNext(sameSitePath(ref))
	}
	g.page(c, status, "error.html", gin.H{"Status": status, "Message": errorMessage(c, code, detail, args...), "Back": back})
	c.Abort()
}

// sameSitePath is the path and query of a URL, "" when it cannot be parsed.
func sameSitePath(ref string) string {
	if i := strings.Index(ref, "://"); i >= 0 {
		rest := ref[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		return "/"
	}
	return ref
}

// rpcStatus maps an error from an RPC to the HTTP status, code and detail the
// client sees, and the arguments of the code's message. Service errors in 4xx
// pass through with their id and detail; anything else is the server's
// problem: 503 when a service or its store cannot be reached, else 500, with
// a generic message.
func rpcStatus(c *gin.Context, err error) (status int, code, detail string, args []any) {
	e := merrors.FromError(err)
	switch {
	case e.Code == http.StatusRequestTimeout || e.Id == "go.micro.client" ||
		e.Code == http.StatusServiceUnavailable || strings.HasSuffix(e.Id, ".unavailable"):
		return http.StatusServiceUnavailable, codeUnavailable, "a service is unavailable, try again shortly", nil
	case e.Code >= 400 && e.Code < 500:
		if l, ok := userpb.LockoutOf(err); ok {
			return int(e.Code), e.Id, l.Message + "; try again in " + strconv.Itoa(int(l.RetryAfterSeconds)) + " seconds",
				[]any{"Wait", duration(c, int(l.RetryAfterSeconds))}
		}
		if e.Id == "system.bad_config" {
			return int(e.Code), e.Id, configProblemsText(c, err, e.Detail), nil
		}
		return int(e.Code), e.Id, e.Detail, nil
	}
	return http.StatusInternalServerError, codeInternal, "internal error", nil
}

// duration says a number of seconds as a person would: seconds under two
// minutes, else minutes (rounded up), else hours.
func duration(c *gin.Context, sec int) string {
	switch {
	case sec < 120:
		return tr(c, "duration.seconds", "Count", sec)
	case sec < 2*3600:
		return tr(c, "duration.minutes", "Count", (sec+59)/60)
	}
	return tr(c, "duration.hours", "Count", (sec+3599)/3600)
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
	status, code, detail, args := rpcStatus(c, err)
	if status >= 500 {
		g.Log.Error("rpc failed", "path", c.Request.URL.Path, "status", status, "err", err)
	}
	setRetryAfter(c, err)
	g.fail(c, status, code, detail, args...)
}

// rpcMessage is what a form shows for an RPC's error, in the request's
// language.
func rpcMessage(c *gin.Context, err error) (status int, code, msg string) {
	status, code, detail, args := rpcStatus(c, err)
	setRetryAfter(c, err)
	return status, code, errorMessage(c, code, detail, args...)
}
