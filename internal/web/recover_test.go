package web

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestRecoverMiddleware: a panic in a gateway handler is answered 500 with
// the JSON error shape, logged once with its route and stack, and the
// gateway goes on serving.
func TestRecoverMiddleware(t *testing.T) {
	s := settings()
	s.Auth.WhiteList = append(s.Auth.WhiteList, "/api/boom")
	g := newGateway(t, s, newFakeUsers())
	var buf bytes.Buffer
	g.Log = slog.New(slog.NewTextHandler(&buf, nil))
	g.engine.GET("/api/boom", func(*gin.Context) { panic("boom") })

	w := serve(g, get("/api/boom"))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"server.internal"`) || strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("panic answered %d %s, want a 500 internal that does not show the panic", w.Code, w.Body)
	}
	log := buf.String()
	if strings.Count(log, "msg=panic") != 1 || !strings.Contains(log, "route=/api/boom") || !strings.Contains(log, "recover_test.go") {
		t.Errorf("log %q: want one panic line with the route and the stack", log)
	}
	if w := serve(g, get("/healthz")); w.Code != http.StatusOK {
		t.Errorf("after the panic: /healthz %d", w.Code)
	}
}
