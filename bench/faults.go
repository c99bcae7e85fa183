package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/testenv"
)

// The fault run (`bench faults`, `make faults`): Portal in distributed mode
// (two web, two user, one system on etcd, Redis and NATS) under steady load
// through both gateways, while one fault after another is injected; a
// markdown table per fault of requests, failures, the slowest request, the
// recovery time and the data lost.

// faultOptions are the fault run's command line.
type faultOptions struct {
	outage    time.Duration // how long each outage lasts
	calm      time.Duration // load without a fault, before the first and after each
	readers   int           // concurrent GET /api/v1/me loops
	portalBin string
	verbose   bool
}

func parseFaultFlags(args []string) (faultOptions, error) {
	var o faultOptions
	fs := flag.NewFlagSet("bench faults", flag.ContinueOnError)
	fs.DurationVar(&o.outage, "outage", 15*time.Second, "how long each outage lasts (etcd, Redis, NATS, slow Redis)")
	fs.DurationVar(&o.calm, "calm", 5*time.Second, "load without a fault after each one (its failures still count to it)")
	fs.IntVar(&o.readers, "readers", 8, "concurrent loops of GET /api/v1/me, alternating gateways")
	fs.StringVar(&o.portalBin, "portal", "", "the portal binary (default: go build ./cmd/portal)")
	fs.BoolVar(&o.verbose, "v", false, "log what testenv does")
	return o, fs.Parse(args)
}

// faultStats are the requests made while one fault (and the calm after it)
// was on.
type faultStats struct {
	name     string
	began    time.Time    // the fault was injected
	cleared  atomic.Int64 // unix nanoseconds: the fault's cause was removed (restart, resume)
	requests atomic.Int64
	failed   atomic.Int64
	slowest  atomic.Int64 // nanoseconds
	lastFail atomic.Int64 // unix nanoseconds of the last failed request
	lost     []string     // what was acknowledged and then missing

	mu     sync.Mutex
	errors map[string]int // failures by request and answer, for stderr
}

// record counts one request that began at t and took d.
func (s *faultStats) record(t time.Time, d time.Duration, err error) {
	s.requests.Add(1)
	for {
		old := s.slowest.Load()
		if int64(d) <= old || s.slowest.CompareAndSwap(old, int64(d)) {
			break
		}
	}
	if err == nil {
		return
	}
	s.failed.Add(1)
	end := t.Add(d).UnixNano()
	for {
		old := s.lastFail.Load()
		if end <= old || s.lastFail.CompareAndSwap(old, end) {
			break
		}
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	at := "during"
	if c := s.cleared.Load(); c != s.began.UnixNano() && t.UnixNano() > c {
		at = "after"
	}
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int{}
	}
	s.errors[at+" the fault: "+msg]++
	s.mu.Unlock()
}

// clear records when the fault's cause was removed.
func (s *faultStats) clear(t time.Time) { s.cleared.Store(t.UnixNano()) }

// recovery is how long after the fault was cleared requests still failed
// (0 when none failed after it).
func (s *faultStats) recovery() time.Duration {
	last := s.lastFail.Load()
	if last == 0 {
		return 0
	}
	return max(time.Duration(last-s.cleared.Load()), 0)
}

// row is the fault's line of the table.
func (s *faultStats) row() []string {
	lost := "0"
	if len(s.lost) > 0 {
		lost = strings.Join(s.lost, "; ")
	}
	rec := "-"
	if s.failed.Load() > 0 {
		rec = ms(s.recovery()) + " ms"
	}
	return []string{s.name, fmt.Sprint(s.requests.Load()), fmt.Sprint(s.failed.Load()), ms(time.Duration(s.slowest.Load())) + " ms", rec, lost}
}

// faultCluster is the cluster the fault run works on.
type faultCluster struct {
	e      *env
	bin    string
	tc     testenv.Cluster
	users  []*testenv.Proc
	system *testenv.Proc
	webs   []string // base URLs
}

func (c *faultCluster) start(service string) *testenv.Proc {
	ready := `msg="service started"`
	if service == "web" {
		ready = `msg="portal ready"`
	}
	p := testenv.StartProc(c.e, c.bin, []string{service}, testenv.PortalEnv(c.e, service, c.tc), ready)
	switch service {
	case "user":
		c.users = append(c.users, p)
	case "web":
		c.webs = append(c.webs, "http://"+p.LogValue("portal ready", "http"))
	}
	return p
}

// runFaults is `bench faults`: it writes the table to out.
func runFaults(ctx context.Context, args []string, out io.Writer) error {
	o, err := parseFaultFlags(args)
	if err != nil {
		return err
	}
	return withEnv(ctx, o.verbose, func(e *env) error { return faults(ctx, e, o, out) })
}

// faults is the fault run on e.
func faults(ctx context.Context, e *env, o faultOptions, out io.Writer) error {
	bin := portalBinary(e, o.portalBin)
	for _, b := range []string{"etcd", "redis-server"} {
		testenv.Require(e, b)
	}
	c := &faultCluster{e: e, bin: bin, tc: testenv.Cluster{
		Etcd: testenv.StartEtcd(e), NATS: testenv.StartNATS(e), Redis: testenv.StartRedis(e), Keys: testenv.NewPortalKeys(e),
	}}
	c.tc.Etcd.Put(e, config.EtcdKey, benchConfig)
	c.start("user")
	c.start("user")
	c.system = c.start("system")
	c.start("web")
	c.start("web")
	progress("cluster up: 2 web, 2 user, 1 system")

	token := signIn(e, c.webs[0], true)
	var cur atomic.Pointer[faultStats]
	var all []*faultStats
	phase := func(name string) *faultStats {
		s := &faultStats{name: name, began: time.Now()}
		s.clear(s.began)
		all = append(all, s)
		cur.Store(s)
		progress("fault: %s", name)
		return s
	}
	phase("none (steady load)")

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	client := newClient(o.readers + 4)
	for i := range o.readers {
		wg.Go(func() {
			req := request{method: http.MethodGet, url: c.webs[i%2] + "/api/v1/me", token: token, want: http.StatusOK}
			for loadCtx.Err() == nil {
				began := time.Now()
				err := do(loadCtx, client, req)
				if loadCtx.Err() != nil {
					return
				}
				cur.Load().record(began, time.Since(began), err)
			}
		})
	}
	// Writes: registrations through both gateways; each acknowledged one
	// must log in at the end.
	var regMu sync.Mutex
	registered := map[string]*faultStats{}
	wg.Go(func() {
		for n := 0; loadCtx.Err() == nil; n++ {
			s := cur.Load()
			name := fmt.Sprintf("fault%d", n)
			body, _ := json.Marshal(map[string]string{"username": name, "password": benchPassword})
			began := time.Now()
			err := do(loadCtx, client, request{method: http.MethodPost, url: c.webs[n%2] + "/api/v1/register", body: body, want: http.StatusCreated})
			if loadCtx.Err() != nil {
				return
			}
			s.record(began, time.Since(began), err)
			if err == nil {
				regMu.Lock()
				registered[name] = s
				regMu.Unlock()
			}
			select {
			case <-loadCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	calm := func() {
		select {
		case <-ctx.Done():
		case <-time.After(o.calm):
		}
	}
	outage := func() {
		select {
		case <-ctx.Done():
		case <-time.After(o.outage):
		}
	}
	calm()

	// A session ended on web1 during the fault must be refused on web2
	// within 1 s; one accepted later is a revocation lost.
	revocation := func(s *faultStats) {
		if lost := revocationLost(c.webs); lost != "" {
			s.lost = append(s.lost, lost)
		}
	}

	s := phase("kill -9 a user node")
	c.users[0].Kill(e)
	revocation(s)
	calm()
	c.users = c.users[1:]
	c.start("user")

	s = phase("SIGTERM a user node")
	c.users[0].Stop(e)
	revocation(s)
	calm()
	c.users = c.users[1:]
	c.start("user")

	s = phase(fmt.Sprintf("etcd down %v", o.outage))
	c.tc.Etcd.Stop(e)
	revocation(s)
	outage()
	c.tc.Etcd.Start(e)
	s.clear(time.Now())
	calm()

	s = phase(fmt.Sprintf("Redis down %v", o.outage))
	c.tc.Redis.Stop(e)
	outage()
	c.tc.Redis.Start(e)
	s.clear(time.Now())
	revocation(s)
	calm()

	s = phase(fmt.Sprintf("NATS down %v", o.outage))
	c.tc.NATS.Stop(e)
	revocation(s)
	outage()
	c.tc.NATS.Start(e)
	s.clear(time.Now())
	revocation(s)
	calm()

	s = phase(fmt.Sprintf("slow Redis (stalls of 300 ms each second, %v)", o.outage))
	for end := time.Now().Add(o.outage); time.Now().Before(end) && ctx.Err() == nil; {
		c.tc.Redis.Pause(e)
		time.Sleep(300 * time.Millisecond)
		c.tc.Redis.Resume(e)
		time.Sleep(700 * time.Millisecond)
	}
	s.clear(time.Now())
	revocation(s)
	calm()

	stopLoad()
	wg.Wait()
	progress("checking %d acknowledged registrations", len(registered))
	for name, s := range registered {
		creds, _ := json.Marshal(map[string]string{"username": name, "password": benchPassword})
		if err := do(ctx, client, request{method: http.MethodPost, url: c.webs[0] + "/api/v1/login", body: creds, want: http.StatusOK}); err != nil {
			s.lost = append(s.lost, "registration "+name+": "+err.Error())
		}
	}

	t := newTable("fault", "requests", "failed", "slowest", "recovery", "data lost")
	for _, s := range all {
		t.add(s.row()...)
	}
	fmt.Fprintf(out, "Fault run (`make faults`): 2 web, 2 user, 1 system on etcd, Redis, NATS; %d readers of GET /api/v1/me and one registration every 100 ms, through both gateways; outages of %v, %v of load after each.\n\n", o.readers, o.outage, o.calm)
	fmt.Fprint(out, t.String())
	fmt.Fprintf(out, "\nRecovery: from the fault's end (restart, resume; for kill -9 and SIGTERM, the kill) to the last failed request. Data lost: acknowledged registrations that cannot log in at the end, and logouts on web1 still accepted on web2 after 1 s.\n")
	fmt.Fprintf(out, "Machine: %s; load average %s.\n", machine(), loadAverage())
	for _, s := range all {
		for msg, n := range s.errors {
			progress("%s: %d x %s", s.name, n, msg)
		}
	}
	return nil
}

// revocationLost logs in on the first gateway, has the second cache the
// session, logs out on the first and checks that the second refuses the
// session within 1 s. It returns what was lost ("" when nothing, or when
// the cluster could not log in or out at all: no acknowledged logout).
func revocationLost(webs []string) string {
	c := &http.Client{Timeout: requestTimeout}
	creds, _ := json.Marshal(map[string]string{"username": benchUser, "password": benchPassword})
	rsp, err := c.Post(webs[0]+"/api/v1/login", "application/json", strings.NewReader(string(creds)))
	if err != nil {
		return ""
	}
	var body struct {
		Token string `json:"token"`
	}
	_ = json.NewDecoder(rsp.Body).Decode(&body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK || body.Token == "" {
		return ""
	}
	me := func(base string) int {
		r, _ := http.NewRequest(http.MethodGet, base+"/api/v1/me", nil)
		r.Header.Set("Authorization", "Bearer "+body.Token)
		rsp, err := c.Do(r)
		if err != nil {
			return 0
		}
		rsp.Body.Close()
		return rsp.StatusCode
	}
	me(webs[1])
	r, _ := http.NewRequest(http.MethodPost, webs[0]+"/api/v1/logout", nil)
	r.Header.Set("Authorization", "Bearer "+body.Token)
	rsp, err = c.Do(r)
	if err != nil {
		return ""
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusNoContent {
		return ""
	}
	deadline := time.Now().Add(time.Second)
	for {
		code := me(webs[1])
		if code != http.StatusOK {
			return "" // refused (401), or not answered: not accepted
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("a logout on web1 still accepted on web2 after 1 s (status %d)", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultsMain runs `bench faults` for main.
func faultsMain(ctx context.Context, args []string) {
	if err := runFaults(ctx, args, os.Stdout); err != nil && err != flag.ErrHelp {
		fmt.Fprintln(os.Stderr, "bench faults:", err)
		os.Exit(1)
	}
}
