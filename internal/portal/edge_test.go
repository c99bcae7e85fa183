package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	microclient "go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
	userpb "github.com/portal-go/portal/proto/user"
)

const edgeMetricsToken = "edge-metrics-token"

// from makes a request look forwarded by the (trusted, loopback) proxy for
// client addr over https.
func from(addr string) []string {
	return []string{"X-Forwarded-For", addr, "X-Forwarded-Proto", "https", "User-Agent", "agent-of-" + addr}
}

// sessionClient is who a session was opened for, as GET /api/v1/me/sessions
// shows it.
type sessionClient struct {
	ClientAddr string `json:"client_addr"`
	UserAgent  string `json:"user_agent"`
}

func hasSession(ss []sessionClient, addr, agent string) bool {
	for _, s := range ss {
		if s.ClientAddr == addr && s.UserAgent == agent {
			return true
		}
	}
	return false
}

// sessionsOf lists the sessions tok sees.
func sessionsOf(t *testing.T, c *client, tok string) []sessionClient {
	t.Helper()
	var body struct {
		Sessions []sessionClient `json:"sessions"`
	}
	if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/me/sessions", tok, nil), http.StatusOK).body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Sessions
}

// A start with a --trusted_proxies entry that is not a CIDR stops at once,
// naming the setting and the entry.
func TestTrustedProxiesBadCIDR(t *testing.T) {
	parallel(t)
	bin := testenv.BuildPortal(t)
	for _, args := range [][]string{
		{"--trusted_proxies", "10.0.0.0/8, 10.0.0.0/33"},
		{"web", "--trusted_proxies", "10.0.0.0/8, 10.0.0.0/33"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, append(args, "--data_dir", t.TempDir(), "--http_address", "127.0.0.1:0")...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS=127.0.0.1:1"}
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || cmd.ProcessState.ExitCode() != 1 {
			t.Errorf("%v: exit %v, want status 1\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "--trusted_proxies") || !strings.Contains(string(out), `"10.0.0.0/33"`) {
			t.Errorf("%v: the error does not name the setting and the entry:\n%s", args, out)
		}
	}
}

// The embedded mode, through the real binary, behind a trusted proxy: the
// client's address decides the per-address lockout, the sessions and the
// audit log; https from the proxy makes cookies Secure and sends HSTS;
// /metrics needs the token; /readyz's details are on the metrics address;
// a direct RPC naming a client is taken for its own address.
func TestEdgeEmbedded(t *testing.T) {
	parallel(t)
	bin := testenv.BuildPortal(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portal.yaml")
	if err := os.WriteFile(cfg, []byte("login:\n  maxFailures: 3\n  lockoutSeconds: 300\n  addressMaxFailures: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := testenv.StartProc(t, bin, []string{"--trusted_proxies", "127.0.0.1/32", "--metrics_token", edgeMetricsToken},
		map[string]string{
			"PORTAL_DATA_DIR": dir, "PORTAL_CONFIG": cfg, "PORTAL_HTTP_ADDRESS": "127.0.0.1:0",
			"PORTAL_METRICS_ADDRESS": "127.0.0.1:0", "PORTAL_ADMIN_PASSWORD": testenv.AdminPassword,
		}, `msg="portal ready"`)
	c := newClient(t, &portaltest.Portal{URL: "http://" + proc.LogValue("portal ready", "http")})
	metricsAddr := proc.LogValue("metrics listening", "address")
	if fi, err := os.Stat(filepath.Join(dir, pauth.GatewayKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gateway key in the data dir: %v", err)
	}
	for _, n := range []string{"edge_alice", "edge_bob", "edge_carol", "edge_dave", "edge_erin"} {
		c.register(n, n+"-password")
	}
	login := func(name, pw string, header ...string) response {
		return c.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}, header...)
	}

	t.Run("lockout_per_client_address", func(t *testing.T) {
		// Three failures from one client (spread over accounts, and one
		// with an extra XFF entry of its own making) lock that client's
		// address, not the proxy's: another client behind the same proxy
		// signs in.
		c.expect(login("edge_alice", "wrong-password", from("203.0.113.7")...), http.StatusUnauthorized)
		c.expect(login("edge_bob", "wrong-password", from("203.0.113.7")...), http.StatusUnauthorized)
		c.expect(login("nobody_here", "wrong-password", "X-Forwarded-For", "203.0.113.8, 203.0.113.7"), http.StatusUnauthorized)
		if code := errorCode(t, c.expect(login("edge_alice", "edge_alice-password", from("203.0.113.7")...), http.StatusTooManyRequests)); code != "user.locked" {
			t.Fatalf("locked client: code %q", code)
		}
		tok := c.expect(login("edge_alice", "edge_alice-password", from("203.0.113.8")...), http.StatusOK).json(t)["token"].(string)
		ss := sessionsOf(t, c, tok)
		if len(ss) != 1 || ss[0].ClientAddr != "203.0.113.8" || ss[0].UserAgent != "agent-of-203.0.113.8" {
			t.Errorf("sessions %+v, want one from 203.0.113.8 with its user agent", ss)
		}
		admin := c.expect(login("admin", testenv.AdminPassword, from("203.0.113.9")...), http.StatusOK).json(t)["token"].(string)
		poll.Wait(t, 20*time.Second, "the failed logins and the lockout in the audit log", func() bool {
			failed, _ := listAudit(t, c, admin, "kind=login_failed")
			locks, _ := listAudit(t, c, admin, "kind=lockout")
			n := 0
			for _, e := range failed {
				if e.ClientAddr == "203.0.113.7" {
					n++
				}
			}
			return n == 3 && len(locks) == 1 && locks[0].ClientAddr == "203.0.113.7"
		})
	})

	t.Run("https_from_the_proxy", func(t *testing.T) {
		page := c.do("GET", "/login", "", nil, from("203.0.113.10")...)
		var csrf *http.Cookie
		for _, ck := range page.Cookies() {
			if ck.Name == "portal_csrf" {
				csrf = ck
			}
		}
		if csrf == nil || !csrf.Secure {
			t.Fatalf("CSRF cookie %v, want Secure", page.Header.Values("Set-Cookie"))
		}
		if h := page.Header.Get("Strict-Transport-Security"); h != "max-age=31536000" {
			t.Errorf("Strict-Transport-Security %q, want max-age=31536000", h)
		}
		form := url.Values{"csrf_token": {csrf.Value}, "username": {"edge_carol"}, "password": {"edge_carol-password"}, "next": {"/"}}
		r := c.expect(c.do("POST", "/login", "", form.Encode(), append(from("203.0.113.10"),
			"Content-Type", "application/x-www-form-urlencoded", "Cookie", "portal_csrf="+csrf.Value)...), http.StatusSeeOther)
		secure := false
		for _, ck := range r.Cookies() {
			secure = secure || (ck.Name == "portal_session" && ck.Secure)
		}
		if !secure {
			t.Errorf("session cookie not Secure: %v", r.Header.Values("Set-Cookie"))
		}
		plain := c.do("GET", "/login", "", nil, "X-Forwarded-Proto", "http")
		if h := plain.Header.Get("Strict-Transport-Security"); h != "" {
			t.Errorf("plain http answered with Strict-Transport-Security %q", h)
		}
		for _, ck := range plain.Cookies() {
			if ck.Secure {
				t.Errorf("plain http set a Secure cookie %s", ck.Name)
			}
		}
	})

	t.Run("metrics_and_readyz", func(t *testing.T) {
		c.expect(c.do("GET", "/metrics", "", nil), http.StatusNotFound)
		c.expect(c.do("GET", "/metrics", "wrong-token", nil), http.StatusNotFound)
		if r := c.expect(c.do("GET", "/metrics", edgeMetricsToken, nil), http.StatusOK); !strings.Contains(string(r.body), "portal_rpc_requests_total") {
			t.Errorf("/metrics with the token lacks RPC metrics")
		}
		r := c.expect(c.do("GET", "/readyz", "", nil), http.StatusOK)
		if m := r.json(t); m["status"] != "ready" {
			t.Errorf("public /readyz %s", r.body)
		}
		side := newClient(t, &portaltest.Portal{URL: "http://" + metricsAddr})
		m := side.expect(side.do("GET", "/readyz", "", nil), http.StatusOK).json(t)
		checks, _ := m["checks"].(map[string]any)
		if checks["user"] != "ok" || checks["system"] != "ok" || checks["lifecycle"] != "ok" {
			t.Errorf("metrics address /readyz %v, want user, system and the gateway's own checks", m)
		}
		side.expect(side.do("GET", "/metrics", "", nil), http.StatusOK)
	})

	t.Run("direct_rpc_cannot_name_a_client", func(t *testing.T) {
		admin := c.expect(login("admin", testenv.AdminPassword, from("203.0.113.9")...), http.StatusOK).json(t)["token"].(string)
		var svcs struct {
			Services []struct {
				Name  string `json:"name"`
				Nodes []struct {
					Address string `json:"address"`
				} `json:"nodes"`
			} `json:"services"`
		}
		if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/admin/services", admin, nil), http.StatusOK).body, &svcs); err != nil {
			t.Fatal(err)
		}
		userAddr := ""
		for _, s := range svcs.Services {
			if s.Name == "user" && len(s.Nodes) == 1 {
				userAddr = s.Nodes[0].Address
			}
		}
		if userAddr == "" {
			t.Fatalf("no user node in %+v", svcs)
		}
		const victim = "203.0.113.66"
		users := userpb.NewUserService("user", grpcclient.NewClient())
		forged := metadata.Set(context.Background(), pauth.ClientKey, "1.MjAzLjAuMTEzLjY2.eA.AAAA")
		forged = metadata.Set(forged, "Portal-Client-Addr", victim)
		call := func(name, pw string) (*userpb.LoginResponse, error) {
			return users.Login(forged, &userpb.LoginRequest{Username: name, Password: pw, ClientAddr: victim, UserAgent: "forged"},
				microclient.WithAddress(userAddr))
		}
		// A direct login's session is recorded with the caller's own
		// address, not the one it named.
		rsp, err := call("edge_dave", "edge_dave-password")
		if err != nil {
			t.Fatalf("direct login: %v", err)
		}
		if ss := sessionsOf(t, c, rsp.Token); len(ss) != 1 || ss[0].ClientAddr != "127.0.0.1" || ss[0].UserAgent != "" {
			t.Errorf("direct login's session %+v, want the caller's 127.0.0.1 and no user agent", ss)
		}
		// Failures named for the victim's address count against the
		// caller's: the victim still signs in through the gateway.
		for range 3 {
			if _, err := call("edge_erin", "wrong-password"); merrors.FromError(err).Id != "user.bad_credentials" {
				t.Fatalf("direct failed login: %v", err)
			}
		}
		c.expect(login("edge_carol", "edge_carol-password", from(victim)...), http.StatusOK)
		poll.Wait(t, 20*time.Second, "the direct failures in the audit log, with the caller's address", func() bool {
			es, _ := listAudit(t, c, admin, "kind=login_failed&user=edge_erin")
			n := 0
			for _, e := range es {
				if e.ClientAddr == victim {
					t.Fatalf("audit entry names the forged address: %+v", e)
				}
				if e.ClientAddr == "127.0.0.1" {
					n++
				}
			}
			return n == 3
		})
	})
}

// With no trusted proxies (the default) forwarding headers are a client's
// own claims: ignored for its address and its scheme.
func TestForwardedHeadersIgnoredByDefault(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	c.register("spoof_sam", "spoof_sam-password")
	r := c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "spoof_sam", "password": "spoof_sam-password"}, from("203.0.113.50")...), http.StatusOK)
	if h := r.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("a client's X-Forwarded-Proto got Strict-Transport-Security %q", h)
	}
	if ss := sessionsOf(t, c, r.json(t)["token"].(string)); len(ss) != 1 || ss[0].ClientAddr != "127.0.0.1" {
		t.Errorf("sessions %+v, want one from the peer 127.0.0.1", ss)
	}
	page := c.do("GET", "/login", "", nil, from("203.0.113.50")...)
	for _, ck := range page.Cookies() {
		if ck.Secure {
			t.Errorf("cookie %s Secure on a plain http request claiming https", ck.Name)
		}
	}
}
