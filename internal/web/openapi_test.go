package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/system"
	"github.com/portal-go/portal/internal/testenv/apicheck"
	"github.com/portal-go/portal/internal/user"
)

// TestOpenAPIMatchesRouter: GET /api/openapi.json is OpenAPI 3.1 with one
// operation for each /api/v1 route the router serves, and none other; every
// operation has a description and a permission; each table route carries its
// RPC. A route added without a description fails here.
func TestOpenAPIMatchesRouter(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	g2 := track(t, New(Options{Users: g.Users, System: g.System, Auth: g.Auth, Config: g.Config, Cache: g.Cache, Log: g.Log,
		Endpoints: []*endpoint.Table{user.Endpoints, system.Endpoints}}))
	w := serve(g2, get("/api/openapi.json"))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: %d %s", w.Code, w.Body)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("not an OpenAPI 3.1 document: %v %.200s", err, w.Body)
	}
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	routes := map[string]bool{}
	for _, r := range g2.engine.Routes() {
		if strings.HasPrefix(r.Path, "/api/v1/") {
			routes[strings.ToLower(r.Method)+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for method, op := range item {
			key := method + " " + path
			documented[key] = true
			if !routes[key] {
				t.Errorf("%s is documented but not served", key)
			}
			if s, _ := op["summary"].(string); s == "" {
				t.Errorf("%s has no description: add it to its endpoint table or ownRoutes", key)
			}
			if p, _ := op["x-permission"].(string); p == "" {
				t.Errorf("%s names no permission", key)
			}
		}
	}
	for key := range routes {
		if !documented[key] {
			t.Errorf("%s is served but not documented", key)
		}
	}
	if len(routes) < 20 {
		t.Fatalf("only %d API routes: the tables were not mounted", len(routes))
	}
	if op := doc.Paths["/api/v1/admin/users"]["get"]; op["x-rpc"] != "User.ListUsers" || op["x-permission"] != "users.read" {
		t.Errorf("GET /api/v1/admin/users: %v", op)
	}
	if w := serve(g2, get("/api/docs")); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "GET /api/v1/admin/users") {
		t.Errorf("GET /api/docs: %d", w.Code)
	}
}

// TestOpenAPISchemas: the document is valid OpenAPI 3.1 (the
// specification's schema, with every schema in it valid JSON Schema); every
// operation that answers JSON names the shape of its answer (a route whose
// render returns a map or any fails here), every body it reads too; the
// schemas say what the Go types say; the error codes are exactly those the
// code answers with.
func TestOpenAPISchemas(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	g2 := track(t, New(Options{Users: g.Users, System: g.System, Auth: g.Auth, Config: g.Config, Cache: g.Cache, Log: g.Log,
		Endpoints: []*endpoint.Table{user.Endpoints, system.Endpoints}}))
	text := serve(g2, get("/api/openapi.json")).Body.Bytes()
	if _, err := apicheck.Load(text); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	component := func(s any) map[string]any {
		m, _ := s.(map[string]any)
		ref, _ := m["$ref"].(string)
		return doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
	}
	at := func(v any, path ...string) any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			for status, r := range op["responses"].(map[string]any) {
				if status[0] != '2' {
					continue
				}
				content, _ := at(r, "content").(map[string]any)
				if content == nil || content["image/png"] != nil { // no body, or not JSON
					continue
				}
				if props, _ := component(at(content, "application/json", "schema"))["properties"].(map[string]any); len(props) == 0 {
					t.Errorf("%s %s: %s answers no named shape: give its render a struct type", method, path, status)
				}
			}
			if body := at(op, "requestBody", "content", "application/json", "schema"); body != nil {
				if _, ok := body.(map[string]any)["description"]; !ok && len(component(body)) == 0 && at(body, "type") != "object" {
					t.Errorf("%s %s: a request body of no shape: %v", method, path, body)
				}
			}
		}
	}
	// What the Go types say, where it matters to clients.
	users := component(at(doc.Paths["/api/v1/admin/users"]["get"], "responses", "200", "content", "application/json", "schema"))
	account := component(at(users, "properties", "users", "items"))
	if at(account, "properties", "disabled", "type") != "boolean" || !slices.Contains(account["required"].([]any), any("disabled")) ||
		at(account, "properties", "created_at", "type") != "integer" {
		t.Errorf("an account in GET /admin/users: %v", account)
	}
	if q := doc.Paths["/api/v1/admin/users"]["get"]["parameters"]; !strings.Contains(fmt.Sprint(q), "limit") || !strings.Contains(fmt.Sprint(q), "integer") {
		t.Errorf("GET /admin/users parameters: %v", q)
	}
	login := component(at(doc.Paths["/api/v1/login"]["post"], "requestBody", "content", "application/json", "schema"))
	if fmt.Sprint(login["required"]) != "[username password]" || at(login, "additionalProperties") != false {
		t.Errorf("POST /login body: %v", login)
	}
	// The code enum is the code's error table.
	var codes []string
	for _, c := range at(doc.Components.Schemas["Error"], "properties", "code", "enum").([]any) {
		codes = append(codes, c.(string))
	}
	if want := slices.Sorted(maps.Keys(errorCodes(t))); !slices.Equal(codes, want) {
		t.Errorf("the Error schema's codes are\n%v\nthe code answers with\n%v", codes, want)
	}
}

// errorSchema is the document's Error schema, checked against real error
// responses below: exactly code and message, both strings, the code
// <area>.<reason>.
var errorCodeShape = regexp.MustCompile(`^[a-z]+\.[a-z_]+$`)

// TestErrorsMatchSchema: real error responses of the gateway (405, 400,
// 401, 404, 415) validate against the document's Error schema.
func TestErrorsMatchSchema(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required             []string       `json:"required"`
				AdditionalProperties bool           `json:"additionalProperties"`
				Properties           map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(serve(g, get("/api/openapi.json")).Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["Error"]
	bad := postJSON("/api/v1/login", `{}`)
	bad.Header.Set("Content-Type", "text/plain")
	for name, r := range map[string]*http.Request{
		"405": get("/api/v1/login"), "400": postJSON("/api/v1/login", `{}`), "401": get("/api/v1/me"),
		"404": get("/api/v1/nowhere"), "415": bad, "400 json": postJSON("/api/v1/login", `{"x":1}`),
	} {
		var body map[string]any
		if err := json.Unmarshal(serve(g, r).Body.Bytes(), &body); err != nil {
			t.Errorf("%s: not JSON: %v", name, err)
			continue
		}
		for _, f := range schema.Required {
			if s, ok := body[f].(string); !ok || s == "" {
				t.Errorf("%s: required %s missing or not a string in %v", name, f, body)
			}
		}
		for f := range body {
			if _, ok := schema.Properties[f]; !ok && !schema.AdditionalProperties {
				t.Errorf("%s: field %s not in the schema", name, f)
			}
		}
		if c, _ := body["code"].(string); !errorCodeShape.MatchString(c) {
			t.Errorf("%s: code %q is not <area>.<reason>", name, c)
		}
	}
}
