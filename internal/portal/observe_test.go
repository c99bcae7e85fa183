package portal_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/testenv"
)

// After a login, the gateway's GET /metrics (read from loopback, as the test
// client is) shows the user service's RPC counted by endpoint, and the
// gateway's requests by route. The public port serves no profiler.
func TestMetricsEndToEnd(t *testing.T) {
	p := testenv.StartPortal(t, testenv.PortalOptions{})
	c := newClient(t, p)
	c.register("metricsuser", "metrics-password-1")
	token, _ := c.login("metricsuser", "metrics-password-1")

	r := c.expect(c.do("GET", "/metrics", "", nil), http.StatusOK)
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
