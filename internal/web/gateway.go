// Package web is the gin gateway: HTML pages and the JSON API. Every external
// request enters here; it authenticates the caller, then calls the user and
// system services over go-micro RPC.
package web

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/cache"
	"go-micro.dev/v4/client"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/i18n"
	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/sso"
	oidcpb "github.com/portal-go/portal/proto/oidc"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options are what the gateway needs.
type Options struct {
	Users  userpb.UserService
	System systempb.SystemService
	// Accounts is the user service's profile and recovery calls.
	Accounts userpb.AccountsService
	// Passkeys is the user service's passkey calls (nil: the account page
	// lists none).
	Passkeys userpb.PasskeysService
	// OIDC is the OpenID provider (in the user service) whose HTTP
	// requests the gateway forwards; nil serves none.
	OIDC oidcpb.OIDCService
	// Issuer is the OpenID provider's issuer, shown to admins.
	Issuer string
	// Client calls the services for the JSON routes of Endpoints.
	Client client.Client
	// Endpoints are the tables of the services the gateway calls: each of
	// their routes is served under /api/v1.
	Endpoints []*endpoint.Table
	// Auth verifies tokens; the gateway never mints them (no private key).
	Auth   auth.Auth
	Config *config.Center
	// Cache holds verdicts on sessions, invalidated by session.revoked.
	Cache cache.Cache
	// Readiness reports the gateway's own dependencies (its go-micro
	// service's registry and broker: platform.Service.Readiness) in GET
	// /readyz, beside the services'; nil: none.
	Readiness func(context.Context) (map[string]string, bool)
	// Revocations tells whether session.revoked events reach the gateway
	// now, and since when; nil: always (an in-process broker).
	Revocations RevocationFeed
	Log         *slog.Logger
	// Metrics receive the gateway's request counts and are served at GET
	// /metrics; nil makes a registry of the gateway's own.
	Metrics *platform.Metrics
	// MetricsToken, when set, lets a caller sending it as a bearer token
	// read GET /metrics on the public port; unset, that route is off (404).
	MetricsToken string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (ParseTrustedProxies); none by default.
	TrustedProxies []netip.Prefix
	// HSTSMaxAge is the Strict-Transport-Security max-age in seconds sent
	// on https responses; 0 sends none.
	HSTSMaxAge int
	// Tracer makes each request's server span, whose trace the RPCs the
	// request makes join; nil traces nothing.
	Tracer trace.TracerProvider
}

// templateFuncs are the helpers the pages use.
var templateFuncs = template.FuncMap{
	// when shows unix seconds in the viewer's zone, in the one date format.
	"when": func(zone *time.Location, sec int64) template.HTML {
		if sec == 0 {
			return ""
		}
		t := time.Unix(sec, 0)
		return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `">` + template.HTMLEscapeString(formatTime(t, zone)) + `</time>`)
	},
	"whenms": func(zone *time.Location, ms int64) template.HTML {
		t := time.UnixMilli(ms)
		return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `">` + template.HTMLEscapeString(formatTime(t, zone)) + `</time>`)
	},
	"device":      deviceName,
	"subjectLink": subjectLink,
	"join":        func(s []string) string { return strings.Join(s, ", ") },
	"has":         slices.Contains[[]string],
	"add":         func(a, b int) int { return a + b },
	"sub":         func(a, b int) int { return a - b },
}

// RevocationFeed is the state of the gateway's subscription to
// session.revoked (platform.NATSLink).
type RevocationFeed interface {
	// Live reports whether events published now reach the gateway, and
	// since when they have without a break.
	Live() (since time.Time, live bool)
}

// Gateway serves Portal's HTTP side.
type Gateway struct {
	Options
	engine *gin.Engine
	// doc is the OpenAPI document and its docs page view, made once.
	doc    apiDoc
	tracer trace.Tracer
	// rolesGen counts the role.updated events heard: it is part of the
	// cache key of a session's verdict, whose permissions a role edit
	// makes stale.
	rolesGen atomic.Int64
	// templates holds the pages of each language, parsed when the
	// language is first rendered.
	templates map[string]*pageSet
}

// maxBody bounds every request body.
const maxBody = 64 << 10

// gin's mode is a process-wide variable: set once, not by each New (tests
// build several gateways at once).
func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the gateway and its routes.
func New(o Options) *Gateway {
	if o.Metrics == nil {
		o.Metrics = platform.NewMetrics()
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider()
	}
	g := &Gateway{Options: o, engine: gin.New(), tracer: o.Tracer.Tracer(platform.TraceScope)}
	e := g.engine
	// gin believes no forwarding header: the edge middleware decides the
	// client's address (from trusted proxies only) and hands it to gin's
	// ClientIP through a header it always overwrites.
	_ = e.SetTrustedProxies(nil)
	e.TrustedPlatform = clientHeader
	g.templates = templateSets()
	e.SetHTMLTemplate(g.templates[i18n.English].get())
	// gin would answer /account/ with a redirect before any middleware ran.
	e.RedirectTrailingSlash = false
	e.Use(g.edge, g.trace, g.countRequests, g.logRequests, g.recover, securityHeaders, g.limitBody, crossOrigin, g.locale, g.authenticate)

	static, _ := fs.Sub(staticFS, "static")
	e.StaticFS("/static", http.FS(static))
	e.GET("/healthz", g.healthz)
	e.GET("/readyz", g.readyz)
	e.GET("/metrics", g.metrics)

	e.GET(sso.DiscoveryPath, g.withOIDC, g.openID)
	e.OPTIONS(sso.DiscoveryPath, g.withOIDC, g.openID)
	e.Any(sso.Prefix+"*path", g.withOIDC, g.openID)

	e.GET("/login", g.loginPage)
	e.POST("/login", g.csrf, g.loginForm)
	e.GET("/register", g.registerPage)
	e.POST("/register", g.csrf, g.registerForm)
	// Routes below act for a caller: they need a session even if the
	// whitelist is changed to let their path through.
	e.POST("/logout", g.requireCaller, g.csrf, g.logoutForm)
	e.GET("/", g.requireCaller, g.homePage)
	e.GET("/account", g.requireCaller, g.accountPage)
	e.POST("/account/password", g.requireCaller, g.csrf, g.passwordForm)
	e.POST("/account/sessions/:id/end", g.requireCaller, g.csrf, g.confirmFirst, g.endMySessionForm)
	e.POST("/account/zone", g.requireCaller, g.csrf, g.zoneForm)
	e.POST("/account/apps/:id/revoke", g.withOIDC, g.requireCaller, g.csrf, g.confirmFirst, g.revokeAppForm)
	e.GET(sso.ConsentPath, g.withOIDC, g.requireCaller, g.consentPage)
	e.POST(sso.ConsentPath, g.withOIDC, g.requireCaller, g.csrf, g.consentForm)

	e.POST("/account/tokens", g.requireCaller, g.csrf, g.tokenForm)
	e.POST("/account/tokens/:id/revoke", g.requireCaller, g.csrf, g.confirmFirst, g.revokeTokenForm)

	// Admin pages: each GET needs its permission here (a friendly early
	// refusal); the forms are checked by the service that serves them.
	admin := e.Group("/admin", g.requireCaller)
	admin.GET("", g.adminHome)
	admin.GET("/users", g.needs(endpoint.UsersRead), g.usersPage)
	admin.GET("/users.csv", g.needs(endpoint.UsersRead), g.usersCSV)
	admin.GET("/users/:id", g.needs(endpoint.UsersRead), g.userPage)
	admin.POST("/users/:id/:action", g.csrf, g.confirmFirst, g.userActionForm)
	admin.POST("/sessions/:id/end", g.csrf, g.confirmFirst, g.endSessionForm)
	admin.GET("/roles", g.needs(endpoint.RolesRead), g.rolesPage)
	admin.POST("/roles", g.csrf, g.roleForm)
	admin.POST("/roles/:name", g.csrf, g.confirmFirst, g.roleForm)
	admin.GET("/config", g.needs(endpoint.ConfigRead), g.configPage)
	admin.POST("/config", g.csrf, g.configForm)
	admin.POST("/config/rollback", g.csrf, g.rollbackForm)
	admin.GET("/services", g.needs(endpoint.ServicesRead), g.servicesPage)
	admin.POST("/services/:name/restart", g.csrf, g.confirmFirst, g.restartForm)
	admin.GET("/services/:name/logs", g.needs(endpoint.ServicesRead), g.logsPage)
	admin.GET("/audit", g.needs(endpoint.AuditRead), g.auditPage)
	admin.GET("/audit.csv", g.needs(endpoint.AuditRead), g.auditCSV)
	admin.GET("/lockouts", g.needs(endpoint.UsersRead), g.lockoutsPage)
	admin.POST("/lockouts/lift", g.csrf, g.confirmFirst, g.liftLockoutForm)
	admin.GET("/oidc", g.withOIDC, g.needs(endpoint.ClientsRead), g.clientsPage)
	admin.POST("/oidc", g.withOIDC, g.csrf, g.createClientForm)
	admin.POST("/oidc/:id/:action", g.withOIDC, g.csrf, g.confirmFirst, g.clientActionForm)

	api := e.Group("/api/v1")
	api.POST("/register", g.apiRegister)
	api.POST("/login", g.apiLogin)
	me := api.Group("", g.requireCaller)
	me.POST("/logout", g.apiLogout)
	me.GET("/me", g.apiMe)
	me.PUT("/me/password", g.apiPassword)
	me.GET("/me/sessions", g.apiMySessions)
	me.DELETE("/me/sessions/:id", g.apiEndMySession)
	// Anyone's session: the user service would answer someone else's
	// session as missing to a caller without sessions.revoke; this route
	// says why.
	me.DELETE("/admin/sessions/:id", g.needs(endpoint.SessionsRevoke), g.apiEndSession)
	g.mountEndpoints(api, me)
	e.GET("/api/openapi.json", g.apiOpenAPI)
	e.GET("/api/docs", g.apiDocsPage)
	g.accountRoutes(e, api, me)
	g.passkeyRoutes(e, api)
	me.GET("/me/apps", g.withOIDC, g.apiMyApps)
	me.DELETE("/me/apps/:id", g.withOIDC, g.apiRevokeApp)
	me.GET("/admin/oidc/clients", g.withOIDC, g.needs(endpoint.ClientsRead), g.apiClients)
	me.POST("/admin/oidc/clients", g.withOIDC, g.needs(endpoint.ClientsWrite), g.apiCreateClient)
	me.PATCH("/admin/oidc/clients/:id", g.withOIDC, g.needs(endpoint.ClientsWrite), g.apiPatchClient)
	me.DELETE("/admin/oidc/clients/:id", g.withOIDC, g.needs(endpoint.ClientsWrite), g.apiDeleteClient)

	e.NoRoute(func(c *gin.Context) { g.fail(c, http.StatusNotFound, codeNotFound, "no such page") })
	// A path that exists with another method: 405 with Allow (gin sets the
	// header), not "no such page".
	e.HandleMethodNotAllowed = true
	e.NoMethod(func(c *gin.Context) {
		g.fail(c, http.StatusMethodNotAllowed, codeMethod, "this path does not take "+c.Request.Method)
	})
	return g
}

// Handler returns the gateway as an http.Handler.
func (g *Gateway) Handler() http.Handler { return g.engine }

// OnSessionRevoked is the subscriber of session.revoked: the session's cached
// verdict is replaced by a tombstone, so no request on this gateway passes
// with it again.
func (g *Gateway) OnSessionRevoked(ctx context.Context, ev *userpb.SessionRevoked) error {
	g.revoke(ctx, ev.SessionId)
	return nil
}

// OnUserChanged is the subscriber of user.updated: the user's roles changed,
// so what this gateway cached about the named sessions is dropped and asked
// for again on their next request.
func (g *Gateway) OnUserChanged(ctx context.Context, ev *userpb.UserChanged) error {
	for _, sid := range ev.SessionIds {
		_ = g.Cache.Delete(ctx, g.verdictKey(sid))
	}
	return nil
}

// OnRoleChanged is the subscriber of role.updated: a role's permissions
// changed, so every cached verdict (which lists the caller's permissions)
// is stale. They are left to expire: the cache key changes.
func (g *Gateway) OnRoleChanged(ctx context.Context, ev *userpb.RoleChanged) error {
	g.rolesGen.Add(1)
	return nil
}

func (g *Gateway) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// Checks are the gateway's readiness checks: user and system answer their
// health RPC. The public GET /readyz names the failing ones; the full
// errors are for the metrics address (platform.Service.ReadyHandler).
func (g *Gateway) Checks() []platform.Check {
	return []platform.Check{
		{Name: "user", Fn: func(ctx context.Context) error {
			_, err := g.Users.Health(ctx, &userpb.HealthRequest{})
			return err
		}},
		{Name: "system", Fn: func(ctx context.Context) error {
			_, err := g.System.Health(ctx, &systempb.HealthRequest{})
			return err
		}},
	}
}

// readyz asks each service whether it can reach what it depends on, and
// answers with the names of the checks that fail, never their errors: it
// is public, and an error can name internal addresses.
func (g *Gateway) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks, failing := gin.H{}, []string{}
	note := func(name string, ok bool) {
		checks[name] = "ok"
		if !ok {
			checks[name], failing = "failing", append(failing, name)
		}
	}
	if g.Readiness != nil {
		// The gateway's service runs Checks among its own (mountWeb adds
		// them): user and system by their names, the rest as web's own.
		own, _ := g.Readiness(ctx)
		for k, v := range own {
			if k != "user" && k != "system" {
				k = "web." + k
			}
			note(k, v == "ok")
		}
	} else {
		for _, ch := range g.Checks() {
			note(ch.Name, ch.Fn(ctx) == nil)
		}
	}
	if len(failing) > 0 {
		sort.Strings(failing)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks, "failing": failing})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}
