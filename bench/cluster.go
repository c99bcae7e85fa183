package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv"
)

// benchConfig is the config center's document during the benchmark: tokens
// live an hour, so that no measured request is a renewal; the rate limits of
// login are out of reach, so that logins are measured, not refused.
const benchConfig = "auth:\n  expireTime: 3600\n  refreshTime: 60\n  sessionMaxAge: 86400\n" + testenv.RelaxedRates

// Who the benchmark logs in as.
const (
	benchUser     = "bench"
	benchPassword = "bench-password-1"
)

// cluster is Portal in distributed mode on etcd, NATS and Redis, every
// service its own process, plus the baseline on the same Redis.
type cluster struct {
	redisPid  int
	redisAddr string
	user      *testenv.Proc
	system    *testenv.Proc
	web       *testenv.Proc // PORTAL_CACHE=memory (the default)
	webNone   *testenv.Proc // PORTAL_CACHE=none
	webRedis  *testenv.Proc // PORTAL_CACHE=redis, on the user service's Redis
	baseline  *testenv.Proc
	// Base URLs.
	webURL, webNoneURL, webRedisURL, baselineURL string
	// pprof addresses by process, with -profile.
	pprof map[*testenv.Proc]string
	// token is the bench user's access token, good on every server above.
	token string
}

// startCluster starts etcd, NATS and Redis, then `portal user`, `portal
// system`, three `portal web` (cache in memory, in Redis, off) and the
// baseline, logs the bench user in, and checks that all four answer GET
// /api/v1/me with the same JSON. extra is more environment for every
// portal process (not the baseline).
func startCluster(e *env, bin string, profile bool, extra map[string]string) *cluster {
	for _, b := range []string{"etcd", "redis-server"} {
		testenv.Require(e, b)
	}
	tc := testenv.Cluster{
		Etcd:  testenv.StartEtcd(e),
		NATS:  testenv.StartNATS(e),
		Redis: testenv.StartRedis(e),
		Keys:  testenv.NewPortalKeys(e),
	}
	c := &cluster{pprof: map[*testenv.Proc]string{}}
	// The tests' Redis fsyncs every write; a deployment (and Redis' own
	// default for the append-only file) fsyncs once a second.
	if r, err := testenv.RedisDo(tc.Redis.Addr, 2*time.Second, "CONFIG", "SET", "appendfsync", "everysec"); err != nil || r != "+OK" {
		e.Fatalf("redis CONFIG SET appendfsync: %q %v", r, err)
	}
	c.redisPid, c.redisAddr = redisPid(e, tc.Redis.Addr), tc.Redis.Addr
	tc.Etcd.Put(e, config.EtcdKey, benchConfig)

	start := func(service string, own map[string]string) *testenv.Proc {
		env := testenv.PortalEnv(e, service, tc)
		maps.Copy(env, extra)
		maps.Copy(env, own)
		var pprofAddr string
		if profile {
			pprofAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(e))
			env["MICRO_DEBUG_PROFILE"] = "http"
			env["PORTAL_PROFILE_ADDRESS"] = pprofAddr
		}
		ready := `msg="service started"`
		if service == "web" {
			ready = `msg="portal ready"`
		}
		p := testenv.StartProc(e, bin, []string{service}, env, ready)
		if profile {
			c.pprof[p] = pprofAddr
			progress("%s (pid %d): pprof at http://%s/debug/pprof/", p.Name, p.Pid, pprofAddr)
		}
		return p
	}
	c.user = start("user", nil)
	c.system = start("system", nil)
	c.web = start("web", map[string]string{"PORTAL_CACHE": "memory"})
	c.webNone = start("web", map[string]string{"PORTAL_CACHE": "none"})
	c.webRedis = start("web", map[string]string{"PORTAL_CACHE": "redis", "PORTAL_CACHE_ADDRESS": tc.Redis.Addr})
	c.webURL = "http://" + c.web.LogValue("portal ready", "http")
	c.webNoneURL = "http://" + c.webNone.LogValue("portal ready", "http")
	c.webRedisURL = "http://" + c.webRedis.LogValue("portal ready", "http")

	exe, err := os.Executable()
	if err != nil {
		e.Fatalf("the harness's own path: %v", err)
	}
	c.baseline = testenv.StartProc(e, exe, []string{"baseline", "-redis", tc.Redis.Addr},
		map[string]string{"MICRO_AUTH_PUBLIC_KEY": tc.Keys.Public, "GIN_MODE": "release"}, baselineReady)
	c.baselineURL = "http://" + c.baseline.LogValue(baselineReady, "http")

	c.token = signIn(e, c.webURL, true)
	// The gateways answer alike; the baseline answers the account's id,
	// name and roles, which it reads from the same record (Portal's /me
	// also carries the roles' permissions and the profile: the baseline does
	// less, so the comparison favours it).
	var first string
	for _, u := range []string{c.webURL, c.webNoneURL, c.webRedisURL} {
		body := get(e, u+"/api/v1/me", c.token)
		if first == "" {
			first = body
		} else if body != first {
			e.Fatalf("GET /api/v1/me differs: %s answers %s, %s answered %s", u, body, c.webURL, first)
		}
	}
	if b := get(e, c.baselineURL+"/api/v1/me", c.token); account(e, b) != account(e, first) {
		e.Fatalf("GET /api/v1/me differs: the baseline answers %s, %s answered %s", b, c.webURL, first)
	}
	e.Logf("GET /api/v1/me answers %s everywhere", first)
	return c
}

// procs are the processes a request through web costs: web, user, system
// and Redis.
func (c *cluster) procs(web *testenv.Proc) procs {
	return procs{cpu: []int{web.Pid, c.user.Pid, c.system.Pid, c.redisPid}, mem: []int{web.Pid, c.user.Pid, c.system.Pid},
		names: []string{"web", "user", "system", "redis"}, loadgen: true}
}

// redisPid asks Redis for its process id.
func redisPid(e *env, addr string) int {
	info, err := testenv.RedisDo(addr, 2*time.Second, "INFO", "server")
	if err != nil {
		e.Fatalf("redis INFO: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if pid, err := strconv.Atoi(v); err == nil {
				return pid
			}
		}
	}
	e.Fatalf("redis INFO has no process_id:\n%s", info)
	return 0
}

// redisCommands is how many commands Redis has processed (INFO stats),
// counting the INFO itself; -1 when Redis does not say.
func (c *cluster) redisCommands() int64 {
	info, err := testenv.RedisDo(c.redisAddr, 2*time.Second, "INFO", "stats")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// signIn registers the bench user (when register) and logs in, returning
// the token.
func signIn(e *env, base string, register bool) string {
	creds, _ := json.Marshal(map[string]string{"username": benchUser, "password": benchPassword})
	if register {
		post(e, base+"/api/v1/register", creds, http.StatusCreated)
	}
	return login(e, base, creds)
}

// login posts creds to base's login API and returns the token.
func login(e *env, base string, creds []byte) string {
	var rsp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(post(e, base+"/api/v1/login", creds, http.StatusOK)), &rsp); err != nil || rsp.Token == "" {
		e.Fatalf("login at %s: no token (%v)", base, err)
	}
	return rsp.Token
}

// post sends a JSON body and wants the status; it returns the body.
func post(e *env, url string, body []byte, want int) string {
	rsp, err := http.Post(url, "application/json", bytes.NewReader(body))
	return answer(e, "POST "+url, rsp, err, want)
}

// get sends GET with the token and wants 200; it returns the body.
func get(e *env, url, token string) string {
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		e.Fatalf("GET %s: %v", url, err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	rsp, err := http.DefaultClient.Do(r)
	return answer(e, "GET "+url, rsp, err, http.StatusOK)
}

func answer(e *env, what string, rsp *http.Response, err error, want int) string {
	if err != nil {
		e.Fatalf("%s: %v", what, err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		e.Fatalf("%s: %v", what, err)
	}
	if rsp.StatusCode != want {
		e.Fatalf("%s: %s %s, want %d", what, rsp.Status, b, want)
	}
	return string(b)
}

// cpuProfile fetches a CPU profile of the process serving pprof at addr
// over the next d into file. It runs beside a measured slice, so it reports
// a failure rather than aborting.
func cpuProfile(ctx context.Context, addr string, d time.Duration, file string) error {
	secs := max(int(d.Seconds()), 1)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		return err
	}
	rsp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof at %s: %s", addr, rsp.Status)
	}
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// account is the id, name and roles of a GET /api/v1/me answer.
func account(e *env, body string) string {
	var a struct {
		ID       string   `json:"id"`
		Username string   `json:"username"`
		Roles    []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		e.Fatalf("GET /api/v1/me: %v: %s", err, body)
	}
	return fmt.Sprintf("%s %s %q", a.ID, a.Username, a.Roles)
}
