package apicheck

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const doc = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/api/v1/things/{id}": {
      "get": {
        "responses": {
          "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
          "default": {"$ref": "#/components/responses/Error"}
        }
      },
      "delete": {"responses": {"204": {"description": "No Content"}, "default": {"$ref": "#/components/responses/Error"}}}
    },
    "/api/v1/keys/{kind}/{key}": {
      "delete": {"responses": {"204": {"description": "No Content"}}}
    },
    "/api/v1/keys/{kind}/{key}/uses": {
      "get": {"responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "array"}}}}}}
    },
    "/api/v1/qr.png": {
      "get": {"responses": {"200": {"description": "OK", "content": {"image/png": {}}}}}
    }
  },
  "components": {
    "schemas": {
      "Thing": {"type": "object", "required": ["id", "on"], "additionalProperties": false,
        "properties": {"id": {"type": "string"}, "on": {"type": "boolean"}}},
      "Error": {"type": "object", "required": ["code", "message"], "additionalProperties": false,
        "properties": {"code": {"type": "string", "enum": ["request.not_found"]}, "message": {"type": "string"}}}
    },
    "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
  }
}`

// TestCheck: a response passes only when its status, media type and body
// are the document's for its operation.
func TestCheck(t *testing.T) {
	d, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	const js = "application/json; charset=utf-8"
	for _, tc := range []struct {
		name, method, path string
		status             int
		ctype, body        string
		bad                string // in the error; "" for none
	}{
		{"valid", "GET", "/api/v1/things/1", 200, js, `{"id":"1","on":false}`, ""},
		{"missing field", "GET", "/api/v1/things/1", 200, js, `{"id":"1"}`, "on"},
		{"extra field", "GET", "/api/v1/things/1", 200, js, `{"id":"1","on":true,"x":1}`, "x"},
		{"wrong type", "GET", "/api/v1/things/1", 200, js, `{"id":1,"on":true}`, "id"},
		{"null for a list", "GET", "/api/v1/things/1", 200, js, `null`, "does not match"},
		{"error", "GET", "/api/v1/things/1", 404, js, `{"code":"request.not_found","message":"no"}`, ""},
		{"unknown code", "GET", "/api/v1/things/1", 404, js, `{"code":"bad_request","message":"no"}`, "code"},
		{"undocumented status", "DELETE", "/api/v1/keys/ip/1", 200, js, `{}`, "not documented"},
		{"no body", "DELETE", "/api/v1/things/1", 204, "", "", ""},
		{"a body where none", "DELETE", "/api/v1/things/1", 204, js, `{}`, "no body"},
		{"key with slashes", "DELETE", "/api/v1/keys/ip/2001:db8::/64", 204, "", "", ""},
		{"a literal path after a parameter", "GET", "/api/v1/keys/ip/1/uses", 200, js, `[]`, ""},
		{"not JSON", "GET", "/api/v1/things/1", 200, "text/html", "<p>", "Content-Type"},
		{"png", "GET", "/api/v1/qr.png", 200, "image/png", "\x89PNG", ""},
		{"no such path: an error", "GET", "/api/v1/nowhere", 404, js, `{"code":"request.not_found","message":"no"}`, ""},
		{"no such path: a success", "GET", "/api/v1/nowhere", 200, js, `{}`, "no such operation"},
		{"not the API", "GET", "/login", 200, "text/html", "<p>", ""},
	} {
		err := d.Check(tc.method, tc.path, tc.status, tc.ctype, []byte(tc.body))
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.bad)
		}
	}
}

// TestLoadRefusesInvalidDocuments: what the OpenAPI 3.1 schema refuses.
func TestLoadRefusesInvalidDocuments(t *testing.T) {
	for name, d := range map[string]string{
		"not JSON":          `{`,
		"no info":           `{"openapi": "3.1.0", "paths": {}}`,
		"3.0":               strings.Replace(doc, `"3.1.0"`, `"3.0.3"`, 1),
		"bad schema":        strings.Replace(doc, `"type": "boolean"`, `"type": "bool"`, 1),
		"response no descr": strings.Replace(doc, `"204": {"description": "No Content"}, "default"`, `"204": {}, "default"`, 1),
	} {
		if _, err := Load([]byte(d)); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

// TestTransport: a mismatching response fails the test through the
// transport, and the caller still reads the body.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/openapi.json":
			_, _ = w.Write([]byte(doc))
		case "/api/v1/things/good":
			_, _ = w.Write([]byte(`{"id":"good","on":true}`))
		default:
			_, _ = w.Write([]byte(`{"id":"bad"}`))
		}
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	c := &http.Client{Transport: Transport(rec, nil)}
	for _, path := range []string{"/api/v1/things/good", "/api/v1/things/bad"} {
		rsp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = io.Copy(&b, rsp.Body)
		rsp.Body.Close()
		if !strings.Contains(b.String(), `"id"`) {
			t.Errorf("%s: the caller read %q", path, b.String())
		}
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "/api/v1/things/bad") {
		t.Errorf("reported %q, want one mismatch, of /things/bad", rec.errors)
	}
}

// recorder is a testing.TB that keeps what Errorf says.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestTransportCarriesCredentials: a server that serves its document only to
// a caller it knows (a whitelist without /api/openapi.json) is still
// checked, with the checked request's token.
func TestTransportCarriesCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"code":"auth.unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/openapi.json" {
			_, _ = w.Write([]byte(doc))
			return
		}
		_, _ = w.Write([]byte(`{"id":"bad"}`))
	}))
	defer srv.Close()
	rec := &recorder{TB: t}
	c := &http.Client{Transport: Transport(rec, nil)}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/things/bad", nil)
	req.Header.Set("Authorization", "Bearer k")
	rsp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "/api/v1/things/bad") || strings.Contains(rec.errors[0], "401") {
		t.Errorf("reported %q, want one mismatch, of /things/bad (the document fetched with the token)", rec.errors)
	}
}
