package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/portal-go/portal/internal/testenv/apicheck"
)

// Every response the gateway's tests get from an /api/v1 route is checked
// against the OpenAPI document that gateway serves (serve calls check): a
// body that does not match its schema, an undocumented status or a body
// where the document gives none fails the test that got it.

// testOf is the test each gateway was built for (track).
var testOf sync.Map // *Gateway -> testing.TB

// track makes serve check g's API responses, failing t on a mismatch.
func track(t testing.TB, g *Gateway) *Gateway {
	testOf.Store(g, t)
	return g
}

// loaded are the documents checked so far, by their text: most tests'
// gateways serve the same one.
var loaded sync.Map // string -> *apicheck.Doc

// check checks w, g's answer to r, against g's OpenAPI document.
func check(g *Gateway, r *http.Request, w *httptest.ResponseRecorder) {
	if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
		return
	}
	v, ok := testOf.Load(g)
	if !ok {
		panic("serve: the gateway is not tracked: build it with newGateway or track(t, New(...))")
	}
	t := v.(testing.TB)
	doc, err := documentOf(g)
	if err == nil {
		err = doc.Check(r.Method, r.URL.Path, w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
	}
	if err != nil {
		t.Errorf("apicheck: %v", err)
	}
}

// documentOf is g's document (whatever its whitelist lets through).
func documentOf(g *Gateway) (*apicheck.Doc, error) {
	doc, _ := g.apiDocument()
	text, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	if d, ok := loaded.Load(string(text)); ok {
		return d.(*apicheck.Doc), nil
	}
	d, err := apicheck.Load(text)
	if err != nil {
		return nil, err
	}
	loaded.Store(string(text), d)
	return d, nil
}
