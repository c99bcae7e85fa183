package endpoint

import (
	"encoding/json"
	"reflect"
	"testing"
)

type schemaInner struct {
	On bool `json:"on,omitempty"`
}

type schemaBase struct {
	ID string `json:"id"`
}

type schemaOut struct {
	schemaBase
	Name      string                          `json:"name"`
	Note      string                          `json:"note,omitempty"`
	Kind      Permission                      `json:"kind"`
	CreatedAt int64                           `json:"created_at"`
	Count     int32                           `json:"count"`
	Tags      []string                        `json:"tags"`
	Inner     *schemaInner                    `json:"inner"`
	Full      Presented[[]*schemaInner]       `json:"full"`
	Meta      map[string]string               `json:"meta"`
	Raw       json.RawMessage                 `json:"raw"`
	Self      *schemaOut                      `json:"self,omitempty"`
	Skipped   string                          `json:"-"`
	Nested    Presented[map[string]*schemaIn] `json:"nested"`
}

type schemaIn struct {
	Username string  `json:"username" required:"true"`
	Email    string  `json:"email"`
	Disabled *bool   `json:"disabled"`
	Limit    float64 `json:"limit"`
}

// TestSchemas: a type's schema is what encoding/json writes (or reads):
// names from json tags, embedded structs flattened, required unless
// omitempty (for a request: when tagged), pointers nullable, a Permission
// one of the catalogue's, Presented
// values with every field required, named structs as components.
func TestSchemas(t *testing.T) {
	s := NewSchemas()
	out := s.Response(reflect.TypeFor[schemaOut]())
	if out["$ref"] != "#/components/schemas/SchemaOut" {
		t.Fatalf("Response = %v", out)
	}
	got, _ := json.Marshal(s.Components)
	var c map[string]map[string]any
	_ = json.Unmarshal(got, &c)
	want := map[string]string{
		"SchemaOut": `{"additionalProperties":false,"properties":{` +
			`"count":{"format":"int32","type":"integer"},` +
			`"created_at":{"description":"Unix time, seconds","format":"int64","type":"integer"},` +
			`"full":{"items":{"$ref":"#/components/schemas/SchemaInnerFull"},"type":"array"},` +
			`"id":{"type":"string"},` +
			`"inner":{"anyOf":[{"$ref":"#/components/schemas/SchemaInner"},{"type":"null"}]},` +
			`"kind":{"enum":` + mustJSON(All()) + `,"type":"string"},` +
			`"meta":{"additionalProperties":{"type":"string"},"type":"object"},` +
			`"name":{"type":"string"},` +
			`"nested":{"additionalProperties":{"$ref":"#/components/schemas/SchemaIn"},"type":"object"},` +
			`"note":{"type":"string"},` +
			`"raw":{"description":"any JSON value"},` +
			`"self":{"$ref":"#/components/schemas/SchemaOut"},` +
			`"tags":{"items":{"type":"string"},"type":"array"}},` +
			`"required":["id","name","kind","created_at","count","tags","inner","full","meta","raw","nested"],"type":"object"}`,
		"SchemaIn":        `{"additionalProperties":false,"properties":{"disabled":{"anyOf":[{"type":"boolean"},{"type":"null"}]},"email":{"type":"string"},"limit":{"type":"number"},"username":{"type":"string"}},"required":["username","email","disabled","limit"],"type":"object"}`,
		"SchemaInner":     `{"additionalProperties":false,"properties":{"on":{"type":"boolean"}},"required":[],"type":"object"}`,
		"SchemaInnerFull": `{"additionalProperties":false,"properties":{"on":{"type":"boolean"}},"required":["on"],"type":"object"}`,
	}
	for name, w := range want {
		g, _ := json.Marshal(c[name])
		if string(g) != w {
			t.Errorf("%s:\n got %s\nwant %s", name, g, w)
		}
	}
	in := s.Request(reflect.TypeFor[schemaIn]())
	g, _ := json.Marshal(s.Components[in["$ref"].(string)[len("#/components/schemas/"):]])
	const wantIn = `{"additionalProperties":false,"properties":{"disabled":{"type":"boolean"},"email":{"type":"string"},"limit":{"type":"number"},"username":{"type":"string"}},"required":["username"],"type":"object"}`
	if string(g) != wantIn {
		t.Errorf("request:\n got %s\nwant %s", g, wantIn)
	}
}

// TestRouteReads: a route's body type and query parameters are what its
// bind reads, found without a request.
func TestRouteReads(t *testing.T) {
	r := JSON("GET", "/x/:id", 0, func(in Input, r *req) error {
		var b schemaIn
		if err := in.DecodeJSON(&b); err != nil {
			return err
		}
		r.ID, r.Q = in.Param("id"), in.Query("q")
		var n int32
		return QueryInts(in, map[string]*int32{"limit": &n})
	}, func(r *rsp) schemaInner { return schemaInner{} })
	body, query := r.Reads()
	if body != reflect.TypeFor[schemaIn]() || r.Out != reflect.TypeFor[schemaInner]() {
		t.Errorf("body %v, out %v", body, r.Out)
	}
	// The bind stopped at the body: a query read after it is not seen.
	if len(query) != 0 {
		t.Errorf("query %v", query)
	}
	q := NoContent[req, rsp]("DELETE", "/x", 0, func(in Input, r *req) error {
		r.Q = in.Query("q")
		var n int32
		return QueryInts(in, map[string]*int32{"limit": &n})
	})
	if body, query := q.Reads(); body != nil || query["q"] != "string" || query["limit"] != "integer" || q.Out != nil {
		t.Errorf("body %v, query %v, out %v", body, query, q.Out)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
