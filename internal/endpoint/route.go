package endpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"go-micro.dev/v4/client"
)

// Route exposes an RPC as a route of the gateway's JSON API. The gateway
// serves every route of every table it is given: it authenticates the
// caller, then Call builds the RPC's request from the HTTP request, calls the
// service (which checks the permission itself) and renders the answer.
type Route struct {
	// Method and Path are the HTTP method and the path under /api/v1, in
	// gin's syntax ("/admin/users/:id").
	Method, Path string
	// Status is the status of a success: 200 when zero, or 204 when the
	// route renders no body.
	Status int
	// Out is the type of the JSON body of a success (nil: none).
	Out  reflect.Type
	call func(ctx context.Context, c client.Client, service, name string, in Input) (any, error)
	read func(Input)
}

// Input is what a route reads of an HTTP request. The gateway implements it.
type Input interface {
	// Param is a path parameter (":id").
	Param(name string) string
	// Query is a query parameter.
	Query(name string) string
	// DecodeJSON reads the body, one JSON object, into v; an *InputError
	// says what is wrong with it.
	DecodeJSON(v any) error
	// MediaType is the body's media type, from Content-Type.
	MediaType() string
	// Body is the raw body; an *InputError when it is too large.
	Body() ([]byte, error)
	// Language is the request's language (en or zh-CN), for what the
	// answer says in words.
	Language() string
}

// InputError is a request the gateway refuses before any RPC: the status,
// code and message the client gets.
type InputError struct {
	Status        int
	Code, Message string
}

func (e *InputError) Error() string { return e.Code + ": " + e.Message }

// BadInput is a 400 request.bad_input.
func BadInput(msg string) *InputError {
	return &InputError{Status: http.StatusBadRequest, Code: "request.bad_input", Message: msg}
}

// QueryInts reads non-negative integer query parameters into the fields
// named: an absent one leaves its field 0; one present that is not such an
// integer (limit=abc, offset=-5) is a 400 request.bad_param.
func QueryInts(in Input, fields map[string]*int32) error {
	for name, into := range fields {
		v := in.Query(name)
		if rec, ok := in.(*recorder); ok {
			rec.query[name] = "integer"
		}
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return &InputError{Status: http.StatusBadRequest, Code: "request.bad_param", Message: name + " must be a non-negative integer"}
		}
		*into = int32(n)
	}
	return nil
}

// JSON makes a route whose RPC takes a *Req and answers a *Rsp (protobuf
// messages). bind (nil: nothing) fills the request from the HTTP request;
// render turns the response into the JSON body, an Out: the route's
// documented answer is Out's schema (Schemas), so give it a struct type, not
// a map. status 0 is 200.
func JSON[Req, Rsp, Out any](method, path string, status int, bind func(Input, *Req) error, render func(*Rsp) Out) *Route {
	if status == 0 {
		status = http.StatusOK
	}
	r := route(method, path, status, bind, func(rsp *Rsp) any { return render(rsp) })
	r.Out = reflect.TypeFor[Out]()
	return r
}

// NoContent makes a route like JSON's whose answer has no body: status 0
// is 204.
func NoContent[Req, Rsp any](method, path string, status int, bind func(Input, *Req) error) *Route {
	if status == 0 {
		status = http.StatusNoContent
	}
	return route[Req, Rsp](method, path, status, bind, nil)
}

func route[Req, Rsp any](method, path string, status int, bind func(Input, *Req) error, render func(*Rsp) any) *Route {
	r := &Route{Method: method, Path: path, Status: status}
	r.call = func(ctx context.Context, c client.Client, service, name string, in Input) (any, error) {
		req := new(Req)
		if bind != nil {
			if err := bind(in, req); err != nil {
				return nil, err
			}
		}
		rsp := new(Rsp)
		if err := c.Call(ctx, c.NewRequest(service, name, req), rsp); err != nil {
			return nil, err
		}
		if render == nil {
			return nil, nil
		}
		return render(rsp), nil
	}
	r.read = func(in Input) {
		if bind != nil {
			_ = bind(in, new(Req))
		}
	}
	return r
}

// Reads is what the route reads of a request, found by running its bind on
// a recording Input: the type it decodes the body into (nil: it reads no
// JSON body) and the query parameters it reads, each "string" or "integer".
func (r *Route) Reads() (body reflect.Type, query map[string]string) {
	rec := &recorder{query: map[string]string{}}
	r.read(rec)
	return rec.body, rec.query
}

// recorder is an Input that notes what a bind reads, and gives it nothing.
type recorder struct {
	body  reflect.Type
	query map[string]string
}

func (r *recorder) Param(string) string { return "" }

func (r *recorder) Query(name string) string {
	if r.query[name] == "" {
		r.query[name] = "string"
	}
	return ""
}

func (r *recorder) DecodeJSON(v any) error {
	r.body = reflect.TypeOf(v).Elem()
	return errRecorded
}

func (r *recorder) MediaType() string     { return "application/json" }
func (r *recorder) Body() ([]byte, error) { return nil, errRecorded }
func (r *recorder) Language() string      { return "en" }

var errRecorded = BadInput("recorded")

// Call serves the route for endpoint name of service through c: the JSON
// body to answer (nil: none), or the RPC's error, or an *InputError.
func (r *Route) Call(ctx context.Context, c client.Client, service, name string, in Input) (any, error) {
	return r.call(ctx, c, service, name, in)
}

// Routes lists an endpoint's routes.
func Routes(r ...*Route) []*Route { return r }

// OrEmpty is s, or an empty slice for nil, so that JSON shows [] not null.
func OrEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Present renders v (a protobuf message, a slice of them, ...) for JSON with
// every field present: encoding/json drops protobuf's omitempty fields, so a
// false disabled or a zero count would vanish, and clients would have to
// guess. Field names are the json tags' (the proto names); the schema of a
// Presented[T] (Schemas) is T's with every field required.
func Present[T any](v T) Presented[T] { return Presented[T]{v} }

// Presented is a value that Present renders.
type Presented[T any] struct{ v T }

// MarshalJSON renders the value with every field present.
func (p Presented[T]) MarshalJSON() ([]byte, error) {
	return json.Marshal(present(reflect.ValueOf(p.v)))
}

func (Presented[T]) presentedType() reflect.Type { return reflect.TypeFor[T]() }

func present(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return present(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			m[name] = present(v.Field(i))
		}
		return m
	case reflect.Map:
		m := map[string]any{}
		for it := v.MapRange(); it.Next(); {
			m[fmt.Sprint(it.Key().Interface())] = present(it.Value())
		}
		return m
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Interface()
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = present(v.Index(i))
		}
		return out
	}
	return v.Interface()
}
