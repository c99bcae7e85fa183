package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"go-micro.dev/v4/client"
)

func TestDeclareRefusesMistakes(t *testing.T) {
	for name, eps := range map[string][]Endpoint{
		"unknown permission": {{Name: "T.A", Access: "users.delete_everything"}},
		"no access":          {{Name: "T.A"}},
		"twice":              {{Name: "T.A", Access: Public}, {Name: "T.A", Access: SignedIn}},
		"not Service.Method": {{Name: "A", Access: Public}},
		"incomplete route":   {{Name: "T.A", Access: Public, Routes: []*Route{{Method: "GET"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Declare accepted %v", eps)
				}
			}()
			Declare("mistake-"+name, eps...)
		})
	}
	Declare("declared-once", Endpoint{Name: "T.A", Access: Public})
	defer func() {
		if recover() == nil {
			t.Errorf("a service declared twice was accepted")
		}
	}()
	Declare("declared-once", Endpoint{Name: "T.B", Access: Public})
}

// The retry rule and the catalogue read the declared tables.
func TestRetryableAndUses(t *testing.T) {
	Declare("retry-test",
		Endpoint{Name: "R.Read", Access: AuditRead, Retry: true},
		Endpoint{Name: "R.Write", Access: ConfigWrite},
	)
	for _, tc := range []struct {
		service, endpoint string
		want              bool
	}{
		{"retry-test", "R.Read", true},
		{"retry-test", "R.Write", false},
		{"retry-test", "R.Missing", false},
		{"no-such-service", "R.Read", false},
	} {
		if got := Retryable(tc.service, tc.endpoint); got != tc.want {
			t.Errorf("Retryable(%s, %s) = %v, want %v", tc.service, tc.endpoint, got, tc.want)
		}
	}
	if uses := Uses(ConfigWrite); !slices.Contains(uses, "R.Write") || slices.Contains(uses, "R.Read") {
		t.Errorf("Uses(config.write) = %v", uses)
	}
	for _, p := range Permissions {
		if !Known(p.Name) || p.Description == "" {
			t.Errorf("catalogue entry %+v", p)
		}
	}
	if Known(Public) || Known(SignedIn) {
		t.Errorf("public and signed_in are not permissions")
	}
}

// fakeInput is an Input with fixed parts.
type fakeInput struct {
	params, query map[string]string
	decodeErr     error
}

func (f fakeInput) Param(n string) string  { return f.params[n] }
func (f fakeInput) Query(n string) string  { return f.query[n] }
func (f fakeInput) DecodeJSON(v any) error { return f.decodeErr }
func (f fakeInput) MediaType() string      { return "application/json" }
func (f fakeInput) Body() ([]byte, error)  { return nil, nil }
func (f fakeInput) Language() string       { return "en" }
func (callClient) String() string          { return "fake" }
func (c callClient) NewRequest(service, endpoint string, req interface{}, _ ...client.RequestOption) client.Request {
	return client.NewRequest(service, endpoint, req)
}

// callClient records the request a route makes and fills the response.
type callClient struct {
	client.Client
	got  *client.Request
	fill func(rsp interface{})
	err  error
}

func (c callClient) Call(_ context.Context, req client.Request, rsp interface{}, _ ...client.CallOption) error {
	*c.got = req
	if c.err != nil {
		return c.err
	}
	c.fill(rsp)
	return nil
}

type req struct{ ID, Q string }
type rsp struct{ N int }

func TestRouteCall(t *testing.T) {
	r := JSON("GET", "/x/:id", 0, func(in Input, r *req) error {
		r.ID, r.Q = in.Param("id"), in.Query("q")
		if r.ID == "bad" {
			return BadInput("bad id")
		}
		return nil
	}, func(r *rsp) any { return map[string]any{"n": r.N} })
	if r.Status != http.StatusOK {
		t.Errorf("status %d, want 200", r.Status)
	}
	var sent client.Request
	c := callClient{got: &sent, fill: func(v interface{}) { v.(*rsp).N = 7 }}
	body, err := r.Call(context.Background(), c, "svc", "Svc.Get", fakeInput{params: map[string]string{"id": "42"}, query: map[string]string{"q": "z"}})
	if err != nil || body.(map[string]any)["n"] != 7 {
		t.Fatalf("Call = %v, %v", body, err)
	}
	if sent.Service() != "svc" || sent.Endpoint() != "Svc.Get" || *sent.Body().(*req) != (req{"42", "z"}) {
		t.Errorf("sent %s %s %+v", sent.Service(), sent.Endpoint(), sent.Body())
	}
	sent = nil
	_, err = r.Call(context.Background(), c, "svc", "Svc.Get", fakeInput{params: map[string]string{"id": "bad"}})
	var bad *InputError
	if !errors.As(err, &bad) || bad.Status != http.StatusBadRequest || sent != nil {
		t.Errorf("bad input: %v, sent %v; want a 400 and no call", err, sent)
	}
	del := NoContent[req, rsp]("DELETE", "/x/:id", 0, nil)
	if del.Status != http.StatusNoContent {
		t.Errorf("a route without a body: status %d, want 204", del.Status)
	}
	if body, err := del.Call(context.Background(), c, "svc", "Svc.Del", fakeInput{}); body != nil || err != nil {
		t.Errorf("Call = %v, %v; want no body", body, err)
	}
}

// TestQueryInts: paging parameters that are absent stay 0; present, they
// must be non-negative integers, else 400 request.bad_param.
func TestQueryInts(t *testing.T) {
	for _, tt := range []struct {
		query       map[string]string
		limit, offs int32
		bad         bool
	}{
		{map[string]string{}, 0, 0, false},
		{map[string]string{"limit": "20", "offset": "40"}, 20, 40, false},
		{map[string]string{"limit": "abc"}, 0, 0, true},
		{map[string]string{"offset": "-5"}, 0, 0, true},
		{map[string]string{"limit": "99999999999"}, 0, 0, true},
	} {
		var limit, offset int32
		err := QueryInts(fakeInput{query: tt.query}, map[string]*int32{"limit": &limit, "offset": &offset})
		var ie *InputError
		if tt.bad {
			if !errors.As(err, &ie) || ie.Status != http.StatusBadRequest || ie.Code != "request.bad_param" {
				t.Errorf("%v: %v, want 400 request.bad_param", tt.query, err)
			}
			continue
		}
		if err != nil || limit != tt.limit || offset != tt.offs {
			t.Errorf("%v: %d %d %v", tt.query, limit, offset, err)
		}
	}
}

// TestPresent: every field is in the rendering, zero values included, under
// its json tag's name; nested structs, slices and nil pointers too.
func TestPresent(t *testing.T) {
	type inner struct {
		On bool `json:"on,omitempty"`
	}
	type outer struct {
		Name     string            `json:"name,omitempty"`
		Disabled bool              `json:"disabled,omitempty"`
		Count    int64             `json:"count,omitempty"`
		Tags     []string          `json:"tags,omitempty"`
		In       *inner            `json:"in,omitempty"`
		Nil      *inner            `json:"nil,omitempty"`
		Meta     map[string]string `json:"meta,omitempty"`
		hidden   int
	}
	got, err := json.Marshal(Present([]*outer{{In: &inner{}, hidden: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"count":0,"disabled":false,"in":{"on":false},"meta":{},"name":"","nil":null,"tags":[]}]`
	if string(got) != want {
		t.Errorf("Present = %s, want %s", got, want)
	}
}
