package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// After a login, the gateway's GET /metrics (read with the metrics token)
// shows the user service's RPC counted by endpoint, and the
// gateway's requests by route. The public port serves no profiler.
func TestMetricsEndToEnd(t *testing.T) {
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	c.register("metricsuser", "metrics-password-1")
	token, _ := c.login("metricsuser", "metrics-password-1")

	r := c.expect(c.do("GET", "/metrics", portaltest.MetricsToken, nil), http.StatusOK)
	body := string(r.body)
	for _, want := range []string{
		`portal_rpc_requests_total{code="200",endpoint="User.Login",service="user"} 1`,
		`portal_rpc_requests_total{code="200",endpoint="User.Register",service="user"} 1`,
		`portal_rpc_request_duration_seconds_count{endpoint="User.Login",service="user"} 1`,
		`portal_http_requests_total{method="POST",route="/api/v1/login",status="200"} 1`,
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}

	// Signed in, so the answer is the router's, not the login redirect.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		c.expect(c.do("GET", path, token, nil), http.StatusNotFound)
	}
}

// `portal system --profile http --metrics_address ...` serves pprof and
// metrics on listeners of their own; pprof refuses a non-loopback address.
func TestServiceProfileAndMetricsAddress(t *testing.T) {
	parallel(t)
	testenv.Require(t, "etcd")
	bin := testenv.BuildPortal(t)
	etcd := testenv.StartEtcd(t)
	keys := testenv.NewPortalKeys(t)
	env := map[string]string{
		"MICRO_REGISTRY":         "etcd",
		"MICRO_REGISTRY_ADDRESS": etcd.Addr,
		"MICRO_SERVER_ADDRESS":   "127.0.0.1:0",
		"MICRO_AUTH_PUBLIC_KEY":  keys.Public,
		"PORTAL_DATA_DIR":        t.TempDir(),
		"MICRO_DEBUG_PROFILE":    "http",
		"PORTAL_PROFILE_ADDRESS": "127.0.0.1:0",
		"PORTAL_METRICS_ADDRESS": "127.0.0.1:0",
	}
	proc := testenv.StartProc(t, bin, []string{"system"}, env, `msg="service started"`)
	pprofAddr, metricsAddr := proc.LogValue("pprof listening", "address"), proc.LogValue("metrics listening", "address")
	if !strings.HasPrefix(pprofAddr, "127.0.0.1:") || !strings.HasPrefix(metricsAddr, "127.0.0.1:") {
		t.Fatalf("pprof at %q, metrics at %q\n%s", pprofAddr, metricsAddr, proc.Tail(20))
	}
	get := func(url string) (int, string) {
		t.Helper()
		rsp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer rsp.Body.Close()
		b, _ := io.ReadAll(rsp.Body)
		return rsp.StatusCode, string(b)
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %d", code)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics: %d %.200s", code, body)
	}
	if code, _ := get("http://" + metricsAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}

	// pprof on every interface is refused: the process exits with an error.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "system")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PORTAL_PROFILE_ADDRESS=:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback only") {
		t.Errorf("pprof on all interfaces: err %v, output:\n%s", err, out)
	}
}

// requestLines are the gateway's request lines for route.
func requestLines(log, route string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "msg=request ") && strings.Contains(line, " route="+route+" ") {
			out = append(out, line)
		}
	}
	return out
}

// logValue is key's value on a slog text line.
func logValue(line, key string) string {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// One GET /api/v1/me is one trace: the gateway's server span is its root,
// the RPC to user is a client span under it, user's server span is that
// call's child, and user's store reads are spans under that, each span
// under its own service's name. An admin call goes two hops, web > system >
// user (system checks the session with the caller's token), in one trace. The gateway logs one line for the request
// with its route, status, latency, trace id and user id, and neither the
// token (sent in the header and the query) nor the password appears in
// any log line or span.
func TestOneRequestOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	logs := &testenv.SyncBuffer{}
	p := portaltest.Start(t, portaltest.Options{SpanProcessors: []sdktrace.SpanProcessor{rec}, Log: logs})
	c := newClient(t, p)
	const name, pw = "traceuser", "trace-password-1"
	c.register(name, pw)
	token, _ := c.login(name, pw)

	// The first request with the new session: the gateway asks user.
	me := c.expect(c.do("GET", "/api/v1/me?token="+url.QueryEscape(token), token, nil), http.StatusOK).json(t)
	userID, _ := me["id"].(string)

	var line string
	poll.Wait(t, 5*time.Second, "the request line of GET /api/v1/me", func() bool {
		lines := requestLines(logs.String(), "/api/v1/me")
		if len(lines) > 1 {
			t.Fatalf("%d request lines for one request:\n%s", len(lines), strings.Join(lines, "\n"))
		}
		if len(lines) == 1 {
			line = lines[0]
		}
		return line != ""
	})
	for key, want := range map[string]string{"method": "GET", "status": "200", "user_id": userID} {
		if got := logValue(line, key); got != want {
			t.Errorf("request line: %s=%q, want %q\n%s", key, got, want, line)
		}
	}
	traceID := logValue(line, "trace_id")
	if len(traceID) != 32 || logValue(line, "latency_ms") == "" {
		t.Fatalf("request line without a trace id or latency:\n%s", line)
	}
	if login := requestLines(logs.String(), "/api/v1/login"); len(login) != 1 || logValue(login[0], "trace_id") == traceID {
		t.Errorf("login's request line %q: want one, in a trace of its own", login)
	}

	var spans []sdktrace.ReadOnlySpan
	find := func(service, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		for _, s := range spans {
			if serviceOf(s) == service && s.Name() == name && s.SpanKind() == kind {
				return s
			}
		}
		return nil
	}
	poll.Wait(t, 5*time.Second, "the request's spans", func() bool {
		spans = spans[:0]
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == traceID {
				spans = append(spans, s)
			}
		}
		return find("web", "GET /api/v1/me", trace.SpanKindServer) != nil && find("user", "User.Info", trace.SpanKindServer) != nil &&
			find("user", "store Read", trace.SpanKindClient) != nil
	})
	root := find("web", "GET /api/v1/me", trace.SpanKindServer)
	call := find("web", "User.Info", trace.SpanKindClient)
	served := find("user", "User.Info", trace.SpanKindServer)
	if root.Parent().IsValid() {
		t.Errorf("the gateway's span has a parent %s: want the root of a new trace", root.Parent().SpanID())
	}
	if call == nil || call.Parent().SpanID() != root.SpanContext().SpanID() || served.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Fatalf("want web server span > web client span > user server span; got %s", describe(spans))
	}
	reads := 0
	for _, s := range spans {
		if serviceOf(s) == "user" && s.Name() == "store Read" {
			reads++
			if s.Parent().SpanID() != served.SpanContext().SpanID() {
				t.Errorf("store span under %s, want under user's server span", s.Parent().SpanID())
			}
		}
	}
	if reads < 2 { // the session and the user, at least
		t.Errorf("%d store reads in the trace, want the session's and the user's: %s", reads, describe(spans))
	}

	// Two hops: system checks an admin's session with user, passing on the
	// caller's token, in the same trace.
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.expect(c.do("GET", "/api/v1/admin/services", admin, nil), http.StatusOK)
	var adminTrace string
	poll.Wait(t, 5*time.Second, "the request line of GET /api/v1/admin/services", func() bool {
		if lines := requestLines(logs.String(), "/api/v1/admin/services"); len(lines) == 1 {
			adminTrace = logValue(lines[0], "trace_id")
		}
		return adminTrace != ""
	})
	defer func() {
		if t.Failed() {
			t.Logf("admin trace: %s", describe(spans))
		}
	}()
	poll.Wait(t, 5*time.Second, "spans web > system > user", func() bool {
		spans = spans[:0]
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == adminTrace {
				spans = append(spans, s)
			}
		}
		list, check := find("system", "System.ListServices", trace.SpanKindServer), find("system", "User.Info", trace.SpanKindClient)
		if list == nil || check == nil || check.Parent().SpanID() != list.SpanContext().SpanID() {
			return false
		}
		for _, s := range spans {
			if serviceOf(s) == "user" && s.Name() == "User.Info" && s.Parent().SpanID() == check.SpanContext().SpanID() {
				return attr(s, "rpc.response.status_code") == "200"
			}
		}
		return false
	})

	all := logs.String()
	for what, secret := range map[string]string{"token": token, "password": pw, "admin token": admin} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds the %s", what)
		}
		for _, s := range rec.Ended() {
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.String(), secret) {
					t.Errorf("span %s attribute %s holds the %s", s.Name(), kv.Key, what)
				}
			}
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func serviceOf(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Resource().Attributes() {
		if kv.Key == "service.name" {
			return kv.Value.AsString()
		}
	}
	return ""
}

// describe lists spans as service/name(kind) id<parent, for failures.
func describe(spans []sdktrace.ReadOnlySpan) string {
	var parts []string
	for _, s := range spans {
		parts = append(parts, fmt.Sprintf("%s/%s(%s) %s<%s", serviceOf(s), s.Name(), s.SpanKind(), s.SpanContext().SpanID(), s.Parent().SpanID()))
	}
	return strings.Join(parts, ", ")
}

// otlpSink is an OTLP/HTTP traces endpoint that counts the spans it gets,
// by service.name.
type otlpSink struct {
	*httptest.Server
	mu    sync.Mutex
	spans map[string]int
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{spans: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			for _, kv := range rs.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					for _, ss := range rs.ScopeSpans {
						s.spans[kv.Value.GetStringValue()] += len(ss.Spans)
					}
				}
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *otlpSink) count(service string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spans[service]
}

// `portal user --metrics_address ...` answers GET /readyz on that address:
// 200 with every check named "ok" when etcd, NATS and Redis answer; 503
// naming the store while Redis is down, and the broker while NATS is; 200
// again when they are back. On SIGTERM it reports not ready while it drains,
// then exits 0, and the spans it held (the test sets the batch delay to ten
// minutes) reach the OTLP endpoint: AfterStop flushed them.
func TestServiceReadinessAndStop(t *testing.T) {
	parallel(t)
	for _, b := range []string{"etcd", "nats-server", "redis-server"} {
		testenv.Require(t, b)
	}
	bin := testenv.BuildPortal(t)
	cl := testenv.Cluster{
		Etcd:  testenv.StartEtcd(t),
		NATS:  testenv.StartNATS(t),
		Redis: testenv.StartRedis(t),
		Keys:  testenv.NewPortalKeys(t),
	}
	sink := newOTLPSink(t)
	env := testenv.PortalEnv(t, "user", cl)
	env["PORTAL_METRICS_ADDRESS"] = "127.0.0.1:0"
	env["PORTAL_TRACE_ENDPOINT"] = sink.URL
	env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
	proc := testenv.StartProc(t, bin, []string{"user"}, env, `msg="service started"`)
	addr := proc.LogValue("metrics listening", "address")
	if addr == "" {
		t.Fatalf("no metrics address in the log\n%s", proc.Tail(20))
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	readyz := func() (int, map[string]string) {
		rsp, err := hc.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, map[string]string{"error": err.Error()}
		}
		defer rsp.Body.Close()
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		if err := json.NewDecoder(rsp.Body).Decode(&body); err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		return rsp.StatusCode, body.Checks
	}
	// want polls /readyz until it answers code with the named checks failing
	// and every other check "ok".
	want := func(what string, code int, failing ...string) {
		t.Helper()
		var got int
		var checks map[string]string
		poll.Wait(t, 20*time.Second, what, func() bool {
			got, checks = readyz()
			if got != code {
				return false
			}
			for name, v := range checks {
				if (v == "ok") == slices.Contains(failing, name) {
					return false
				}
			}
			return true
		})
		for _, name := range []string{"lifecycle", "registry", "broker", "store", "keys", "config"} {
			if _, ok := checks[name]; !ok {
				t.Errorf("%s: /readyz has no %s check: %v", what, name, checks)
			}
		}
	}

	want("ready", http.StatusOK)
	cl.Redis.Stop(t)
	want("503 naming the store while Redis is down", http.StatusServiceUnavailable, "store")
	cl.Redis.Start(t)
	want("ready again after Redis", http.StatusOK)
	cl.NATS.Stop(t)
	want("503 naming the broker while NATS is down", http.StatusServiceUnavailable, "broker")
	cl.NATS.Start(t)
	want("ready again after NATS", http.StatusOK)

	if n := sink.count("user"); n != 0 {
		t.Fatalf("%d spans exported before stop: the batch delay did not hold them", n)
	}
	stopped := make(chan struct{})
	go func() {
		proc.Stop(t)
		close(stopped)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for draining := false; !draining; {
		select {
		case <-stopped:
			t.Fatal("the process exited before /readyz reported it not serving")
		case <-tick.C:
		}
		code, checks := readyz()
		draining = code == http.StatusServiceUnavailable && checks["lifecycle"] != "ok" && checks["store"] == "ok"
	}
	<-stopped
	if err := proc.ExitErr(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0\n%s", err, proc.Tail(20))
	}
	if n := sink.count("user"); n == 0 {
		t.Errorf("no span of user's reached the OTLP endpoint: AfterStop did not flush\n%s", proc.Tail(20))
	}
}
