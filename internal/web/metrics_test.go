package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func fromLoopback(r *http.Request) { r.RemoteAddr = "127.0.0.1:40000" }

// testMetricsToken opens /metrics on gateways made by metricsGateway.
const testMetricsToken = "metrics-token-for-tests"

func metricsGateway(t *testing.T) *Gateway {
	t.Helper()
	g := newGateway(t, settings(), newFakeUsers())
	g.MetricsToken = testMetricsToken
	return g
}

func withMetricsToken(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testMetricsToken) }

// A request is counted under its route pattern, not its path; one that
// matches no route under "unmatched".
func TestHTTPRequestsCountedByRoute(t *testing.T) {
	g := metricsGateway(t)
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
	out := serve(g, get("/metrics", withMetricsToken)).Body.String()
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

// GET /metrics answers Prometheus text to the bearer of the metrics token,
// from any address.
func TestMetricsWithToken(t *testing.T) {
	g := metricsGateway(t)
	serve(g, get("/healthz"))
	w := serve(g, get("/metrics", withMetricsToken, func(r *http.Request) { r.RemoteAddr = "203.0.113.9:1234" }))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics with the token: %d %s", w.Code, w.Body)
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

// Without the token (or with none configured) there is no such page, from
// loopback too: a same-host proxy would make anyone look local.
func TestMetricsNeedToken(t *testing.T) {
	g := metricsGateway(t)
	for name, mod := range map[string]func(*http.Request){
		"no token, loopback": fromLoopback,
		"no token, remote":   func(r *http.Request) { r.RemoteAddr = "203.0.113.9:1234" },
		"wrong token":        func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testMetricsToken+"x") },
		"token's prefix":     func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testMetricsToken[:5]) },
		"other scheme":       func(r *http.Request) { r.Header.Set("Authorization", "Basic "+testMetricsToken) },
		"empty bearer":       func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") },
		"query token":        func(r *http.Request) { r.URL.RawQuery = "token=" + testMetricsToken },
	} {
		w := serve(g, get("/metrics", mod))
		if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "go_goroutines") {
			t.Errorf("%s: GET /metrics = %d, want 404 and no metrics", name, w.Code)
		}
	}
	g.MetricsToken = ""
	for name, mod := range map[string]func(*http.Request){"loopback": fromLoopback, "empty bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }} {
		if w := serve(g, get("/metrics", mod)); w.Code != http.StatusNotFound {
			t.Errorf("no token configured, %s: GET /metrics = %d, want 404", name, w.Code)
		}
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
