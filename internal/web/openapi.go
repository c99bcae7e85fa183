package web

import (
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/i18n"
)

// The JSON API describes itself: GET /api/openapi.json is an OpenAPI 3.1
// document built from the router (every /api/v1 route it serves) and the
// services' endpoint tables (each table route's RPC, permission, success
// status, and the schemas of the body its bind decodes and of what its
// render returns); GET /api/docs renders it as a page. The gateway's own
// routes (login, register, the caller's sessions) take their description
// from ownRoutes; a route with none fails TestOpenAPIMatchesRouter. The
// schemas are made from the Go types (endpoint.Schemas), so a route's
// declaration is all it takes; the test suites check every response they
// get against them (internal/testenv/apicheck).

// ownRoute describes a JSON route the gateway serves itself.
type ownRoute struct {
	Summary string
	Access  endpoint.Permission
	Status  int
	// In and Out are the types the handler decodes the body into and
	// writes (nil: none).
	In, Out reflect.Type
	// Media is the success body's media type when it is not JSON.
	Media string
}

// none is the body of a route that reads or writes none.
type none struct{}

// own declares a gateway route that decodes an In and answers an Out (none:
// no body).
func own[In, Out any](summary string, access endpoint.Permission, status int) ownRoute {
	r := ownRoute{Summary: summary, Access: access, Status: status}
	if t := reflect.TypeFor[In](); t != reflect.TypeFor[none]() {
		r.In = t
	}
	if t := reflect.TypeFor[Out](); t != reflect.TypeFor[none]() {
		r.Out = t
	}
	return r
}

// ownRoutes are the gateway's own JSON routes, by "METHOD /path".
var ownRoutes = map[string]ownRoute{
	"POST /api/v1/register":          own[registration, account]("Create an account", endpoint.Public, http.StatusCreated),
	"POST /api/v1/login":             own[loginBody, signedIn]("Sign in: an access token for Authorization: Bearer", endpoint.Public, http.StatusOK),
	"POST /api/v1/logout":            own[none, none]("End the caller's session", endpoint.SignedIn, http.StatusNoContent),
	"GET /api/v1/me":                 own[none, me]("The caller", endpoint.SignedIn, http.StatusOK),
	"PUT /api/v1/me/password":        own[passwordChange, sessionsEnded]("Change the caller's password; their other sessions end", endpoint.SignedIn, http.StatusOK),
	"GET /api/v1/me/sessions":        own[none, sessionList]("The caller's live sessions", endpoint.SignedIn, http.StatusOK),
	"DELETE /api/v1/me/sessions/:id": own[none, none]("End one of the caller's sessions", endpoint.SignedIn, http.StatusNoContent),
	"PATCH /api/v1/me":               own[profilePatch, profile]("Change the caller's profile (absent fields stay)", endpoint.SignedIn, http.StatusOK),
	"GET /api/v1/me/totp/qr.png": {Summary: "The QR code (PNG) of the caller's pending two-factor key", Access: endpoint.SignedIn,
		Status: http.StatusOK, Media: "image/png"},
	"POST /api/v1/email/verify":             own[tokenBody, verified]("Confirm an email address with the mailed link's token", endpoint.Public, http.StatusOK),
	"POST /api/v1/password/forgot":          own[forgotBody, none]("Ask for a password reset link (always 202, whether or not the account exists)", endpoint.Public, http.StatusAccepted),
	"POST /api/v1/password/reset":           own[resetBody, passwordSet]("Set a new password with a reset link's token", endpoint.Public, http.StatusOK),
	"DELETE /api/v1/admin/sessions/:id":     own[none, none]("End anyone's session", endpoint.SessionsRevoke, http.StatusNoContent),
	"POST /api/v1/login/passkey/finish":     own[passkeyLogin, signedIn]("Sign in with a passkey's answer to a begun ceremony", endpoint.Public, http.StatusOK),
	"GET /api/v1/me/apps":                   own[none, appList]("The applications the caller has allowed to sign them in", endpoint.SignedIn, http.StatusOK),
	"DELETE /api/v1/me/apps/:id":            own[none, none]("Withdraw an application's consent; its tokens for the caller end", endpoint.SignedIn, http.StatusNoContent),
	"GET /api/v1/admin/oidc/clients":        own[none, clientList]("The registered OpenID clients", endpoint.ClientsRead, http.StatusOK),
	"POST /api/v1/admin/oidc/clients":       own[newClient, clientJSON]("Register an OpenID client; the answer holds its secret, once", endpoint.ClientsWrite, http.StatusCreated),
	"PATCH /api/v1/admin/oidc/clients/:id":  own[clientPatch, clientJSON]("Disable or enable a client, or rotate its secret", endpoint.ClientsWrite, http.StatusOK),
	"DELETE /api/v1/admin/oidc/clients/:id": own[none, none]("Delete a client and every token issued to it", endpoint.ClientsWrite, http.StatusNoContent),
}

// operation is one API operation, for the document and the docs page.
type operation struct {
	Method, Path, Summary, RPC string
	Access                     endpoint.Permission
	Status                     int
	In, Out                    reflect.Type
	Media                      string
	// Query are the query parameters read: those the route declares
	// (WithQuery), else those its bind was seen to read.
	Query []endpoint.Param
}

var (
	ginParam  = regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	pathParam = regexp.MustCompile(`\{([A-Za-z_]+)\}`)
)

// operations lists the API's operations, sorted by path and method: every
// /api/v1 route of the router, described by its table or ownRoutes.
func (g *Gateway) operations() []operation {
	tabled := map[string]operation{}
	for _, t := range g.Endpoints {
		for _, e := range t.Endpoints {
			for _, r := range e.Routes {
				in, read := r.Reads()
				query := r.Query
				if query == nil {
					for _, name := range slices.Sorted(maps.Keys(read)) {
						query = append(query, endpoint.Param{Name: name, Integer: read[name] == "integer"})
					}
				}
				tabled[r.Method+" /api/v1"+r.Path] = operation{RPC: e.Name, Access: e.Access, Status: r.Status, Summary: e.Name,
					In: in, Out: r.Out, Query: query}
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
			if own, known := ownRoutes[key]; known {
				op = operation{Summary: own.Summary, Access: own.Access, Status: own.Status, In: own.In, Out: own.Out, Media: own.Media}
			} // else undocumented: the test names it
		}
		op.Method, op.Path = ri.Method, ginParam.ReplaceAllString(ri.Path, "{$1}")
		if op.Status == 0 {
			op.Status = http.StatusOK
		}
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

// apiErrorCodes are the codes of every API error: those with a message
// "error.<area>.<reason>" in the catalogue, which holds one for each code the
// code base answers with and no other (TestErrorCodes, TestOpenAPISchemas).
func apiErrorCodes() []string {
	var codes []string
	for _, id := range i18n.Keys(i18n.English) {
		if code, ok := strings.CutPrefix(id, "error."); ok && strings.Contains(code, ".") {
			codes = append(codes, code)
		}
	}
	return codes
}

// apiDoc is the document and the docs page's view of it, made once: the
// router and the tables do not change once the gateway serves.
type apiDoc struct {
	once sync.Once
	doc  map[string]any
	ops  []opView
}

func (g *Gateway) apiDocument() (map[string]any, []opView) {
	g.doc.once.Do(func() { g.doc.doc, g.doc.ops = g.buildOpenAPI() })
	return g.doc.doc, g.doc.ops
}

// buildOpenAPI makes the OpenAPI 3.1 document of the JSON API and the docs
// page's view of each operation.
func (g *Gateway) buildOpenAPI() (map[string]any, []opView) {
	schemas := endpoint.NewSchemas()
	paths := map[string]any{}
	ops := g.operations()
	type bodies struct{ in, out map[string]any }
	made := make([]bodies, len(ops))
	for i, op := range ops {
		item, _ := paths[op.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.Query {
			params = append(params, queryParam(q))
		}
		ok := map[string]any{"description": http.StatusText(op.Status)}
		switch {
		case op.Media != "":
			ok["content"] = map[string]any{op.Media: map[string]any{}}
		case op.Out != nil:
			made[i].out = schemas.Response(op.Out)
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": made[i].out}}
		}
		errRef := map[string]any{"$ref": "#/components/responses/Error"}
		o := map[string]any{
			"summary":      op.Summary,
			"operationId":  op.ID(),
			"x-permission": string(op.Access),
			"responses":    map[string]any{strconv.Itoa(op.Status): ok, "400": errRef, "401": errRef, "403": errRef, "404": errRef, "429": errRef, "default": errRef},
		}
		if op.In != nil {
			made[i].in = schemas.Request(op.In)
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": made[i].in}}}
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
	codes := []any{}
	for _, c := range apiErrorCodes() {
		codes = append(codes, c)
	}
	schemas.Components["Error"] = map[string]any{
		"type": "object", "required": []any{"code", "message"}, "additionalProperties": false,
		"properties": map[string]any{
			"code":    map[string]any{"type": "string", "enum": codes, "description": "stable, <area>.<reason>; see docs/errors.md"},
			"message": map[string]any{"type": "string", "description": "in the request's language"},
		},
	}
	views := make([]opView, len(ops))
	for i, op := range ops {
		views[i] = opView{operation: op, Request: fieldRows(schemas.Components, made[i].in), Response: fieldRows(schemas.Components, made[i].out)}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "Portal JSON API", "version": "1"},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an access token from POST /api/v1/login, or an API key"}},
			"schemas":         schemas.Components,
			"responses": map[string]any{"Error": map[string]any{
				"description": "an error",
				"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
			}},
		},
	}, views
}

// ID names the operation: its operationId, and its anchor on the docs page.
func (op operation) ID() string {
	return strings.ToLower(op.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_").Replace(strings.TrimPrefix(op.Path, "/api/v1"))
}

// queryParam is a declared query parameter as an OpenAPI parameter.
func queryParam(p endpoint.Param) map[string]any {
	schema := map[string]any{"type": "string"}
	switch {
	case p.Integer:
		schema = map[string]any{"type": "integer", "minimum": 0}
	case len(p.Enum) > 0:
		schema["enum"] = p.Enum
	}
	return map[string]any{"name": p.Name, "in": "query", "description": p.Description, "schema": schema}
}

// opView is an operation as the docs page shows it: its fields, flattened.
type opView struct {
	operation
	Request, Response []fieldRow
}

// fieldRow is one field of a body: its path (users[].id), its type in
// words, whether it is always there (a response) or must be sent (a
// request).
type fieldRow struct {
	Name, Type string
	Required   bool
}

// fieldRows flattens schema (nil: none) into rows, following $refs into
// components; a type that holds itself stops at the second level.
func fieldRows(components map[string]any, schema map[string]any) []fieldRow {
	var rows []fieldRow
	var walk func(prefix string, s map[string]any, depth int)
	walk = func(prefix string, s map[string]any, depth int) {
		s = deref(components, s)
		if depth > 6 {
			return
		}
		switch {
		case s["type"] == "array":
			items, _ := s["items"].(map[string]any)
			walk(prefix+"[]", items, depth+1)
		case s["type"] == "object":
			props, _ := s["properties"].(map[string]any)
			var required []any
			required, _ = s["required"].([]any)
			for _, name := range slices.Sorted(maps.Keys(props)) {
				p, _ := props[name].(map[string]any)
				full := name
				if prefix != "" {
					full = prefix + "." + name
				}
				rows = append(rows, fieldRow{Name: full, Type: typeWords(components, p), Required: slices.Contains(required, any(name))})
				walk(full, p, depth+1)
			}
		}
	}
	if schema != nil {
		walk("", schema, 0)
	}
	return rows
}

// deref follows a $ref and a nullable's anyOf to the schema meant.
func deref(components map[string]any, s map[string]any) map[string]any {
	for range 4 {
		if ref, ok := s["$ref"].(string); ok {
			s, _ = components[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			continue
		}
		if alts, ok := s["anyOf"].([]any); ok && len(alts) > 0 {
			s, _ = alts[0].(map[string]any)
			continue
		}
		break
	}
	return s
}

// typeWords says a schema's type the way the docs page shows it.
func typeWords(components map[string]any, s map[string]any) string {
	_, nullable := s["anyOf"]
	s = deref(components, s)
	var w string
	switch t, _ := s["type"].(string); t {
	case "array":
		items, _ := s["items"].(map[string]any)
		w = typeWords(components, items) + "[]"
	case "integer":
		w = "integer"
		if d, _ := s["description"].(string); d == "Unix time, seconds" {
			w = "integer (Unix seconds)"
		}
	case "":
		w = "any"
	default:
		w = t
	}
	if e, ok := s["enum"].([]any); ok {
		var vs []string
		for _, v := range e {
			vs = append(vs, v.(string))
		}
		w += ": " + strings.Join(vs, " | ")
	}
	if nullable {
		w += " | null"
	}
	return w
}

func (g *Gateway) apiOpenAPI(c *gin.Context) {
	doc, _ := g.apiDocument()
	c.JSON(http.StatusOK, doc)
}

func (g *Gateway) apiDocsPage(c *gin.Context) {
	_, ops := g.apiDocument()
	g.page(c, http.StatusOK, "api_docs.html", gin.H{"Ops": ops})
}
