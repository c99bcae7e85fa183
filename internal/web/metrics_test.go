package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func fromLoopback(r *http.Request) { r.RemoteAddr = "127.0.0.1:40000" }

// A request is counted under its route pattern, not its path; one that
// matches no route under "unmatched".
func TestHTTPRequestsCountedByRoute(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	m := g.Metrics.HTTPRequests
	if w := serve(g, get("/static/style.css")); w.Code != http.StatusOK && w.Code != http.StatusNotFound {
		t.Fatalf("static: %d", w.Code)
	}
	if w := serve(g, get("/api/v1/me", bearer(validToken(t, "s-1")))); w.Code != http.StatusOK {
		t.Fatalf("/api/v1/me: %d %s", w.Code, w.Body)
	}
	serve(g, get("/api/v1/me", bearer(validToken(t, "s-1"))))
	serve(g, get("/no/such/thing/42", bearer(validToken(t, "s-1"))))

	if n := testutil.ToFloat64(m.WithLabelValues("/api/v1/me", "GET", "200")); n != 2 {
		t.Errorf(`portal_http_requests_total{route="/api/v1/me",method="GET",status="200"} = %v, want 2`, n)
	}
	if n := testutil.ToFloat64(m.WithLabelValues("unmatched", "GET", "404")); n != 1 {
		t.Errorf(`portal_http_requests_total{route="unmatched",method="GET",status="404"} = %v, want 1`, n)
	}
	// No series carries a raw path.
	out := serve(g, get("/metrics", fromLoopback)).Body.String()
	if strings.Contains(out, "/no/such/thing/42") || strings.Contains(out, "style.css") {
		t.Errorf("a raw path became a label:\n%s", out)
	}
	if !strings.Contains(out, `route="/static/*filepath"`) {
		t.Errorf("static route not counted by its pattern:\n%s", out)
	}
	if testutil.CollectAndCount(g.Metrics.HTTPDuration, "portal_http_request_duration_seconds") == 0 {
		t.Error("no request duration recorded")
	}
}

// GET /metrics answers Prometheus text to a loopback client, without a token.
func TestMetricsFromLoopback(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	serve(g, get("/healthz"))
	w := serve(g, get("/metrics", fromLoopback))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics from loopback: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus text", ct)
	}
	body := w.Body.String()
	for _, want := range []string{"go_goroutines", "portal_http_requests_total", `route="/healthz"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Anyone not on loopback, or a loopback proxy forwarding someone, is told
// there is no such page, unless MetricsPublic is set.
func TestMetricsHiddenFromOthers(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	for name, mod := range map[string]func(*http.Request){
		"remote":         func(r *http.Request) { r.RemoteAddr = "203.0.113.9:1234" },
		"remote ipv6":    func(r *http.Request) { r.RemoteAddr = "[2001:db8::1]:1234" },
		"loopback proxy": func(r *http.Request) { fromLoopback(r); r.Header.Set("X-Forwarded-For", "203.0.113.9") },
		"forwarded":      func(r *http.Request) { fromLoopback(r); r.Header.Set("Forwarded", "for=203.0.113.9") },
	} {
		w := serve(g, get("/metrics", mod))
		if w.Code != http.StatusNotFound {
			t.Errorf("%s: GET /metrics = %d, want 404", name, w.Code)
		}
		if strings.Contains(w.Body.String(), "go_goroutines") {
			t.Errorf("%s: metrics leaked", name)
		}
	}

	g.MetricsPublic = true
	if w := serve(g, get("/metrics", func(r *http.Request) { r.RemoteAddr = "203.0.113.9:1234" })); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "go_goroutines") {
		t.Errorf("MetricsPublic: GET /metrics from a remote client = %d, want 200 with metrics", w.Code)
	}
}

// The gateway's port serves no profiler, from anywhere.
func TestNoPprofOnGateway(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		w := serve(g, get(path, fromLoopback, bearer(validToken(t, "s-1"))))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, w.Code)
		}
	}
}
