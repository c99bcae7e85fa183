package supervisor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/supervisor"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	runtimepb "github.com/portal-go/portal/proto/runtime"
)

// up is a running `portal up` and what a test reaches it with.
type up struct {
	proc *testenv.Proc
	url  string        // the gateway, http://127.0.0.1:<port>
	rpc  client.Client // go-micro gRPC client on the supervisor's etcd
	reg  registry.Registry
}

// startUp runs `portal up` on dir with free ports and waits until the
// gateway has logged its address.
func startUp(t *testing.T, bin, dir string) *up {
	t.Helper()
	// A fixed port, as a user would give: a restarted web must come back on
	// the same address.
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartProc(t, bin,
		[]string{"up", "--data_dir", dir, "--http_address", httpAddr, "--config", filepath.Join(dir, "portal.yaml")},
		// The test's requests come as if through a proxy on loopback.
		map[string]string{"PORTAL_ADMIN_PASSWORD": testenv.AdminPassword, "PORTAL_TRUSTED_PROXIES": "127.0.0.1/32"},
		`msg="supervisor ready"`)
	etcd := p.LogValue("supervisor ready", "etcd")
	if etcd == "" {
		t.Fatalf("no etcd address in the ready line\n%s", p.Tail(30))
	}
	var addr string
	poll.Wait(t, 30*time.Second, "the gateway's ready line", func() bool {
		addr = p.LogValue("portal ready", "http")
		return addr != ""
	})
	reg := upRegistry(t, dir, etcd)
	cli := grpcclient.NewClient(client.Registry(reg), client.Selector(selector.NewSelector(selector.Registry(reg))),
		client.RequestTimeout(10*time.Second))
	return &up{proc: p, url: "http://" + addr, rpc: cli, reg: reg}
}

// TestUp runs `portal up` as built and checks, in order on one supervisor:
// the gateway serves, the runtime API lists three running services to an
// admin only, a child killed with SIGKILL is started again, an admin's
// restart restarts one, session.revoked crosses processes, and SIGTERM stops
// everything with exit 0. Then a second supervisor on the same data dir
// starts again from what the first left.
func TestUp(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildPortal(t)
	dir := t.TempDir()
	u := startUp(t, bin, dir)
	var admin string

	if !t.Run("ready_and_login", func(t *testing.T) {
		u.waitReady(t)
		admin = u.login(t, "admin", testenv.AdminPassword)
		// The embedded servers' logins, here as well as in
		// TestRunInProcess, which only a -tags up test build runs.
		refusesStrangers(t, dir, u.proc.LogValue("supervisor ready", "etcd"), u.proc.Log())
	}) {
		return
	}

	adminCtx := pauth.ContextWithToken(context.Background(), admin)
	var procs map[string]*runtimepb.Process

	if !t.Run("list_admin_only", func(t *testing.T) {
		procs = u.waitRunning(t, adminCtx, nil)
		for name, p := range procs {
			if p.Pid <= 0 || p.StartedAt == 0 || p.Restarts != 0 {
				t.Errorf("%s: %+v, want a pid, a start time and no restarts", name, p)
			}
		}
		u.post(t, "/api/v1/register", "", map[string]string{"username": "bob", "password": "bob-password-1"}, http.StatusCreated)
		bob := u.login(t, "bob", "bob-password-1")
		_, err := supervisor.Status(pauth.ContextWithToken(context.Background(), bob), u.rpc)
		if e := merrors.FromError(err); e.Code != http.StatusForbidden {
			t.Errorf("Runtime.List with a user's token: %v, want 403", err)
		}
		_, err = supervisor.Restart(context.Background(), u.rpc, "user")
		if e := merrors.FromError(err); e.Code != http.StatusUnauthorized {
			t.Errorf("Runtime.Restart without a token: %v, want 401", err)
		}
	}) {
		return
	}

	// The client web names (through the trusted proxy) reaches user, another
	// process, signed with the gateway key the supervisor made.
	if !t.Run("client_address_across_processes", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(dir, pauth.GatewayKeyFile)); err != nil {
			t.Fatalf("gateway key: %v", err)
		}
		req, _ := http.NewRequest(http.MethodPost, u.url+"/api/v1/login", strings.NewReader(`{"username":"bob","password":"bob-password-1"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113.31")
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var login struct {
			Token string `json:"token"`
		}
		err = json.NewDecoder(rsp.Body).Decode(&login)
		rsp.Body.Close()
		if err != nil || rsp.StatusCode != http.StatusOK {
			t.Fatalf("login: %d %v", rsp.StatusCode, err)
		}
		var sessions struct {
			Sessions []struct {
				ClientAddr string `json:"client_addr"`
				Current    bool   `json:"current"`
			} `json:"sessions"`
		}
		if err := json.Unmarshal(u.get(t, "/api/v1/me/sessions", login.Token, http.StatusOK), &sessions); err != nil {
			t.Fatal(err)
		}
		current := 0
		for _, s := range sessions.Sessions {
			if s.Current {
				current++
				if s.ClientAddr != "203.0.113.31" {
					t.Errorf("session from %q, want the forwarded client 203.0.113.31", s.ClientAddr)
				}
			}
		}
		if current != 1 {
			t.Errorf("%d current sessions in %+v", current, sessions.Sessions)
		}
	}) {
		return
	}

	if !t.Run("sigkill_restarts", func(t *testing.T) {
		old := procs["user"]
		if err := syscall.Kill(int(old.Pid), syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 user (pid %d): %v", old.Pid, err)
		}
		killed := time.Now()
		// Out of the registry once the supervisor sees it gone, not a
		// registration TTL (10 s) later: callers would reach a dead
		// address, or another process that took its port.
		poll.Wait(t, 3*time.Second, "the killed user's node to leave the registry", func() bool {
			return !u.registered("user", old.Pid)
		})
		procs = u.waitRunning(t, adminCtx, map[string]int64{"user": old.Pid})
		p := procs["user"]
		t.Logf("user: pid %d -> %d, running again after %v", old.Pid, p.Pid, time.Since(killed).Round(time.Millisecond))
		if p.Restarts != 1 || !strings.Contains(p.LastError, "signal: killed") {
			t.Errorf("user after kill -9: %+v, want 1 restart and last error signal: killed", p)
		}
		u.waitReady(t)
		u.login(t, "admin", testenv.AdminPassword)
	}) {
		return
	}

	if !t.Run("admin_restart", func(t *testing.T) {
		old := procs["system"]
		p, err := supervisor.Restart(adminCtx, u.rpc, "system")
		if err != nil || p.Status != supervisor.StatusStarting {
			t.Fatalf("Runtime.Restart(system) = %+v, %v; want starting", p, err)
		}
		procs = u.waitRunning(t, adminCtx, map[string]int64{"system": old.Pid})
		if got := procs["system"]; got.Restarts != 1 {
			t.Errorf("system after a restart: %+v, want 1 restart", got)
		}
		if _, err := supervisor.Restart(adminCtx, u.rpc, "billing"); merrors.FromError(err).Id != "runtime.not_found" {
			t.Errorf("Runtime.Restart(billing) = %v, want runtime.not_found", err)
		}
		u.waitReady(t)
	}) {
		return
	}

	// The admin plane, through the gateway: the services page's data holds
	// each process's status, and an admin restarts web through web itself.
	if !t.Run("admin_plane_through_web", func(t *testing.T) {
		var body struct {
			Supervised bool `json:"supervised"`
			Processes  []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
				Pid    int64  `json:"pid"`
			} `json:"processes"`
		}
		if err := json.Unmarshal(u.get(t, "/api/v1/admin/services", admin, http.StatusOK), &body); err != nil {
			t.Fatal(err)
		}
		if !body.Supervised || len(body.Processes) != 3 {
			t.Fatalf("services: %+v, want supervised with 3 processes", body)
		}
		for _, p := range body.Processes {
			if p.Status != supervisor.StatusRunning || p.Pid != procs[p.Name].Pid {
				t.Errorf("process %+v, want running with pid %d", p, procs[p.Name].Pid)
			}
		}
		if lines := u.get(t, "/api/v1/admin/services/user/logs?lines=5", admin, http.StatusOK); !strings.Contains(string(lines), `"lines"`) {
			t.Errorf("logs through web: %s", lines)
		}
		old := procs["web"]
		u.post(t, "/api/v1/admin/services/web/restart", admin, nil, http.StatusAccepted)
		procs = u.waitRunning(t, adminCtx, map[string]int64{"web": old.Pid})
		u.waitReady(t)
	}) {
		return
	}

	if !t.Run("logs", func(t *testing.T) {
		lines, err := supervisor.Logs(adminCtx, u.rpc, "user", 1000)
		if err != nil || len(lines) == 0 {
			t.Fatalf("Runtime.Logs(user) = %d lines, %v", len(lines), err)
		}
		if all := strings.Join(lines, "\n"); !strings.Contains(all, `msg="service started"`) {
			t.Errorf("user's logs hold no start line:\n%s", all)
		}
		if lines, err := supervisor.Logs(adminCtx, u.rpc, "web", 3); err != nil || len(lines) != 3 {
			t.Errorf("Runtime.Logs(web, 3) = %d lines, %v", len(lines), err)
		}
		if _, err := supervisor.Logs(adminCtx, u.rpc, "web", -1); merrors.FromError(err).Code != http.StatusBadRequest {
			t.Errorf("Runtime.Logs(web, -1) = %v, want 400", err)
		}
	}) {
		return
	}

	// A password change ends bob's other session in user, which tells the
	// gateway (another process) through NATS: its cached verdict goes.
	if !t.Run("session_revoked_crosses_processes", func(t *testing.T) {
		a := u.login(t, "bob", "bob-password-1")
		b := u.login(t, "bob", "bob-password-1")
		u.get(t, "/api/v1/me", a, http.StatusOK) // cached as live
		u.put(t, "/api/v1/me/password", b, map[string]string{"old_password": "bob-password-1", "new_password": "bob-password-2"}, http.StatusOK)
		changed := time.Now()
		poll.Wait(t, 5*time.Second, "the gateway to refuse bob's other session", func() bool {
			return u.do(t, "GET", "/api/v1/me", a, nil).StatusCode == http.StatusUnauthorized
		})
		t.Logf("other session refused %v after the password change", time.Since(changed).Round(time.Millisecond))
	}) {
		return
	}

	if !t.Run("sigterm_stops_all", func(t *testing.T) {
		u.proc.Stop(t)
		if u.proc.Running() {
			t.Fatalf("supervisor still running")
		}
		if err := u.proc.ExitErr(); err != nil {
			t.Errorf("supervisor exit: %v, want status 0\n%s", err, u.proc.Tail(30))
		}
		for name, p := range procs {
			if err := syscall.Kill(int(p.Pid), 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s (pid %d) still there after the supervisor exited: %v", name, p.Pid, err)
			}
		}
		log := u.proc.Log()
		for _, name := range []string{"web", "system", "user"} {
			if !strings.Contains(log, "msg=stopped service="+name) {
				t.Errorf("no stop line for %s", name)
			}
		}
	}) {
		return
	}

	t.Run("second_start_same_data_dir", func(t *testing.T) {
		u2 := startUp(t, bin, dir)
		u2.waitReady(t)
		u2.login(t, "bob", "bob-password-2")
		u2.proc.Stop(t)
		if err := u2.proc.ExitErr(); err != nil {
			t.Errorf("second supervisor exit: %v", err)
		}
	})
}

// waitRunning polls Runtime.List until web, user and system all run, none
// with the pid given for it in old, and returns them by name.
func (u *up) waitRunning(t *testing.T, ctx context.Context, old map[string]int64) map[string]*runtimepb.Process {
	t.Helper()
	var got map[string]*runtimepb.Process
	var last []*runtimepb.Process
	var lastErr error
	ok := poll.Until(60*time.Second, func() bool {
		last, lastErr = supervisor.Status(ctx, u.rpc)
		if lastErr != nil || len(last) != 3 {
			return false
		}
		got = map[string]*runtimepb.Process{}
		for _, p := range last {
			if p.Status != supervisor.StatusRunning || p.Pid == old[p.Name] {
				return false
			}
			got[p.Name] = p
		}
		return got["web"].Pid > 0 && got["user"].Pid > 0 && got["system"].Pid > 0
	})
	if !ok {
		tail := ""
		if u.proc != nil {
			tail = u.proc.Tail(40)
		}
		t.Fatalf("Runtime.List: %+v, %v; want web, user, system running (and new pids for %v)\n%s", last, lastErr, old, tail)
	}
	return got
}

// waitReady polls GET /readyz until it answers 200.
func (u *up) waitReady(t *testing.T) {
	t.Helper()
	poll.Wait(t, 30*time.Second, "GET /readyz 200", func() bool {
		return u.do(t, "GET", "/readyz", "", nil).StatusCode == http.StatusOK
	})
}

func (u *up) login(t *testing.T, name, pw string) string {
	t.Helper()
	var rsp struct {
		Token string `json:"token"`
	}
	body := u.post(t, "/api/v1/login", "", map[string]string{"username": name, "password": pw}, http.StatusOK)
	if err := json.Unmarshal(body, &rsp); err != nil || rsp.Token == "" {
		t.Fatalf("login %s: %s", name, body)
	}
	return rsp.Token
}

func (u *up) get(t *testing.T, path, token string, status int) []byte {
	t.Helper()
	return u.expect(t, "GET", path, token, nil, status)
}

func (u *up) post(t *testing.T, path, token string, body any, status int) []byte {
	t.Helper()
	return u.expect(t, "POST", path, token, body, status)
}

func (u *up) put(t *testing.T, path, token string, body any, status int) []byte {
	t.Helper()
	return u.expect(t, "PUT", path, token, body, status)
}

func (u *up) expect(t *testing.T, method, path, token string, body any, status int) []byte {
	t.Helper()
	r := u.do(t, method, path, token, body)
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.StatusCode, status, r.body)
	}
	return r.body
}

type response struct {
	StatusCode int
	body       []byte
}

// do sends one JSON request; a transport error counts as status 0.
func (u *up) do(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	rsp, err := c.Do(req)
	if err != nil {
		return response{}
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	return response{StatusCode: rsp.StatusCode, body: b}
}

// upRegistry is the registry of the supervisor on dir, logged in with the
// credentials it keeps there.
func upRegistry(t *testing.T, dir, etcd string) registry.Registry {
	t.Helper()
	c, err := supervisor.LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	return etcdreg.NewRegistry(registry.Addrs(etcd), etcdreg.Auth(c.EtcdUser, c.EtcdPassword))
}

// refusesStrangers checks that the embedded etcd and NATS of the
// supervisor on dir refuse a client without the credentials it generated
// there (mode 0600), which never appear in its output: such a client can
// neither register a fake user node nor subscribe to events.
func refusesStrangers(t *testing.T, dir, etcd, output string) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, supervisor.CredentialsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	c, err := supervisor.LoadOrCreateCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{c.EtcdPassword, c.EtcdRootPassword, c.NATSPassword} {
		if strings.Contains(output, secret) {
			t.Errorf("the supervisor's output shows a password")
		}
	}
	fake := &registry.Service{Name: "user", Version: "latest", Nodes: []*registry.Node{{Id: "user-fake", Address: "127.0.0.1:1"}}}
	if err := etcdreg.NewRegistry(registry.Addrs(etcd)).Register(fake, registry.RegisterTTL(time.Minute)); err == nil {
		t.Errorf("etcd let a client without credentials register a user node")
	}
	if err := upRegistry(t, dir, etcd).Register(fake, registry.RegisterTTL(time.Minute)); err != nil {
		t.Errorf("etcd refused the supervisor's credentials: %v", err)
	} else if err := upRegistry(t, dir, etcd).Deregister(fake); err != nil {
		t.Errorf("deregister the probe node: %v", err)
	}
	_, rest, _ := strings.Cut(output, `msg="supervisor ready"`)
	_, rest, _ = strings.Cut(rest, " nats=")
	natsURL, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(natsURL, "nats://") {
		t.Fatalf("no NATS address in the ready line: %q", natsURL)
	}
	if nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Errorf("NATS let a client without credentials connect")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("NATS without credentials: %v, want an authorization violation", err)
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo(c.NATSUser, c.NATSPassword), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("NATS refused the supervisor's credentials: %v", err)
	}
	nc.Close()
}

// registered reports whether a node of name with pid in its metadata is in
// the supervisor's registry.
func (u *up) registered(name string, pid int64) bool {
	nodes, _ := supervisor.NodesOf(u.reg, name, int(pid))
	return len(nodes) > 0
}
