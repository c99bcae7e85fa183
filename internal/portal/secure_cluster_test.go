package portal_test

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// TestSecureCluster runs the distributed cluster (two user, one system, two
// web processes) on an etcd that requires TLS, a client certificate and a
// password, a Redis on TLS only with an ACL user per service (web's cache
// included), and a NATS (broker and audit stream) on TLS with a user, with
// mutual TLS between the services by service name (certificates from
// `portal certs`, naming no address: the services listen on 127.0.0.1,
// which no certificate names), and checks that it works as the plain one
// does: a
// session and its revocation across gateways, a config change from etcd, a
// killed user instance. Then it starts a service with each setting wrong
// and checks that it refuses to start and says which.
func TestSecureCluster(t *testing.T) {
	parallel(t)
	for _, b := range []string{"etcd", "nats-server", "redis-server"} {
		testenv.Require(t, b)
	}
	pki := testenv.NewPKI(t, "backends")
	c := &cluster{t: t, bin: testenv.BuildPortal(t), certs: filepath.Join(t.TempDir(), "pki")}
	if out, err := exec.Command(c.bin, "certs", "--dir", c.certs).CombinedOutput(); err != nil {
		t.Fatalf("portal certs: %v\n%s", err, out)
	}
	c.env = testenv.Cluster{
		Etcd:  testenv.StartSecureEtcd(t, testenv.EtcdOptions{PKI: pki, ClientCerts: true, Auth: true}),
		NATS:  testenv.StartSecureNATS(t, testenv.NATSOptions{PKI: pki, Auth: true}),
		Redis: testenv.StartSecureRedis(t, testenv.RedisOptions{PKI: pki, ACL: true}),
		Keys:  testenv.NewPortalKeys(t),
	}
	etcd := c.env.Etcd
	etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 900\n  refreshTime: 300\n")
	for _, s := range []string{"user", "user", "system", "web", "web"} {
		c.start(s)
	}
	const name, pw = "carol", "carol-password-1"
	var token string

	if !t.Run("session_across_gateways", func(t *testing.T) {
		ws := c.clients(t)
		ws[0].register(name, pw)
		token, _ = ws[1].login(name, pw)
		for _, w := range ws {
			w.expect(w.do("GET", "/api/v1/me", token, nil), http.StatusOK)
		}
		if ok, missing := registered(t, etcd, "user", c.users); !ok {
			t.Fatalf("user nodes missing from the registry: %s", missing)
		}
		for _, p := range append(append(c.users, c.system), c.webs...) {
			if !strings.Contains(p.Log(), "RPC: mutual TLS") {
				t.Errorf("%s: no mutual TLS:\n%s", p.Name, p.Tail(20))
			}
		}
		// The audit stream (JetStream on the same NATS) carries the
		// registration to the system service.
		admin, _ := ws[0].login("admin", testenv.AdminPassword)
		poll.Wait(t, 15*time.Second, "carol's registration in the audit log", func() bool {
			entries, _ := listAudit(t, ws[0], admin, "")
			for _, e := range entries {
				if e.SubjectName == name || e.ActorName == name {
					return true
				}
			}
			return false
		})
	}) {
		return
	}

	if !t.Run("revocation_across_gateways", func(t *testing.T) {
		ws := c.clients(t)
		ws[1].expect(ws[1].do("POST", "/api/v1/logout", token, nil), http.StatusNoContent)
		poll.Wait(t, 10*time.Second, "web1 to refuse the token logged out on web2", func() bool {
			return ws[0].do("GET", "/api/v1/me", token, nil).StatusCode == http.StatusUnauthorized
		})
	}) {
		return
	}

	if !t.Run("config_change", func(t *testing.T) {
		ws := c.clients(t)
		etcd.Put(t, config.EtcdKey, "auth:\n  expireTime: 120\n  refreshTime: 60\n")
		streak := 0 // four in a row, two per gateway, reach both user nodes
		poll.Wait(t, 15*time.Second, "logins on both gateways to mint 120 s tokens", func() bool {
			if _, exp := ws[streak%2].login(name, pw); near(lifetime(exp), 120*time.Second) {
				streak++
			} else {
				streak = 0
			}
			return streak == 4
		})
	}) {
		return
	}

	if !t.Run("killed_user_instance", func(t *testing.T) {
		ws := c.clients(t)
		c.users[0].Kill(t)
		// A call that reaches the dead node is retried on the live one
		// when it never got through (connection refused), so logins go
		// on. One exception: a gateway that sends a login on its pooled
		// connection to the dead node before it has read that
		// connection's end cannot know whether the node ran it, and a
		// login is not safe to run twice (endpoint.Retryable), so it
		// answers 503. That connection is then closed, so it can happen
		// once per gateway at most. Round robin sends every other login
		// to the dead node: those succeed only through the retry.
		failed := make([]int, len(ws))
		for i := 0; i < 20; i++ {
			w := ws[i%2]
			r := w.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": pw})
			if r.StatusCode == http.StatusOK {
				continue
			}
			if failed[i%2]++; failed[i%2] > 1 || r.StatusCode != http.StatusServiceUnavailable || errorCode(t, r) != "server.unavailable" {
				t.Fatalf("login %d through %s: status %d (failure %d of this gateway): %s\n%s", i, c.webs[i%2].Name, r.StatusCode, failed[i%2], r.body, c.webs[i%2].Tail(20))
			}
			t.Logf("login %d through %s: 503, sent on the dead node's connection (allowed once per gateway):\n%s", i, c.webs[i%2].Name, c.webs[i%2].Tail(5))
		}
	}) {
		return
	}

	t.Run("no_secret_in_logs", func(t *testing.T) {
		secrets := []string{etcd.Password, c.env.NATS.Password}
		for _, u := range c.env.Redis.Users {
			secrets = append(secrets, u.Password)
		}
		for _, p := range append(append(c.users, c.system), c.webs...) {
			for _, secret := range secrets {
				for _, line := range strings.Split(p.Log(), "\n") {
					if strings.Contains(line, secret) {
						t.Errorf("%s logged a password: %s", p.Name, strings.ReplaceAll(line, secret, "***"))
					}
				}
			}
		}
	})

	t.Run("wrong_settings_refused", func(t *testing.T) {
		other := testenv.NewPKI(t, "other")
		wrong := []struct {
			name string
			set  map[string]string
			want string
		}{
			{"wrong CA", map[string]string{"PORTAL_ETCD_CA_FILE": other.CAFile}, "PORTAL_ETCD_CA_FILE"},
			{"wrong password", map[string]string{"ETCD_PASSWORD": "not-the-password"}, "ETCD_PASSWORD"},
			{"no credentials", map[string]string{"ETCD_USERNAME": "", "ETCD_PASSWORD": ""}, "set ETCD_USERNAME and ETCD_PASSWORD"},
			{"no client certificate", map[string]string{"PORTAL_ETCD_CERT_FILE": "", "PORTAL_ETCD_KEY_FILE": ""}, "PORTAL_ETCD_CERT_FILE"},
			{"redis: wrong CA", map[string]string{"PORTAL_REDIS_CA_FILE": other.CAFile}, "PORTAL_REDIS_CA_FILE"},
			{"redis: another service's user", map[string]string{"MICRO_STORE_ADDRESS": c.env.Redis.URL("system")}, "NOPERM"},
			{"redis: wrong password", map[string]string{"MICRO_STORE_ADDRESS": strings.Replace(c.env.Redis.URL("user"), c.env.Redis.Users["user"].Password, "not-it", 1)}, "refused the user and password"},
			{"nats: wrong CA", map[string]string{"PORTAL_NATS_CA_FILE": other.CAFile}, "PORTAL_NATS_CA_FILE"},
			{"nats: wrong password", map[string]string{"MICRO_BROKER_ADDRESS": strings.Replace(c.env.NATS.ClientURL(), c.env.NATS.Password, "not-it", 1)}, "refused the credentials"},
			{"nats: no credentials", map[string]string{"MICRO_BROKER_ADDRESS": "tls://" + c.env.NATS.Addr}, "refused the credentials"},
			{"mTLS: another service's certificate", serviceTLSEnv(c.certs, "web"), `names service "web"`},
		}
		// Each a process of its own that gives up (some after a dial
		// timeout): all at once, in goroutines rather than parallel
		// subtests, which would wait for the package's parallel slots.
		type refusal struct {
			out string
			err error
		}
		results := make([]chan refusal, len(wrong))
		for i, w := range wrong {
			env := testenv.PortalEnv(t, "user", c.env)
			for k, v := range serviceTLSEnv(c.certs, "user") {
				env[k] = v
			}
			for k, v := range w.set {
				env[k] = v
			}
			results[i] = make(chan refusal, 1)
			go func() {
				out, err := runToExit(c.bin, env, "user")
				results[i] <- refusal{out, err}
			}()
		}
		for i, w := range wrong {
			r := <-results[i]
			if r.err == nil || !strings.Contains(r.out, w.want) {
				t.Errorf("%s: portal user exited %v, want a refusal naming %s; output:\n%s", w.name, r.err, w.want, r.out)
			}
		}
	})
}

// errStillRunning: the process did not exit within runToExit's minute.
var errStillRunning = errors.New("still running after a minute")

// runToExit runs `portal <args>` with exactly env (empty values dropped)
// and returns its output and exit error once it ends, or an error if it
// runs for more than a minute: a service that should refuse to start.
func runToExit(bin string, env map[string]string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = nil
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	sort.Strings(cmd.Env)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), errStillRunning
	}
	return string(out), err
}
