// Package apicheck holds Portal's JSON API to its own description, in
// tests: Load checks an OpenAPI 3.1 document against the specification's
// JSON Schema (vendored under oas31/), and Check and Transport check a
// response to an /api/v1 request against the document's schema for its
// route, method and status. The gateway's tests check every response they
// serve; the portal tests' HTTP clients go through Transport.
package apicheck

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// oas31 is the OpenAPI 3.1 schema (oas31/README.md says where from).
//
//go:embed oas31/*.json oas31/*/*.json
var oas31 embed.FS

// docURL is where the document under check is known to the compiler.
const docURL = "https://portal.invalid/api/openapi.json"

// Doc is an OpenAPI 3.1 document to check responses against.
type Doc struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	routes   []route

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

// route is a documented path: its template as a pattern whose parameters
// hold no slash, and one whose last may (gin's *key), tried after every
// route's first.
type route struct {
	path           string
	pattern, slash *regexp.Regexp
	params         int
}

var param = regexp.MustCompile(`\{[^}]+\}`)

// Load reads an OpenAPI document, checks it against the OpenAPI 3.1
// schema with its base dialect (every schema in it valid JSON Schema
// 2020-12), and makes it ready for Check.
func Load(data []byte) (*Doc, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("apicheck: the document is not JSON: %w", err)
	}
	if err := validSpec(v); err != nil {
		return nil, err
	}
	doc, _ := v.(map[string]any)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(docURL, v); err != nil {
		return nil, err
	}
	d := &Doc{doc: doc, compiler: c, schemas: map[string]*jsonschema.Schema{}}
	paths, _ := doc["paths"].(map[string]any)
	for p := range paths {
		literal := param.Split(p, -1)
		for i := range literal {
			literal[i] = regexp.QuoteMeta(literal[i])
		}
		re := "^" + strings.Join(literal, `[^/]+`) + "$"
		r := route{path: p, pattern: regexp.MustCompile(re), params: len(literal) - 1}
		if strings.HasSuffix(p, "}") {
			r.slash = regexp.MustCompile(strings.TrimSuffix(re, `[^/]+$`) + `.+$`)
		}
		d.routes = append(d.routes, r)
	}
	// The most literal template first: /me/totp before /me/{id}.
	sort.Slice(d.routes, func(i, j int) bool {
		if d.routes[i].params != d.routes[j].params {
			return d.routes[i].params < d.routes[j].params
		}
		return d.routes[i].path < d.routes[j].path
	})
	return d, nil
}

// validSpec checks a document against the vendored OpenAPI 3.1 schema.
func validSpec(doc any) error {
	c := jsonschema.NewCompiler()
	var base string
	for _, name := range []string{"oas31/schema.json", "oas31/schema-base.json", "oas31/dialect/base.schema.json", "oas31/meta/base.schema.json"} {
		f, err := oas31.Open(name)
		if err != nil {
			return err
		}
		s, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("apicheck: %s: %w", name, err)
		}
		id, _ := s.(map[string]any)["$id"].(string)
		if err := c.AddResource(id, s); err != nil {
			return err
		}
		if name == "oas31/schema-base.json" {
			base = id
		}
	}
	sch, err := c.Compile(base)
	if err != nil {
		return fmt.Errorf("apicheck: the OpenAPI 3.1 schema: %w", err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("apicheck: not a valid OpenAPI 3.1 document: %w", err)
	}
	return nil
}

// Check returns what is wrong with a response to method path (under
// /api/v1; others are not checked): its status must be documented for the
// operation (or by "default"), a body must be there exactly when the
// document gives one, of the media type it names, and a JSON body must
// validate against its schema. A path or method the document does not know
// must have been answered with a documented error.
func (d *Doc) Check(method, path string, status int, contentType string, body []byte) error {
	if !strings.HasPrefix(path, "/api/v1/") {
		return nil
	}
	ptr, err := d.response(method, path, status)
	if err != nil {
		return err
	}
	resp, ptr, err := d.resolve(ptr)
	if err != nil {
		return err
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s %s %d: the document gives no body, the response has %d bytes: %.200s", method, path, status, len(body), body)
		}
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("%s %s %d: Content-Type %q, the document gives %v", method, path, status, contentType, keys(content))
	}
	if mt != "application/json" {
		return nil
	}
	sch, err := d.schema(ptr + "/content/application~1json/schema")
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s %d: the body is not JSON: %v: %.200s", method, path, status, err, body)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %s %d: the body does not match the document: %v\nbody: %.500s", method, path, status, err, body)
	}
	return nil
}

// response is the JSON pointer of the documented response.
func (d *Doc) response(method, path string, status int) (string, error) {
	method = strings.ToLower(method)
	var op map[string]any
	var ptr string
	for _, slash := range []bool{false, true} {
		for _, r := range d.routes {
			if pat := map[bool]*regexp.Regexp{false: r.pattern, true: r.slash}[slash]; op != nil || pat == nil || !pat.MatchString(path) {
				continue
			}
			item, _ := d.doc["paths"].(map[string]any)[r.path].(map[string]any)
			if o, ok := item[method].(map[string]any); ok {
				op, ptr = o, "#/paths/"+escape(r.path)+"/"+method
			}
		}
	}
	if op == nil {
		// Not an operation: the router's 404 or 405, an error.
		if status < 400 {
			return "", fmt.Errorf("%s %s: %d, but the document has no such operation", method, path, status)
		}
		return "#/components/responses/Error", nil
	}
	responses, _ := op["responses"].(map[string]any)
	for _, code := range []string{strconv.Itoa(status), "default"} {
		if _, ok := responses[code]; ok {
			if code == "default" && status < 400 {
				break
			}
			return ptr + "/responses/" + code, nil
		}
	}
	return "", fmt.Errorf("%s %s: status %d is not documented (%v)", method, path, status, keys(responses))
}

// resolve is the object at ptr, following a $ref, and where it is.
func (d *Doc) resolve(ptr string) (map[string]any, string, error) {
	var v any = d.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "#/"), "/") {
		m, _ := v.(map[string]any)
		v = m[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "", fmt.Errorf("apicheck: %s: not in the document", ptr)
	}
	if ref, ok := m["$ref"].(string); ok {
		return d.resolve(ref)
	}
	return m, ptr, nil
}

// schema compiles the schema at ptr, once.
func (d *Doc) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(docURL + ptr)
	if err != nil {
		return nil, fmt.Errorf("apicheck: compile %s: %w", ptr, err)
	}
	d.schemas[ptr] = s
	return s, nil
}

func escape(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Transport wraps base (nil: http.DefaultTransport) so that every response
// to an /api/v1 request is checked against the document the same server
// serves at /api/openapi.json (fetched once per server, and itself checked
// by Load); t.Errorf reports a mismatch, so the test fails. The body stays
// readable for the caller.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base, docs: map[string]*Doc{}}
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
	mu   sync.Mutex
	docs map[string]*Doc
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	rsp, err := tr.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/v1/") {
		return rsp, err
	}
	body, err := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	rsp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return rsp, nil // the caller's read sees the short body
	}
	doc, err := tr.doc(req)
	if err == nil {
		err = doc.Check(req.Method, req.URL.Path, rsp.StatusCode, rsp.Header.Get("Content-Type"), body)
	}
	if err != nil {
		tr.t.Errorf("apicheck: %v", err)
	}
	return rsp, nil
}

// doc is the document of the server req went to.
func (tr *transport) doc(req *http.Request) (*Doc, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if d, ok := tr.docs[req.URL.Host]; ok {
		return d, nil
	}
	u := *req.URL
	u.Path, u.RawQuery = "/api/openapi.json", ""
	get, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	// With the checked request's credentials: a server whose whitelist
	// leaves the document out still serves it to a caller it knows.
	for _, h := range []string{"Authorization", "Cookie"} {
		if v := req.Header.Get(h); v != "" {
			get.Header.Set(h, v)
		}
	}
	rsp, err := tr.base.RoundTrip(get)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.String(), err)
	}
	defer rsp.Body.Close()
	data, err := io.ReadAll(rsp.Body)
	if err != nil || rsp.StatusCode != http.StatusOK {
		return nil, errors.Join(fmt.Errorf("GET %s: %d (a whitelist without /api/openapi.json needs the checked request to carry a token)", u.String(), rsp.StatusCode), err)
	}
	d, err := LoadCached(data)
	if err != nil {
		return nil, err
	}
	tr.docs[req.URL.Host] = d
	return d, nil
}

// loaded are the documents loaded so far, by their text: every server of a
// test binary serves one of a few.
var loaded sync.Map // string -> *Doc

// LoadCached is Load, once per document text (a test binary's servers and
// gateways serve one of a few).
func LoadCached(data []byte) (*Doc, error) {
	if d, ok := loaded.Load(string(data)); ok {
		return d.(*Doc), nil
	}
	d, err := Load(data)
	if err != nil {
		return nil, err
	}
	loaded.Store(string(data), d)
	return d, nil
}
