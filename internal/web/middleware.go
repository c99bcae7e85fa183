package web

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/sso"
	userpb "github.com/portal-go/portal/proto/user"
)

// Names shared by the middleware and the handlers.
const (
	sessionCookie      = "portal_session"
	deviceCookie       = "portal_device"
	headerRefreshed    = "X-Refreshed-Token"
	headerRefreshedExp = "X-Refreshed-Expires-At"
	ctxCaller          = "portal.caller"
	// Cache keys, namespaced: a Redis cache may be shared.
	cacheSession = "portal:web:session:"
	cacheRevoked = "portal:web:revoked:"
	// verdictTTL bounds how long a gateway trusts its cached word that a
	// session is live; session.revoked events end it sooner.
	verdictTTL = 30 * time.Second
)

// caller is the authenticated client of a request.
type caller struct {
	Token      string
	ExpiresAt  int64 // the token's expiry, unix seconds
	FromCookie bool
	Info       *userpb.InfoResponse
}

func callerOf(c *gin.Context) *caller {
	v, _ := c.Get(ctxCaller)
	cl, _ := v.(*caller)
	return cl
}

// rpcContext is the request's context carrying the caller's token, and the
// client's address, to services.
func rpcContext(c *gin.Context) context.Context {
	ctx := pauth.WithClient(c.Request.Context(), pauth.Client{Addr: c.ClientIP(), UserAgent: c.Request.UserAgent()})
	if cl := callerOf(c); cl != nil {
		ctx = pauth.ContextWithToken(ctx, cl.Token)
	}
	return ctx
}

func isAPI(c *gin.Context) bool { return strings.HasPrefix(c.Request.URL.Path, "/api/") }

// countRequests records every request in portal_http_requests_total and
// portal_http_request_duration_seconds. Labels are bounded: the route is
// gin's pattern ("/static/*filepath"), "unmatched" for no route, and the
// method one of the standard ones or "other". It counts the request as the
// process's work too (platform.Working: an idle Portal returns its memory).
func (g *Gateway) countRequests(c *gin.Context) {
	platform.Working()
	start := time.Now()
	c.Next()
	route, method := routeOf(c), methodOf(c)
	g.Metrics.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
	g.Metrics.HTTPDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
}

// routeOf is the request's route: gin's pattern ("/static/*filepath"), or
// "unmatched" when no route matched.
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodOf is the request's method, one of the standard ones or "other".
func methodOf(c *gin.Context) string {
	switch m := c.Request.Method; m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// trace starts the request's trace: a server span named for the route, in
// the request's context, so that the RPCs the handlers make join it. A trace
// context the client sends is ignored: a request from outside starts a trace
// of its own. Neither the query nor any header is recorded (a token may be
// in either).
func (g *Gateway) trace(c *gin.Context) {
	route, method := routeOf(c), methodOf(c)
	ctx, span := g.tracer.Start(c.Request.Context(), method+" "+route, trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route)))
	defer span.End()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	status := c.Writer.Status()
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if cl := callerOf(c); cl != nil && cl.Info != nil {
		span.SetAttributes(semconv.EnduserID(cl.Info.Id))
	}
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// logRequests logs one line per request: method, route (the pattern, never
// the path or query, which may carry a token), status, latency, the trace id
// and, when signed in, the user id.
func (g *Gateway) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	attrs := []any{"method", methodOf(c), "route", routeOf(c), "status", c.Writer.Status(),
		"latency_ms", float64(time.Since(start).Microseconds()) / 1000, "client", c.ClientIP()}
	if sc := trace.SpanContextFromContext(c.Request.Context()); sc.HasTraceID() {
		attrs = append(attrs, "trace_id", sc.TraceID().String())
	}
	if cl := callerOf(c); cl != nil && cl.Info != nil {
		attrs = append(attrs, "user_id", cl.Info.Id)
	}
	g.Log.Info("request", attrs...)
}

// recover is platform.Recover for the gateway: a panic in a handler is
// logged once and answered with a 500.
func (g *Gateway) recover(c *gin.Context) {
	defer platform.Recover(c.Request.Context(), g.Log, func() {
		g.fail(c, http.StatusInternalServerError, codeInternal, "internal error")
	}, "route", routeOf(c))
	c.Next()
}

// securityHeaders are sent with every response.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

func (g *Gateway) limitBody(c *gin.Context) {
	if c.Request.ContentLength > maxBody {
		c.Header("Connection", "close")
		g.fail(c, http.StatusRequestEntityTooLarge, codeTooLarge, "the request body is over "+strconv.Itoa(maxBody)+" bytes")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	c.Next()
}

var crossOriginCheck = func() *http.CrossOriginProtection {
	p := http.NewCrossOriginProtection()
	// The OpenID endpoints that browser applications call from their own
	// origin (CORS): they act on a client's credentials or token, never on
	// the Portal session (openID forwards it to the sign-in step only).
	for _, path := range []string{sso.TokenPath, sso.UserinfoPath, sso.RevokePath} {
		p.AddInsecureBypassPattern(path)
	}
	return p
}()

// crossOrigin refuses state-changing requests that a browser marks as coming
// from another site (Sec-Fetch-Site, Origin), the first line against CSRF;
// forms also carry a token (csrf).
func crossOrigin(c *gin.Context) {
	if err := crossOriginCheck.Check(c.Request); err != nil {
		abortError(c, http.StatusForbidden, codeCrossOrigin, "cross-origin request refused")
		return
	}
	c.Next()
}

// tokenOf finds the request's token: the Authorization header, the token
// query parameter (the article's form), or the session cookie.
func tokenOf(c *gin.Context) (tok string, fromCookie bool) {
	// A header with another scheme (say, a proxy's Basic auth) is not ours.
	if scheme, t, ok := strings.Cut(c.GetHeader("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(t), false
	}
	if t := c.Query("token"); t != "" {
		return t, false
	}
	if ck, err := c.Cookie(sessionCookie); err == nil && ck != "" {
		return ck, true
	}
	return "", false
}

// authenticate is the article's interceptor (section 3.1), done right: paths
// on the config center's whitelist pass; any other request needs a valid
// token of a live session; a token close to expiry is renewed, never past
// the session's end. Pages without a session are sent to the login page
// (303), API calls get 401.
func (g *Gateway) authenticate(c *gin.Context) {
	set := g.Config.Current().Auth
	if set.Whitelisted(c.Request.URL.Path) || sso.Public(c.Request.URL.Path) {
		// No token needed; one that is valid still tells the page who is
		// signed in.
		if cl, err := g.identify(c, set, false); err == nil {
			c.Set(ctxCaller, cl)
		}
		c.Next()
		return
	}
	cl, err := g.identify(c, set, true)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			g.unauthenticated(c, ae.code, ae.msg)
			return
		}
		g.abortRPC(c, err)
		return
	}
	c.Set(ctxCaller, cl)
	c.Next()
}

// authError is a request's failure to authenticate, as the client sees it.
type authError struct{ code, msg string }

func (e *authError) Error() string { return e.code + ": " + e.msg }

// identify finds the caller behind the request's token: verified, its session
// live, and (if renew) renewed when close to expiry. It returns an *authError
// when the client is at fault, any other error when a service is.
func (g *Gateway) identify(c *gin.Context, set config.AuthSettings, renew bool) (*caller, error) {
	tok, fromCookie := tokenOf(c)
	if tok == "" {
		return nil, &authError{"auth.unauthenticated", "a token is required"}
	}
	if pauth.IsKey(tok) {
		return g.identifyKey(c, tok, fromCookie)
	}
	acc, err := g.Auth.Inspect(tok)
	if errors.Is(err, pauth.ErrExpired) {
		return nil, &authError{"auth.token_expired", "the token has expired"}
	} else if err != nil {
		return nil, &authError{"auth.invalid_token", "the token is not valid"}
	}
	cl := &caller{Token: tok, FromCookie: fromCookie}
	cl.ExpiresAt, _ = strconv.ParseInt(acc.Metadata[pauth.MetaExpiresAt], 10, 64)
	if cl.Info, err = g.session(c, acc.Metadata[pauth.MetaSession], tok); err != nil {
		if e := merrors.FromError(err); e.Code == http.StatusUnauthorized {
			return nil, &authError{"auth.session_ended", "the session has ended"}
		}
		return nil, err
	}
	sessionEnd, _ := strconv.ParseInt(acc.Metadata[pauth.MetaSessionEx], 10, 64)
	if left := time.Until(time.Unix(cl.ExpiresAt, 0)); renew && left < set.Refresh() && cl.ExpiresAt < sessionEnd {
		g.renew(c, cl)
	}
	return cl, nil
}

// identifyKey finds the caller behind an API key, asking the user service
// on every request: a key's verdict is never cached, so a revoked or expired
// key is refused at once on every gateway. A key is a header's (or the
// query's), never a cookie's.
func (g *Gateway) identifyKey(c *gin.Context, key string, fromCookie bool) (*caller, error) {
	if fromCookie {
		return nil, &authError{"auth.invalid_token", "the token is not valid"}
	}
	info, err := g.Users.Info(pauth.ContextWithToken(c.Request.Context(), key), &userpb.InfoRequest{})
	if e := merrors.FromError(err); err != nil && e.Code == http.StatusUnauthorized {
		return nil, &authError{"auth.session_ended", "the API key is not valid, or has expired or been revoked"}
	} else if err != nil {
		return nil, err
	}
	return &caller{Token: key, Info: info}, nil
}

// requireCaller refuses a request that authenticate let through without a
// session (its path is whitelisted) to a handler that acts for a caller.
func (g *Gateway) requireCaller(c *gin.Context) {
	if callerOf(c) == nil {
		g.unauthenticated(c, "auth.unauthenticated", "a token is required")
		return
	}
	c.Next()
}

// MultiGetter is a cache that reads several keys in one round trip (a Redis
// cache: one MGET rather than a GET and a TTL per key). The gateway reads a
// session's tombstone and verdict through it when its cache is one.
type MultiGetter interface {
	// GetMany returns the values at keys, nil where a key is missing.
	GetMany(ctx context.Context, keys ...string) ([]interface{}, error)
}

// session returns the account behind a live session: from the cache, or from
// the user service (which checks the session) and then cached. A verdict is
// trusted only while the gateway hears revocations, and only when it was
// asked for after the gateway last began to hear them: a revocation published
// while it could not hear is lost to it. Otherwise every request asks the
// user service.
func (g *Gateway) session(c *gin.Context, sid, tok string) (*userpb.InfoResponse, error) {
	ctx := c.Request.Context()
	asked := time.Now()
	since, live := g.revocationsLive()
	revoked, verdict := g.cached(ctx, sid)
	if revoked {
		return nil, merrors.Unauthorized("auth.session_ended", "the session has ended")
	}
	if b, ok := verdict.([]byte); ok && live {
		if info, ok := decodeVerdict(b, since); ok {
			return info, nil
		}
	}
	info, err := g.Users.Info(pauth.ContextWithToken(ctx, tok), &userpb.InfoRequest{})
	if err != nil {
		return nil, err
	}
	if live {
		if b, err := encodeVerdict(info, asked); err == nil {
			_ = g.Cache.Put(ctx, g.verdictKey(sid), b, verdictTTL)
		}
	}
	return info, nil
}

// revocationsLive is Revocations.Live, always live without a feed.
func (g *Gateway) revocationsLive() (time.Time, bool) {
	if g.Revocations == nil {
		return time.Time{}, true
	}
	return g.Revocations.Live()
}

// encodeVerdict is a cached verdict: when it was asked for (unix
// nanoseconds, 8 bytes big-endian), then the user service's answer.
func encodeVerdict(info *userpb.InfoResponse, asked time.Time) ([]byte, error) {
	b, err := proto.Marshal(info)
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(asked.UnixNano())), b...), nil
}

// decodeVerdict reads a cached verdict; ok is false when it is malformed or
// was asked for before since.
func decodeVerdict(b []byte, since time.Time) (*userpb.InfoResponse, bool) {
	if len(b) < 8 || !since.IsZero() && int64(binary.BigEndian.Uint64(b)) < since.UnixNano() {
		return nil, false
	}
	var info userpb.InfoResponse
	if proto.Unmarshal(b[8:], &info) != nil {
		return nil, false
	}
	return &info, true
}

// verdictKey is the cache key of a session's verdict: under the number of
// role edits this gateway has heard of, since the verdict lists the
// caller's permissions.
func (g *Gateway) verdictKey(sid string) string {
	return cacheSession + strconv.FormatInt(g.rolesGen.Load(), 10) + ":" + sid
}

// cached looks a session up in the cache: whether it has a tombstone, and
// its cached verdict (nil when none). A cache that fails counts as empty.
func (g *Gateway) cached(ctx context.Context, sid string) (revoked bool, verdict interface{}) {
	if mg, ok := g.Cache.(MultiGetter); ok {
		vals, err := mg.GetMany(ctx, cacheRevoked+sid, g.verdictKey(sid))
		if err != nil || len(vals) != 2 {
			return false, nil
		}
		return vals[0] != nil, vals[1]
	}
	if v, _, err := g.Cache.Get(ctx, cacheRevoked+sid); err == nil && v != nil {
		return true, nil
	}
	if v, _, err := g.Cache.Get(ctx, g.verdictKey(sid)); err == nil {
		return false, v
	}
	return false, nil
}

// revoke forgets a session's verdict and marks it ended for as long as any of
// its tokens could live.
func (g *Gateway) revoke(ctx context.Context, sid string) {
	_ = g.Cache.Delete(ctx, g.verdictKey(sid))
	_ = g.Cache.Put(ctx, cacheRevoked+sid, []byte{1}, g.Config.Current().Auth.Expire()+verdictTTL)
}

// renew swaps the caller's token for a fresh one. A failure is not fatal: the
// current token is still valid.
func (g *Gateway) renew(c *gin.Context, cl *caller) {
	rsp, err := g.Users.Renew(pauth.ContextWithToken(c.Request.Context(), cl.Token), &userpb.RenewRequest{})
	if err != nil {
		g.Log.Warn("token renewal failed", "err", err)
		return
	}
	cl.Token, cl.ExpiresAt = rsp.Token, rsp.ExpiresAt
	if cl.FromCookie {
		setSessionCookie(c, rsp.Token, rsp.ExpiresAt)
		return
	}
	c.Header(headerRefreshed, rsp.Token)
	c.Header(headerRefreshedExp, strconv.FormatInt(rsp.ExpiresAt, 10))
}

// unauthenticated answers a request without a valid session: API calls get
// 401 JSON, pages a 303 to the login page that comes back here.
func (g *Gateway) unauthenticated(c *gin.Context, code, msg string) {
	if _, fromCookie := tokenOf(c); fromCookie {
		clearSessionCookie(c)
	}
	if isAPI(c) {
		abortError(c, http.StatusUnauthorized, code, msg)
		return
	}
	// The way back, without a ?token= that failed (it would fail again).
	back := *c.Request.URL
	q := back.Query()
	if q.Has("token") {
		q.Del("token")
		back.RawQuery = q.Encode()
	}
	c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(safeNext(back.RequestURI())))
	c.Abort()
}

// safeNext returns next when it is a path on this site, else "/": no scheme,
// no host, no "//" or "/\" that a browser would read as another host.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

func setSessionCookie(c *gin.Context, token string, expiresAt int64) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/",
		Expires: time.Unix(expiresAt, 0), MaxAge: int(time.Until(time.Unix(expiresAt, 0)).Seconds()),
		HttpOnly: true, Secure: isHTTPS(c), SameSite: http.SameSiteLaxMode,
	})
}

func clearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(c), SameSite: http.SameSiteLaxMode,
	})
}

// setDeviceCookie keeps the device token a login returned (user/device.go):
// sent back with later sign-ins and password changes, it lets this browser
// past lockouts that others' failures caused. SameSite=Strict: only this
// site's own forms need it.
func setDeviceCookie(c *gin.Context, token string, expiresAt int64) {
	if token == "" {
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: deviceCookie, Value: token, Path: "/",
		Expires: time.Unix(expiresAt, 0), MaxAge: int(time.Until(time.Unix(expiresAt, 0)).Seconds()),
		HttpOnly: true, Secure: isHTTPS(c), SameSite: http.SameSiteStrictMode,
	})
}

// deviceToken is the device token a request carries: the body's field when
// given (API clients), else the device cookie.
func deviceToken(c *gin.Context, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	v, _ := c.Cookie(deviceCookie)
	return v
}
