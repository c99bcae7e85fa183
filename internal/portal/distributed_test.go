package portal_test

import (
	"context"
	"io"
	"path/filepath"
	"sync"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	microclient "go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"encoding/json"
	"fmt"
	pauth "github.com/portal-go/portal/internal/auth"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// cluster is a distributed Portal: every service its own `portal <service>`
// process, on etcd (registry and config), NATS (broker) and Redis (user's
// store).
type cluster struct {
	t      *testing.T
	bin    string
	env    testenv.Cluster
	users  []*testenv.Proc // the live user processes
	system *testenv.Proc
	webs   []*testenv.Proc
	urls   []string      // the gateways' base URLs, webs[i] at urls[i]
	dead   *testenv.Proc // the user process step d killed
	report []string      // measured numbers, logged at the end
	// extraEnv is added to every process's environment.
	extraEnv map[string]string
	// certs, when set, is a directory from `portal certs`: each process
	// gets mutual TLS with the certificate naming its service.
	certs string

	// firstWeb, when set, is the first gateway's address (the issuer's).
	firstWeb string
}

// startCluster starts etcd, NATS and Redis for a cluster whose processes
// (started by its start method) get extraEnv too, and puts doc in etcd as
// the config document. Each cluster has its own servers, ports and data
// dirs: tests that start one may run in parallel.
func startCluster(t *testing.T, doc string, extraEnv map[string]string) *cluster {
	t.Helper()
	for _, b := range []string{"etcd", "nats-server", "redis-server"} {
		testenv.Require(t, b)
	}
	c := &cluster{t: t, bin: testenv.BuildPortal(t), extraEnv: extraEnv}
	c.env = testenv.Cluster{
		Etcd:  testenv.StartEtcd(t),
		NATS:  testenv.StartNATS(t),
		Redis: testenv.StartRedis(t),
		Keys:  testenv.NewPortalKeys(t),
	}
	c.env.Etcd.Put(t, config.EtcdKey, doc)
	return c
}

// start runs `portal <service>` on the cluster and waits until it serves.
// Processes must be started from the top-level test: they live until it ends.
func (c *cluster) start(service string) *testenv.Proc {
	c.t.Helper()
	ready := `msg="service started"`
	if service == "web" {
		ready = `msg="portal ready"`
	}
	env := testenv.PortalEnv(c.t, service, c.env)
	if service == "web" {
		// The test's requests come as if through a proxy on loopback.
		env["PORTAL_TRUSTED_PROXIES"] = "127.0.0.1/32"
	}
	for k, v := range c.extraEnv {
		env[k] = v
	}
	if c.certs != "" {
		for k, v := range serviceTLSEnv(c.certs, service) {
			env[k] = v
		}
	}
	if service == "web" && len(c.webs) == 0 && c.firstWeb != "" {
		env["PORTAL_HTTP_ADDRESS"] = c.firstWeb
	}
	p := testenv.StartProc(c.t, c.bin, []string{service}, env, ready)
	switch service {
	case "user":
		c.users = append(c.users, p)
	case "system":
		c.system = p
	case "web":
		addr := p.LogValue("portal ready", "http")
		if addr == "" {
			c.t.Fatalf("%s: no http address in its ready line\n%s", p.Name, p.Tail(20))
		}
		c.webs = append(c.webs, p)
		c.urls = append(c.urls, "http://"+addr)
	}
	return p
}

// serviceTLSEnv is the environment giving service mutual TLS with its
// certificate from `portal certs --dir dir`.
func serviceTLSEnv(dir, service string) map[string]string {
	return map[string]string{
		"PORTAL_TLS_CA_FILE":   filepath.Join(dir, "ca.crt"),
		"PORTAL_TLS_CERT_FILE": filepath.Join(dir, service+".crt"),
		"PORTAL_TLS_KEY_FILE":  filepath.Join(dir, service+".key"),
	}
}

// note records a measured number for the summary and logs it now.
func (c *cluster) note(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	c.report = append(c.report, t.Name()+": "+s)
	t.Log(s)
}

// stepUser registers a user of t's own, named after its step (the subtest's
// name), through w and returns its name and password. Each step makes the
// accounts it needs, so that it can run alone:
// go test -run 'TestDistributed/f_redis_outage' ./internal/portal/.
func stepUser(t *testing.T, w *client) (name, pw string) {
	t.Helper()
	name = t.Name()[strings.LastIndex(t.Name(), "/")+1:]
	pw = name + "-password"
	w.register(name, pw)
	return name, pw
}

// clients returns an HTTP client per gateway, bound to t.
func (c *cluster) clients(t *testing.T) []*client {
	var cs []*client
	for _, u := range c.urls {
		cs = append(cs, newClient(t, &portaltest.Portal{URL: u}))
	}
	return cs
}

// rpcAddress is where p's service serves gRPC, from its start line.
func rpcAddress(t *testing.T, p *testenv.Proc) string {
	t.Helper()
	addr := p.LogValue("service started", "address")
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("%s: no gRPC address in its start line (%q)", p.Name, addr)
	}
	return addr
}

// registered tells whether every process in procs has a node of service in
// etcd's registry (a key under /micro/registry/<service>/ naming its
// address), and says which are missing.
func registered(t *testing.T, e *testenv.Etcd, service string, procs []*testenv.Proc) (bool, string) {
	t.Helper()
	var values []string
	for _, k := range e.Keys(t, "/micro/registry/"+service+"/") {
		values = append(values, e.Get(t, k))
	}
	all := strings.Join(values, "\n")
	var missing []string
	for _, p := range procs {
		if addr := rpcAddress(t, p); !strings.Contains(all, `"address":"`+addr+`"`) {
			missing = append(missing, p.Name+"@"+addr)
		}
	}
	return len(missing) == 0, strings.Join(missing, ",")
}

// listedUsers names the processes of procs that have a user node in the
// registry, "" when none.
func listedUsers(t *testing.T, e *testenv.Etcd, procs []*testenv.Proc) string {
	t.Helper()
	var listed []string
	for _, p := range procs {
		if ok, _ := registered(t, e, "user", []*testenv.Proc{p}); ok {
			listed = append(listed, p.Name)
		}
	}
	return strings.Join(listed, ",")
}

// unregistered names the live processes of c that have no node in the
// registry, "" when none.
func unregistered(t *testing.T, e *testenv.Etcd, c *cluster) string {
	t.Helper()
	var missing []string
	for _, s := range []struct {
		name  string
		procs []*testenv.Proc
	}{{"user", c.users}, {"system", []*testenv.Proc{c.system}}, {"web", c.webs}} {
		if ok, m := registered(t, e, s.name, s.procs); !ok {
			missing = append(missing, m)
		}
	}
	return strings.Join(missing, ",")
}

// lifetime is how long a token expiring at exp (unix seconds) has left.
func lifetime(exp int64) time.Duration { return time.Until(time.Unix(exp, 0)) }

func near(d, want time.Duration) bool { return d > want-5*time.Second && d <= want+time.Second }

// TestDistributed runs Portal as five processes (two user, one system, two
// web) on real etcd, NATS and Redis, and checks what only the distributed
// mode can get wrong: sessions and logouts across gateways, config changes
// from etcd, a user node killed mid-traffic, and etcd and Redis going away
// and coming back. The steps run in order on one cluster; a failed step ends
// the test. Each makes its own users (stepUser), so any one can also run
// alone with -run.
func TestDistributed(t *testing.T) {
	parallel(t)
	began := time.Now()
	c := startCluster(t, "auth:\n  expireTime: 900\n  refreshTime: 300\n"+testenv.RelaxedRates, nil)
	// The OpenID issuer is the first gateway's URL.
	c.firstWeb = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c.env.Issuer = "http://" + c.firstWeb
	etcd, redis := c.env.Etcd, c.env.Redis
	// One at a time: each user process creates the admin if it is missing.
	c.start("user")
	c.start("user")
	c.start("system")
	c.start("web")
	c.start("web")
	c.note(t, "cluster up in %v", time.Since(began).Round(time.Millisecond))
	defer func() {
		t.Logf("summary (total %v):\n  %s", time.Since(began).Round(time.Millisecond), strings.Join(c.report, "\n  "))
	}()

	// a. A session opened on one gateway is good on the other.
	if !t.Run("a_session_across_gateways", func(t *testing.T) {
		ws := c.clients(t)
		name, pw := stepUser(t, ws[0])
		token, _ := ws[1].login(name, pw)
		for i, w := range ws {
			me := w.expect(w.do("GET", "/api/v1/me", token, nil), http.StatusOK).json(t)
			if me["username"] != name {
				t.Fatalf("web%d: /me = %v, want username %s", i+1, me, name)
			}
			w.expect(w.do("GET", "/readyz", "", nil), http.StatusOK)
		}
	}) {
		return
	}

	// a2. Any go-micro v4 client that knows the registry finds the services
	// and can log in: here a plain one, the gRPC client plugin on etcd.
	if !t.Run("a2_plain_gomicro_client", func(t *testing.T) {
		name, pw := stepUser(t, c.clients(t)[0])
		reg := etcdreg.NewRegistry(registry.Addrs(etcd.Addr))
		list, err := reg.ListServices()
		if err != nil {
			t.Fatalf("list services: %v", err)
		}
		found := map[string]bool{}
		for _, s := range list {
			found[s.Name] = true
		}
		if !found["user"] || !found["system"] || !found["web"] {
			t.Fatalf("registry lists %v, want user, system, web", found)
		}
		cli := grpcclient.NewClient(microclient.Registry(reg), microclient.Selector(selector.NewSelector(selector.Registry(reg))))
		rsp, err := userpb.NewUserService("user", cli).Login(context.Background(), &userpb.LoginRequest{Username: name, Password: pw})
		if err != nil || rsp.Token == "" {
			t.Fatalf("User.Login over gRPC: %v, %v", rsp, err)
		}
		_, err = userpb.NewUserService("user", cli).Login(context.Background(), &userpb.LoginRequest{Username: name, Password: "wrong-password"})
		if e := merrors.FromError(err); e.Id != "user.bad_credentials" || e.Code != http.StatusUnauthorized {
			t.Fatalf("bad login: %v, want user.bad_credentials 401", err)
		}
	}) {
		return
	}

	// a5. portal web behind a trusted proxy: the client it names reaches
	// user, another process, through the gateway key; a direct caller
	// naming a client is taken for its own address.
	if !t.Run("a5_client_address", func(t *testing.T) {
		w := c.clients(t)[1]
		name, pw := stepUser(t, w)
		tok := w.expect(w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}, from("203.0.113.21")...), http.StatusOK).json(t)["token"].(string)
		if ss := sessionsOf(t, w, tok); !hasSession(ss, "203.0.113.21", "agent-of-203.0.113.21") {
			t.Fatalf("sessions %+v lack one from 203.0.113.21 with its user agent", ss)
		}
		cli := grpcclient.NewClient(microclient.Registry(etcdreg.NewRegistry(registry.Addrs(etcd.Addr))))
		forged := metadata.Set(context.Background(), "Portal-Client-Addr", "203.0.113.22")
		rsp, err := userpb.NewUserService("user", cli).Login(forged, &userpb.LoginRequest{Username: name, Password: pw, ClientAddr: "203.0.113.22", UserAgent: "forged"})
		if err != nil {
			t.Fatal(err)
		}
		if ss := sessionsOf(t, w, rsp.Token); hasSession(ss, "203.0.113.22", "forged") || !hasSession(ss, "127.0.0.1", "") {
			t.Fatalf("sessions %+v: the direct login's should be from 127.0.0.1, without a user agent", ss)
		}
	}) {
		return
	}

	// a3. Registrations of one name through both gateways, served by both
	// user instances: exactly one wins (an atomic claim in Redis, not a
	// lock in one process).
	if !t.Run("a3_unique_name_across_instances", func(t *testing.T) {
		raceRegistrations(t, "contested", 40, c.clients(t)...)
	}) {
		return
	}

	// a4. The admin plane in this mode: the services refuse a direct RPC
	// without the admin role, whatever the gateway does; disabling a user on
	// web1 ends their session on web2 at once; a config edit through the
	// admin API is written to etcd.
	if !t.Run("a4_admin_plane", func(t *testing.T) { adminPlane(t, c) }) {
		return
	}

	// a5. A custom role, enforced by each service and live: what a role
	// allows, a session and an API key may do through either gateway and by
	// direct RPC; an edit of the role applies everywhere within 1 s.
	if !t.Run("a5_permissions_live", func(t *testing.T) { permissionsLive(t, c) }) {
		return
	}

	// a6. Single sign-on served by any gateway: a relying party Portal did
	// not write signs a user in through web1 (the issuer); web2 introspects
	// and refreshes the same tokens; a reused refresh token is refused on
	// the other gateway; a logout or a disabled user ends the application's
	// tokens on both gateways at once, and sends a back-channel logout.
	if !t.Run("a6_oidc_across_gateways", func(t *testing.T) { oidcAcrossGateways(t, c) }) {
		return
	}

	// b. A logout on web1 reaches web2 (which has the session's verdict
	// cached) through the broker.
	if !t.Run("b_logout_propagates", func(t *testing.T) {
		ws := c.clients(t)
		token, _ := ws[0].login(stepUser(t, ws[0]))
		ws[0].expect(ws[0].do("POST", "/api/v1/logout", token, nil), http.StatusNoContent)
		loggedOut := time.Now()
		if code := errorCode(t, ws[0].expect(ws[0].do("GET", "/api/v1/me", token, nil), http.StatusUnauthorized)); code != "auth.session_ended" {
			t.Fatalf("web1 after logout: code %q, want auth.session_ended", code)
		}
		for {
			r := ws[1].do("GET", "/api/v1/me", token, nil)
			took := time.Since(loggedOut)
			if r.StatusCode == http.StatusUnauthorized {
				if code := errorCode(t, r); code != "auth.session_ended" {
					t.Fatalf("web2 after logout: code %q, want auth.session_ended", code)
				}
				c.note(t, "logout on web1 refused on web2 after %d ms", took.Milliseconds())
				break
			}
			if r.StatusCode != http.StatusOK {
				t.Fatalf("web2 /me: status %d: %s", r.StatusCode, r.body)
			}
			if took > time.Second {
				t.Fatalf("web2 still accepts the token %v after the logout on web1", took.Round(time.Millisecond))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}) {
		return
	}

	// c. A new config document in etcd reaches both user processes: every
	// login then mints a token living the new expireTime.
	if !t.Run("c_config_change", func(t *testing.T) {
		ws := c.clients(t)
		name, pw := stepUser(t, ws[0])
		etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 120\n  refreshTime: 60\n"+testenv.RelaxedRates)
		put := time.Now()
		var first time.Duration
		streak := 0
		// Each gateway turns its calls round the user nodes: four logins in
		// a row, two per gateway, reach both.
		for i := 0; streak < 4; i++ {
			if time.Since(put) > 15*time.Second {
				t.Fatalf("logins still mint tokens of the old lifetime 15s after the config change")
			}
			_, exp := ws[i%2].login(name, pw)
			switch left := lifetime(exp); {
			case near(left, 120*time.Second):
				if first == 0 {
					first = time.Since(put)
				}
				streak++
				continue
			case near(left, 900*time.Second):
				streak = 0
			default:
				t.Fatalf("token lives %v: neither the old 900s nor the new 120s", left)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.note(t, "expireTime 900s -> 120s: first 120s token %.2fs after the put, both user nodes %.2fs",
			first.Seconds(), time.Since(put).Seconds())
		// The put went to etcd directly: the config's history has it once
		// (whichever system instance heard it first), from etcd, no user.
		admin, _ := ws[0].login("admin", testenv.AdminPassword)
		var fromEtcd []configVersion
		poll.Wait(t, 15*time.Second, "the etcd put in the config history", func() bool {
			_, versions := configHistory(t, ws[0], admin)
			fromEtcd = nil
			for _, v := range versions {
				for _, ch := range v.Changes {
					if ch.Key == "auth.expireTime" && ch.New == "120" {
						fromEtcd = append(fromEtcd, v)
					}
				}
			}
			return len(fromEtcd) > 0
		})
		if len(fromEtcd) != 1 || fromEtcd[0].Origin != "etcd" || fromEtcd[0].ActorName != "" {
			t.Errorf("the etcd put's versions: %+v", fromEtcd)
		}
	}) {
		return
	}

	// d. kill -9 of a user node: the requests right after it all succeed,
	// though the dead node stays in the registry until its TTL ends; but a
	// login (not idempotent: it counts failures and makes a session) is
	// never retried by the gateway once it may have reached a node, and one
	// written on the dead node's connection before the gateway saw it close
	// cannot be told from one the node read before it died. Such a login
	// must answer 503 "try again", and trying again (as a user would) must
	// succeed.
	if !t.Run("d_kill_user_node", func(t *testing.T) {
		ws := c.clients(t)
		name, pw := stepUser(t, ws[0])
		dead := c.users[0]
		dead.Kill(t)
		killed := time.Now()
		c.users, c.dead = c.users[1:], dead
		var failures []string
		var slowest time.Duration
		tryAgain := 0
		for i := 0; i < 40; i++ {
			w := ws[(i/2)%2]
			start := time.Now()
			var r response
			if i%2 == 0 {
				login := func() response {
					return w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw})
				}
				if r = login(); r.StatusCode == http.StatusServiceUnavailable {
					tryAgain++
					r = login()
				}
			} else {
				r = w.do("GET", "/readyz", "", nil)
			}
			took := time.Since(start)
			slowest = max(slowest, took)
			if r.StatusCode != http.StatusOK {
				failures = append(failures, fmt.Sprintf("#%d web%d %s %s at +%v: %d %s", i, (i/2)%2+1,
					r.Request.Method, r.Request.URL.Path, time.Since(killed).Round(time.Millisecond), r.StatusCode, r.body))
			}
		}
		c.note(t, "%d logins answered 503 (try again) after kill -9; their second try succeeded", tryAgain)
		stillListed, _ := registered(t, etcd, "user", []*testenv.Proc{dead})
		c.note(t, "40 requests in %v after kill -9 (dead node still registered at the end: %v): %d failed, slowest %v",
			time.Since(killed).Round(time.Millisecond), stillListed, len(failures), slowest.Round(time.Millisecond))
		if len(failures) > 0 {
			t.Fatalf("%d of 40 requests failed after kill -9 of %s:\n%s", len(failures), dead.Name, strings.Join(failures, "\n"))
		}
	}) {
		return
	}
	c.start("user") // the replacement

	// e. etcd goes away for longer than a registration interval and comes
	// back with its data: every live node is registered again and kept
	// alive (still there after the TTL etcd's restart gave old leases), the
	// config watch resumes, logins work.
	if !t.Run("e_etcd_restart", func(t *testing.T) {
		ws := c.clients(t)
		name, pw := stepUser(t, ws[0])
		etcd.Stop(t)
		stopped := time.Now()
		// Meanwhile, gateways work from their registry cache.
		r := ws[0].do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw})
		c.note(t, "login while etcd is down: %d", r.StatusCode)
		time.Sleep(6*time.Second - time.Since(stopped))
		etcd.Start(t)
		restarted := time.Now()
		check := func() (bool, string) {
			if missing := unregistered(t, etcd, c); missing != "" {
				return false, "not registered: " + missing
			}
			for i, w := range ws {
				if r := w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw}); r.StatusCode != http.StatusOK {
					return false, fmt.Sprintf("login on web%d: %d %s", i+1, r.StatusCode, r.body)
				}
			}
			return true, ""
		}
		var why string
		for {
			ok, w := check()
			if ok {
				break
			}
			why = w
			if time.Since(restarted) > 20*time.Second {
				t.Fatalf("20s after etcd's restart: %s", why)
			}
			time.Sleep(100 * time.Millisecond)
		}
		back := time.Since(restarted)
		c.note(t, "etcd down %v; after restart, all nodes registered and logins fine in %.2fs (last wait: %s)",
			restarted.Sub(stopped).Round(time.Millisecond), back.Seconds(), why)

		// The config watch followed etcd back.
		etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 300\n  refreshTime: 60\n"+testenv.RelaxedRates)
		put := time.Now()
		// Two logins in a row through one gateway reach both user nodes.
		streak := 0
		poll.Wait(t, 15*time.Second, "tokens of the 300s expireTime set after etcd's restart from both user nodes", func() bool {
			if _, exp := ws[0].login(name, pw); near(lifetime(exp), 300*time.Second) {
				streak++
			} else {
				streak = 0
			}
			return streak == 2
		})
		c.note(t, "config change after etcd's restart applied in %.2fs", time.Since(put).Seconds())

		// Kept alive, not just restored: etcd's restart gave every old
		// lease a fresh TTL. Once the dead node's lease has run out (it
		// was killed before etcd stopped), the live nodes must still be
		// there.
		// (Step d killed it; when e runs alone, wait out a TTL instead.)
		if c.dead != nil {
			poll.Wait(t, 20*time.Second-time.Since(restarted), "the killed user node's lease to run out after etcd's restart", func() bool {
				gone, _ := registered(t, etcd, "user", []*testenv.Proc{c.dead})
				return !gone
			})
			c.note(t, "killed node's restored lease ran out %.2fs after etcd's restart", time.Since(restarted).Seconds())
		} else {
			// Step d did not run: past a registration TTL (10 s) the live
			// nodes must still be there.
			poll.Holds(t, 15*time.Second-time.Since(restarted), "every live node registered", func() bool { return unregistered(t, etcd, c) == "" })
		}
		if missing := unregistered(t, etcd, c); missing != "" {
			t.Fatalf("%.1fs after etcd's restart, nodes gone from the registry: %s", time.Since(restarted).Seconds(), missing)
		}
		for _, w := range ws {
			w.expect(w.do("GET", "/readyz", "", nil), http.StatusOK)
		}
	}) {
		return
	}

	// f. Redis goes away: logins fail fast with 503 and /readyz names the
	// user check; within two register intervals the user nodes, whose
	// health check asks their store, leave the registry (system and web
	// stay), and logins still get 503 unavailable. Redis comes back with its
	// data: the user nodes are registered again, ready again, no account
	// lost.
	if !t.Run("f_redis_outage", func(t *testing.T) {
		ws := c.clients(t)
		name, pw := stepUser(t, ws[0])
		redis.Stop(t)
		stopped := time.Now()
		var slowest time.Duration
		for i := 0; i < 4; i++ {
			w := ws[i%2]
			start := time.Now()
			r := w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw})
			took := time.Since(start)
			slowest = max(slowest, took)
			if r.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("login #%d on web%d with Redis down: %d %s, want 503", i, i%2+1, r.StatusCode, r.body)
			} else if code := errorCode(t, r); code != "server.unavailable" {
				t.Errorf("login #%d with Redis down: code %q, want unavailable", i, code)
			}
			if took > 3*time.Second {
				t.Errorf("login #%d with Redis down took %v, want under 3s", i, took.Round(time.Millisecond))
			}
		}
		for i, w := range ws {
			start := time.Now()
			r := w.expect(w.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable)
			slowest = max(slowest, time.Since(start))
			var body struct {
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("web%d /readyz: %v: %s", i+1, err, r.body)
			}
			if u := body.Checks["user"]; u != "failing" {
				t.Errorf("web%d /readyz with Redis down: user check %q, want failing: %s", i+1, u, r.body)
			}
			// Public: no error text, which would name Redis's address.
			if strings.Contains(string(r.body), redis.Addr) || strings.Contains(string(r.body), "refused") {
				t.Errorf("web%d public /readyz shows the error: %s", i+1, r.body)
			}
			if s := body.Checks["system"]; s != "ok" {
				t.Errorf("web%d /readyz with Redis down: system check %q, want ok", i+1, s)
			}
		}
		c.note(t, "with Redis down: slowest login or /readyz %d ms", slowest.Milliseconds())
		if t.Failed() {
			return
		}

		// Out of the registry within two register intervals (5 s) of the
		// outage, plus the health check's own 2 s bound.
		poll.Wait(t, 12*time.Second-time.Since(stopped), "the user nodes to leave the registry with Redis down", func() bool {
			return listedUsers(t, etcd, c.users) == ""
		})
		c.note(t, "user nodes out of the registry %.2fs after Redis stopped", time.Since(stopped).Seconds())
		if ok, missing := registered(t, etcd, "system", []*testenv.Proc{c.system}); !ok {
			t.Errorf("with Redis down, system left the registry: %s", missing)
		}
		if ok, missing := registered(t, etcd, "web", c.webs); !ok {
			t.Errorf("with Redis down, web left the registry: %s", missing)
		}
		// No user node to call: still 503 unavailable, not a 500.
		for i, w := range ws {
			r := w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw})
			if r.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("login on web%d with no user node registered: %d %s, want 503", i+1, r.StatusCode, r.body)
			} else if code := errorCode(t, r); code != "server.unavailable" {
				t.Errorf("login on web%d with no user node registered: code %q, want unavailable", i+1, code)
			}
			w.expect(w.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable)
		}
		// Kept out: go-micro's register loop alone would have put them
		// back at the next interval.
		poll.Holds(t, 6*time.Second, "the user nodes out of the registry with Redis down", func() bool {
			if l := listedUsers(t, etcd, c.users); l != "" {
				t.Logf("registered again with Redis still down: %s", l)
				return false
			}
			return true
		})
		if t.Failed() {
			return
		}

		redis.Start(t)
		restarted := time.Now()
		poll.Wait(t, 15*time.Second, "the user nodes to be registered again after Redis restarted", func() bool {
			ok, _ := registered(t, etcd, "user", c.users)
			return ok
		})
		c.note(t, "user nodes registered again %.2fs after Redis restarted", time.Since(restarted).Seconds())
		// The last answers, to say which check failed if this times out.
		last := make([]string, len(ws))
		if !poll.Until(15*time.Second-time.Since(restarted), func() bool {
			ready := true
			for i, w := range ws {
				r := w.do("GET", "/readyz", "", nil)
				last[i] = fmt.Sprintf("web%d: %d %s", i+1, r.StatusCode, r.body)
				ready = ready && r.StatusCode == http.StatusOK
			}
			return ready
		}) {
			t.Fatalf("waited %.1fs for /readyz 200 on both gateways after Redis restarted; last answers:\n%s",
				time.Since(restarted).Seconds(), strings.Join(last, "\n"))
		}
		c.note(t, "ready again %.2fs after Redis restarted", time.Since(restarted).Seconds())
		for _, w := range ws {
			w.login(name, pw)
			w.login("admin", testenv.AdminPassword)
		}
	}) {
		return
	}

	// g. SIGTERM to one of the two user processes under load through both
	// gateways: it leaves the registry, finishes what it has, exits 0, and
	// no request fails.
	t.Run("g_sigterm_drain", func(t *testing.T) { sigtermDrain(t, c) })

	// h. The system service down while users log in: no audit entry is lost.
	t.Run("h_audit_while_system_down", func(t *testing.T) { auditWhileSystemDown(t, c) })

	// i. Lockouts, device tokens, rate limits and the once-made admin hold
	// across user instances sharing Redis (lockout_test.go).
	t.Run("i_lockout_across_instances", func(t *testing.T) { lockoutAcrossInstances(t, c) })
}

// sigtermDrain is step g of TestDistributed: load through both gateways
// while one of the two user processes gets SIGTERM. Not one request may fail,
// and the process must exit 0 within procStopGrace.
func sigtermDrain(t *testing.T, c *cluster) {
	if len(c.users) < 2 {
		t.Fatalf("%d live user processes, want 2", len(c.users))
	}
	name, pw := stepUser(t, c.clients(t)[0])
	const (
		workers  = 8
		loadFor  = 6 * time.Second
		termAt   = 1500 * time.Millisecond
		exitWait = 10 * time.Second
	)
	victim := c.users[0]
	hc := &http.Client{Timeout: 15 * time.Second}
	loginBody := fmt.Sprintf(`{"username":%q,"password":%q}`, name, pw)
	var (
		mu       sync.Mutex
		failures []string
		total    int
	)
	began := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			base := c.urls[g%len(c.urls)]
			for i := 0; time.Since(began) < loadFor; i++ {
				var req *http.Request
				if (g+i)%2 == 0 {
					req, _ = http.NewRequest("POST", base+"/api/v1/login", strings.NewReader(loginBody))
					req.Header.Set("Content-Type", "application/json")
				} else {
					req, _ = http.NewRequest("GET", base+"/readyz", nil)
				}
				at := time.Since(began)
				rsp, err := hc.Do(req)
				var msg string
				if err != nil {
					msg = err.Error()
				} else {
					b, _ := io.ReadAll(rsp.Body)
					rsp.Body.Close()
					if rsp.StatusCode != http.StatusOK {
						msg = fmt.Sprintf("%d %s", rsp.StatusCode, b)
					}
				}
				mu.Lock()
				total++
				if msg != "" {
					failures = append(failures, fmt.Sprintf("web%d %s %s at +%v, answered after %v: %s", g%len(c.urls)+1,
						req.Method, req.URL.Path, at.Round(time.Millisecond), (time.Since(began)-at).Round(time.Millisecond), msg))
				}
				mu.Unlock()
			}
		}(g)
	}

	time.Sleep(termAt - time.Since(began))
	termed := time.Now()
	stopped := make(chan time.Duration, 1)
	go func() {
		victim.Stop(t)
		stopped <- time.Since(termed)
	}()
	wg.Wait()
	var drain time.Duration
	select {
	case drain = <-stopped:
	case <-time.After(exitWait + 2*time.Second):
		t.Fatalf("%s: Stop did not return", victim.Name)
	}
	c.users = c.users[1:]

	c.note(t, "%d requests over %v, SIGTERM to %s at +%v: %d failed; it exited in %v (%v)",
		total, time.Since(began).Round(time.Millisecond), victim.Name, termAt, len(failures),
		drain.Round(time.Millisecond), victim.ExitErr())
	if victim.Running() || drain > exitWait {
		t.Errorf("%s did not exit within %v of SIGTERM (%v)", victim.Name, exitWait, drain)
	} else if err := victim.ExitErr(); err != nil {
		t.Errorf("%s exited with %v after SIGTERM, want status 0\n%s", victim.Name, err, victim.Tail(20))
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed while %s drained:\n%s", len(failures), total, victim.Name, strings.Join(failures, "\n"))
		for _, p := range append(append([]*testenv.Proc{victim, c.system}, c.users...), c.webs...) {
			if s := p.Problems(began); s != "" {
				t.Log(s)
			}
		}
	}
}

func adminPlane(t *testing.T, c *cluster) {
	ws := c.clients(t)
	ws[0].register("mallory", "mallory-password")
	userTok, _ := ws[0].login("mallory", "mallory-password")
	adminTok, _ := ws[1].login("admin", testenv.AdminPassword)

	reg := etcdreg.NewRegistry(registry.Addrs(c.env.Etcd.Addr))
	cli := grpcclient.NewClient(microclient.Registry(reg), microclient.Selector(selector.NewSelector(selector.Registry(reg))))
	sys, users := systempb.NewSystemService("system", cli), userpb.NewUserService("user", cli)
	as := func(tok string) context.Context { return pauth.ContextWithToken(context.Background(), tok) }
	calls := map[string]func(ctx context.Context) error{
		"System.ListAudit": func(ctx context.Context) error {
			_, err := sys.ListAudit(ctx, &systempb.ListAuditRequest{})
			return err
		},
		"System.UpdateConfig": func(ctx context.Context) error {
			_, err := sys.UpdateConfig(ctx, &systempb.UpdateConfigRequest{Document: "auth:\n  whiteList: [/]\n"})
			return err
		},
		"System.Overview": func(ctx context.Context) error {
			_, err := sys.Overview(ctx, &systempb.OverviewRequest{})
			return err
		},
		"User.UpdateUser": func(ctx context.Context) error {
			yes := true
			_, err := users.UpdateUser(ctx, &userpb.UpdateUserRequest{Id: "x", Disabled: &yes})
			return err
		},
		"User.ListUsers": func(ctx context.Context) error {
			_, err := users.ListUsers(ctx, &userpb.ListUsersRequest{})
			return err
		},
	}
	for name, call := range calls {
		if e := merrors.FromError(call(context.Background())); e.Code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %v, want 401", name, e)
		}
		if e := merrors.FromError(call(as(userTok))); e.Code != http.StatusForbidden || e.Id != "auth.forbidden" {
			t.Errorf("%s with a user's token: %v, want 403 auth.forbidden", name, e)
		}
	}
	if rsp, err := users.ListUsers(as(adminTok), &userpb.ListUsersRequest{Query: "mallory"}); err != nil || rsp.Total != 1 {
		t.Fatalf("User.ListUsers as admin: %v, %v", rsp, err)
	}

	// Disable on web1 ends the session that web2 has cached.
	ws[1].expect(ws[1].do("GET", "/api/v1/me", userTok, nil), http.StatusOK)
	id := userID(t, ws[0], adminTok, "mallory")
	ws[0].expect(ws[0].do("PATCH", "/api/v1/admin/users/"+id, adminTok, map[string]any{"disabled": true}), http.StatusOK)
	disabled := time.Now()
	for {
		r := ws[1].do("GET", "/api/v1/me", userTok, nil)
		if r.StatusCode == http.StatusUnauthorized {
			c.note(t, "disable on web1 refused on web2 after %d ms", time.Since(disabled).Milliseconds())
			break
		}
		if time.Since(disabled) > time.Second {
			t.Fatalf("web2 still accepts a disabled user's token after %v (status %d)", time.Since(disabled), r.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A config edit is written to etcd, where every service reads it.
	doc := "auth:\n  expireTime: 900\n  refreshTime: 300\nlogin:\n  maxFailures: 9\n" + testenv.RelaxedRates
	ws[0].expect(ws[0].do("PUT", "/api/v1/admin/config", adminTok, doc, "Content-Type", "application/yaml"), http.StatusOK)
	if got := c.env.Etcd.Get(t, config.EtcdKey); !strings.Contains(got, "maxFailures: 9") {
		t.Fatalf("etcd holds %q after the edit", got)
	}
	if m := ws[1].expect(ws[1].do("GET", "/api/v1/admin/config", adminTok, nil), http.StatusOK).json(t); !strings.Contains(m["yaml"].(string), "maxFailures: 9") {
		t.Fatalf("config through web2: %v", m)
	}
}

func permissionsLive(t *testing.T, c *cluster) {
	ws := c.clients(t)
	adminTok, _ := ws[0].login("admin", testenv.AdminPassword)
	ws[0].register("audrey", "audrey-password")
	ws[0].expect(ws[0].do("POST", "/api/v1/admin/roles", adminTok, map[string]any{"name": "auditor", "permissions": []string{"audit.read"}}), http.StatusCreated)
	id := userID(t, ws[0], adminTok, "audrey")
	ws[1].expect(ws[1].do("PATCH", "/api/v1/admin/users/"+id, adminTok, map[string]any{"roles": []string{"user", "auditor"}}), http.StatusOK)
	tok, _ := ws[1].login("audrey", "audrey-password")
	key := ws[0].expect(ws[0].do("POST", "/api/v1/me/tokens", tok, map[string]any{
		"name": "script", "permissions": []string{"audit.read"}, "expires_at": time.Now().Add(time.Hour).Unix(),
	}), http.StatusCreated).json(t)["token"].(string)

	reg := etcdreg.NewRegistry(registry.Addrs(c.env.Etcd.Addr))
	cli := grpcclient.NewClient(microclient.Registry(reg), microclient.Selector(selector.NewSelector(selector.Registry(reg))))
	sys := systempb.NewSystemService("system", cli)
	as := func(tok string) context.Context { return pauth.ContextWithToken(context.Background(), tok) }

	// readers are every way to read the audit log: each gateway and a
	// direct RPC (system asks a user instance, round robin, for the grant).
	readers := func(cred string) map[string]func() int {
		return map[string]func() int{
			"web1": func() int { return ws[0].do("GET", "/api/v1/admin/audit", cred, nil).StatusCode },
			"web2": func() int { return ws[1].do("GET", "/api/v1/admin/audit", cred, nil).StatusCode },
			"rpc": func() int {
				_, err := sys.ListAudit(as(cred), &systempb.ListAuditRequest{})
				if err == nil {
					return http.StatusOK
				}
				return int(merrors.FromError(err).Code)
			},
		}
	}
	for what, cred := range map[string]string{"session": tok, "API key": key} {
		for name, read := range readers(cred) {
			// Twice: each user instance answers one.
			for range 2 {
				if code := read(); code != http.StatusOK {
					t.Fatalf("%s: audit log through %s: %d, want 200", what, name, code)
				}
			}
		}
		for _, w := range ws {
			w.expect(w.do("PATCH", "/api/v1/admin/users/"+id, cred, map[string]any{"disabled": true}), http.StatusForbidden)
			w.expect(w.do("PUT", "/api/v1/admin/config", cred, map[string]any{}), http.StatusForbidden)
		}
		_, err := sys.UpdateConfig(as(cred), &systempb.UpdateConfigRequest{Document: "login:\n  maxFailures: 1000\n"})
		if e := merrors.FromError(err); e.Code != http.StatusForbidden {
			t.Fatalf("%s: direct System.UpdateConfig: %v, want 403", what, err)
		}
	}

	// within waits until every reader answers want, each twice in a row (so
	// both user instances), and returns how long after start the round of
	// reads that saw it began; it fails when a round begun after 1 s still
	// does not.
	within := func(what string, want int, readers map[string]func() int) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			round := time.Since(start)
			done := true
			for _, read := range readers {
				// Two reads: each user instance answers one.
				first, second := read(), read()
				if first != want || second != want {
					done = false
				}
			}
			if done {
				return round
			}
			if round > time.Second {
				t.Fatalf("%s: not applied everywhere after %v", what, round)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	all := func() map[string]func() int {
		m := map[string]func() int{}
		for what, cred := range map[string]string{"session": tok, "key": key} {
			for name, read := range readers(cred) {
				m[what+" via "+name] = read
			}
		}
		return m
	}()
	ws[0].expect(ws[0].do("PUT", "/api/v1/admin/roles/auditor", adminTok, map[string]any{"permissions": []string{}}), http.StatusOK)
	took := within("audit.read taken from auditor", http.StatusForbidden, all)
	c.note(t, "a role edit on web1 refused the session and the key on both gateways and by RPC after %d ms", took.Milliseconds())
	ws[1].expect(ws[1].do("PUT", "/api/v1/admin/roles/auditor", adminTok, map[string]any{"permissions": []string{"audit.read"}}), http.StatusOK)
	took = within("audit.read given back", http.StatusOK, all)
	c.note(t, "a role edit on web2 granted again everywhere after %d ms", took.Milliseconds())

	// A revoked key is refused at once on every gateway.
	keys := ws[0].expect(ws[0].do("GET", "/api/v1/me/tokens", tok, nil), http.StatusOK).json(t)["tokens"].([]any)
	ws[0].expect(ws[0].do("DELETE", "/api/v1/me/tokens/"+keys[0].(map[string]any)["id"].(string), tok, nil), http.StatusNoContent)
	for name, read := range readers(key) {
		if code := read(); code != http.StatusUnauthorized {
			t.Errorf("revoked key through %s: %d, want 401", name, code)
		}
	}
}
