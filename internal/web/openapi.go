package web

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"
)

// The JSON API describes itself: GET /api/openapi.json is an OpenAPI 3.1
// document built from the router (every /api/v1 route it serves) and the
// services' endpoint tables (each table route's RPC, permission and success
// status); GET /api/docs renders it as a page. The gateway's own routes
// (login, register, the caller's sessions) take their description from
// ownRoutes; a route with none fails TestOpenAPIMatchesRouter.

// ownRoute describes a JSON route the gateway serves itself.
type ownRoute struct {
	Summary string
	Access  endpoint.Permission
	Status  int
}

// ownRoutes are the gateway's own JSON routes, by "METHOD /path".
var ownRoutes = map[string]ownRoute{
	"POST /api/v1/register":                 {"Create an account: {username, password} → 201 {id, username}", endpoint.Public, http.StatusCreated},
	"POST /api/v1/login":                    {"Sign in: {username, password, device_token?} → {token, expires_at, device_token, device_expires_at}", endpoint.Public, http.StatusOK},
	"POST /api/v1/logout":                   {"End the caller's session", endpoint.SignedIn, http.StatusNoContent},
	"GET /api/v1/me":                        {"The caller: {id, username, roles}", endpoint.SignedIn, http.StatusOK},
	"PUT /api/v1/me/password":               {"Change the caller's password: {old_password, new_password} → {sessions_ended}", endpoint.SignedIn, http.StatusOK},
	"GET /api/v1/me/sessions":               {"The caller's live sessions", endpoint.SignedIn, http.StatusOK},
	"DELETE /api/v1/me/sessions/:id":        {"End one of the caller's sessions", endpoint.SignedIn, http.StatusNoContent},
	"PATCH /api/v1/me":                      {"Change the caller's profile: {display_name?, email?}", endpoint.SignedIn, http.StatusOK},
	"GET /api/v1/me/totp/qr.png":            {"The QR code (PNG) of the caller's pending two-factor key", endpoint.SignedIn, http.StatusOK},
	"POST /api/v1/email/verify":             {"Confirm an email address: {token}", endpoint.Public, http.StatusOK},
	"POST /api/v1/password/forgot":          {"Ask for a password reset link: {login} (always 202, whether or not the account exists)", endpoint.Public, http.StatusAccepted},
	"POST /api/v1/password/reset":           {"Set a new password with a reset link's token: {token, new_password}", endpoint.Public, http.StatusOK},
	"DELETE /api/v1/admin/sessions/:id":     {"End anyone's session", endpoint.SessionsRevoke, http.StatusNoContent},
	"POST /api/v1/login/passkey/begin":      {"Begin signing in with a passkey: → {ceremony, publicKey} (the options of navigator.credentials.get)", endpoint.Public, http.StatusOK},
	"POST /api/v1/login/passkey/finish":     {"Sign in with a passkey: {ceremony, credential, device_token?} → {token, expires_at, device_token, device_expires_at}", endpoint.Public, http.StatusOK},
	"GET /api/v1/me/apps":                   {"The applications the caller has allowed to sign them in: {apps: [{client_id, name, given}]}", endpoint.SignedIn, http.StatusOK},
	"DELETE /api/v1/me/apps/:id":            {"Withdraw an application's consent; its tokens for the caller end", endpoint.SignedIn, http.StatusNoContent},
	"GET /api/v1/admin/oidc/clients":        {"The registered OpenID clients: {clients}", endpoint.ClientsRead, http.StatusOK},
	"POST /api/v1/admin/oidc/clients":       {"Register an OpenID client: {name, redirect_uris, ...} → 201 the client (with its secret, once)", endpoint.ClientsWrite, http.StatusCreated},
	"PATCH /api/v1/admin/oidc/clients/:id":  {"Disable/enable a client or rotate its secret: {disabled?, rotate_secret?}", endpoint.ClientsWrite, http.StatusOK},
	"DELETE /api/v1/admin/oidc/clients/:id": {"Delete a client and every token issued to it", endpoint.ClientsWrite, http.StatusNoContent},
}

// operation is one API operation, for the document and the docs page.
type operation struct {
	Method, Path, Summary, RPC string
	Access                     endpoint.Permission
	Status                     int
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// operations lists the API's operations, sorted by path and method: every
// /api/v1 route of the router, described by its table or ownRoutes.
func (g *Gateway) operations() []operation {
	tabled := map[string]operation{}
	for _, t := range g.Endpoints {
		for _, e := range t.Endpoints {
			for _, r := range e.Routes {
				tabled[r.Method+" /api/v1"+r.Path] = operation{RPC: e.Name, Access: e.Access, Status: r.Status, Summary: e.Name}
			}
		}
	}
	var ops []operation
	for _, ri := range g.engine.Routes() {
		if !strings.HasPrefix(ri.Path, "/api/v1/") {
			continue
		}
		key := ri.Method + " " + ri.Path
		op, ok := tabled[key]
		if !ok {
			own, known := ownRoutes[key]
			if !known {
				op = operation{Summary: ""} // undocumented: the test names it
			} else {
				op = operation{Summary: own.Summary, Access: own.Access, Status: own.Status}
			}
		}
		op.Method, op.Path = ri.Method, ginParam.ReplaceAllString(ri.Path, "{$1}")
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops
}

// openAPI is the OpenAPI 3.1 document of the JSON API.
func (g *Gateway) openAPI() map[string]any {
	paths := map[string]any{}
	for _, op := range g.operations() {
		item, _ := paths[op.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		var params []any
		for _, m := range regexp.MustCompile(`\{([A-Za-z_]+)\}`).FindAllStringSubmatch(op.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		status := op.Status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		if status != http.StatusNoContent {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		errRef := map[string]any{"$ref": "#/components/responses/Error"}
		o := map[string]any{
			"summary":      op.Summary,
			"operationId":  strings.ToLower(op.Method) + strings.NewReplacer("/", "_", "{", "", "}", "").Replace(strings.TrimPrefix(op.Path, "/api/v1")),
			"x-permission": string(op.Access),
			"responses":    map[string]any{itoa(status): ok, "400": errRef, "401": errRef, "403": errRef, "404": errRef, "429": errRef, "default": errRef},
		}
		if op.RPC != "" {
			o["x-rpc"] = op.RPC
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.Access != endpoint.Public {
			o["security"] = []any{map[string]any{"bearer": []any{}}}
		}
		item[strings.ToLower(op.Method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "Portal JSON API", "version": "1"},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an access token from POST /api/v1/login, or an API key"}},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object", "required": []any{"code", "message"}, "additionalProperties": false,
				"properties": map[string]any{
					"code":    map[string]any{"type": "string", "pattern": `^[a-z]+\.[a-z_]+$`, "description": "stable, <area>.<reason>; see docs/errors.md"},
					"message": map[string]any{"type": "string", "description": "in the request's language"},
				},
			}},
			"responses": map[string]any{"Error": map[string]any{
				"description": "an error",
				"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
			}},
		},
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func (g *Gateway) apiOpenAPI(c *gin.Context) { c.JSON(http.StatusOK, g.openAPI()) }

func (g *Gateway) apiDocsPage(c *gin.Context) {
	g.page(c, http.StatusOK, "api_docs.html", gin.H{"Ops": g.operations()})
}
