// Command bench is Portal's benchmark harness (`make bench`). On this
// machine, over loopback only, it measures side by side and interleaved:
//
//  1. authenticated GET /api/v1/me through Portal in distributed mode
//     (`portal web`, `user`, `system` on etcd, Redis and NATS) against a
//     baseline, one gin process doing the same work;
//  2. the same with the gateway's cache off (PORTAL_CACHE=none);
//  3. logins per second through Portal against the password hash alone;
//  4. the embedded mode: start to ready, and resident memory idle and
//     after load;
//  5. GET /api/v1/me/sessions and the admin user list as Redis grows from
//     1k to 1M keys (store reads must not scan keys they do not need);
//  6. GET /readyz (two RPCs: user's and system's Health) through Portal in
//     distributed mode with its services on gRPC (the default) against one
//     with them on mucp over go-micro's http transport;
//
// and prints markdown tables with the targets of issue 7. Progress goes to
// stderr, the tables to stdout. `bench -quick` is a short run for
// development; `bench -h` lists the knobs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/user"
)

// options are the command line.
type options struct {
	plan
	concs         []int
	rows          map[int]bool
	storeKeys     []int
	storeSamples  int
	loginDuration time.Duration
	loginConc     int
	rpcDuration   time.Duration
	rpcConc       int
	idle          time.Duration
	embeddedLoad  time.Duration
	rest          time.Duration
	profileDir    string
	portalBin     string
	verbose       bool
	args          []string // as given, for the report
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "a short run for development: 2s per side and concurrency, 5s of embedded load (other flags still apply)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "rows 1-2: measured time per side at each concurrency, split over -rounds")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "rows 1-3 and 6: warm-up per side before each concurrency")
	fs.IntVar(&o.rounds, "rounds", 2, "slices per side, interleaved A B A B")
	fs.Int64Var(&o.max, "max", 2_000_000, "bound on the requests of one slice")
	concs := fs.String("conc", "1,16,64,256", "rows 1-2: concurrencies (connections)")
	rows := fs.String("rows", "1,2,3,4,5,6", "rows to run")
	storeKeys := fs.String("store_keys", "1000,10000,100000,1000000", "row 5: the sizes of Redis, in keys")
	fs.IntVar(&o.storeSamples, "store_samples", 40, "row 5: sequential requests of each kind per size")
	fs.DurationVar(&o.loginDuration, "login_duration", 10*time.Second, "row 3: measured time per side")
	fs.IntVar(&o.loginConc, "login_conc", 0, "row 3: concurrent logins (0: twice the user service's hash slots, so that a login is always waiting for a free slot)")
	fs.DurationVar(&o.rpcDuration, "rpc_duration", 16*time.Second, "row 6: measured time per side, split over -rounds")
	fs.IntVar(&o.rpcConc, "rpc_conc", 32, "row 6: concurrency (connections)")
	fs.DurationVar(&o.idle, "idle", 3*time.Second, "row 4: idle time before the idle RSS")
	fs.DurationVar(&o.embeddedLoad, "embedded_load", time.Minute, "row 4: load before the loaded RSS")
	fs.DurationVar(&o.rest, "rest", 30*time.Second, "row 4: idle time after the load before the rested RSS")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of web and user at concurrency 64 of rows 1-2, and of row 3, into this directory")
	fs.StringVar(&o.portalBin, "portal", "", "the portal binary to measure (default: the tests' shared build, with -tags up)")
	fs.BoolVar(&o.verbose, "v", false, "log what testenv does")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"duration": "2s", "warmup": "500ms", "login_duration": "2s", "rpc_duration": "4s", "idle": "1s", "embedded_load": "5s", "rest": "5s"} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	var err error
	if o.concs, err = ints(*concs); err != nil {
		return o, fmt.Errorf("-conc: %w", err)
	}
	rs, err := ints(*rows)
	if err != nil {
		return o, fmt.Errorf("-rows: %w", err)
	}
	if o.storeKeys, err = ints(*storeKeys); err != nil {
		return o, fmt.Errorf("-store_keys: %w", err)
	}
	o.rows = map[int]bool{}
	for _, r := range rs {
		if r < 1 || r > 6 {
			return o, fmt.Errorf("-rows: no row %d", r)
		}
		o.rows[r] = true
	}
	if o.rounds < 1 || o.duration <= 0 || o.rpcDuration <= 0 || o.rpcConc < 1 {
		return o, fmt.Errorf("-rounds, -duration, -rpc_duration and -rpc_conc must be positive")
	}
	o.profileC = 64
	o.args = args
	return o, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := runBaseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "faults" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		faultsMain(ctx, os.Args[2:])
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run does the whole benchmark and writes the report to out.
func run(ctx context.Context, o options, out io.Writer) error {
	return withEnv(ctx, o.verbose, func(e *env) error { return bench(ctx, e, o, out) })
}

// bench is the benchmark on e.
func bench(ctx context.Context, e *env, o options, out io.Writer) error {
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	rep := &report{opts: o, loadBefore: loadAverage(), began: time.Now()}
	progress("load average %s; building portal", rep.loadBefore)
	bin := portalBinary(e, o.portalBin)

	if o.rows[1] || o.rows[2] || o.rows[3] {
		c := startCluster(e, bin, o.profileDir != "", nil)
		meSide := func(name, base string, p procs) side {
			cl := newClient(maxOf(o.concs))
			req := request{method: http.MethodGet, url: base + "/api/v1/me", token: c.token, want: http.StatusOK}
			return side{name: name, procs: p, redis: c.redisCommands, call: func(ctx context.Context) error { return do(ctx, cl, req) }}
		}
		base := meSide("baseline", c.baselineURL, procs{cpu: []int{c.baseline.Pid, c.redisPid}, mem: []int{c.baseline.Pid},
			names: []string{"baseline", "redis"}, loadgen: true})
		profiler := func(ps ...*testenv.Proc) func(time.Duration, string) func() {
			if o.profileDir == "" {
				return nil
			}
			return func(d time.Duration, label string) func() {
				return profileAll(ctx, c, o.profileDir, label, d, ps...)
			}
		}
		if o.rows[1] {
			a := meSide("portal", c.webURL, c.procs(c.web))
			a.profile = profiler(c.web, c.user)
			rep.me = append(rep.me, meGroup{"1", compare(ctx, "row 1", o.plan, a, base, o.concs)})
			a = meSide("portal, redis cache", c.webRedisURL, c.procs(c.webRedis))
			a.profile = profiler(c.webRedis, c.user)
			rep.me = append(rep.me, meGroup{"1r", compare(ctx, "row 1r", o.plan, a, base, o.concs)})
		}
		if o.rows[2] {
			a := meSide("portal, no cache", c.webNoneURL, c.procs(c.webNone))
			a.profile = profiler(c.webNone, c.user)
			rep.me = append(rep.me, meGroup{"2", compare(ctx, "row 2", o.plan, a, base, o.concs)})
		}
		if o.rows[3] {
			rep.row3, rep.hashSlots = loginRow(ctx, e, o, c, c.procs(c.web), profiler(c.web, c.user))
		}
	}
	if o.rows[4] && ctx.Err() == nil {
		r := runEmbedded(ctx, e, bin, o.idle, o.embeddedLoad, o.rest)
		rep.row4 = &r
	}
	if o.rows[5] && ctx.Err() == nil {
		rep.row5 = storeRowRun(ctx, e, bin, o.storeKeys, o.storeSamples)
	}
	if o.rows[6] && ctx.Err() == nil {
		rep.row6 = rpcRow(ctx, e, o, bin)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.loadAfter = loadAverage()
	rep.took = time.Since(rep.began)
	rep.write(out)
	return nil
}

// fileName keeps letters and digits of s and turns runs of anything else
// into one '-': "row 2-c64-portal, no cache" is "row-2-c64-portal-no-cache".
func fileName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func maxOf(ns []int) int {
	m := 1
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}

// profileAll starts CPU profiles of ps over d into dir, named by label and
// process; the returned function waits for them.
func profileAll(ctx context.Context, c *cluster, dir, label string, d time.Duration, ps ...*testenv.Proc) func() {
	done := make(chan struct{}, len(ps))
	for _, p := range ps {
		addr := c.pprof[p]
		file := filepath.Join(dir, fileName(label+"-"+p.Name)+".pprof")
		go func() {
			defer func() { done <- struct{}{} }()
			if err := cpuProfile(ctx, addr, d, file); err != nil {
				progress("profile %s: %v", file, err)
			}
		}()
	}
	return func() {
		for range ps {
			<-done
		}
	}
}

// loginRow is row 3: logins through Portal's gateway against argon2id alone,
// with the user service's parameters, in this process.
func loginRow(ctx context.Context, e *env, o options, c *cluster, p procs, profile func(time.Duration, string) func()) ([2]result, int) {
	params, slots := user.HashParams()
	conc := o.loginConc
	if conc == 0 {
		// With one login per slot, a slot idles while its login is in the
		// gateway, the RPC or Redis: 0.72x instead of 0.83x on 2 cores.
		conc = 2 * slots
	}
	creds, _ := json.Marshal(map[string]string{"username": benchUser, "password": benchPassword})
	cl := newClient(conc)
	in := request{method: http.MethodPost, url: c.webURL + "/api/v1/login", body: creds, want: http.StatusOK}
	portalSide := side{name: "portal login", procs: p, profile: profile, redis: c.redisCommands,
		call: func(ctx context.Context) error { return do(ctx, cl, in) }}

	hash, err := argon2id.CreateHash(benchPassword, &params)
	if err != nil {
		e.Fatalf("argon2id: %v", err)
	}
	// The hash alone may run slots at once, as in the user service.
	sem := make(chan struct{}, slots)
	hashSide := side{name: "argon2id alone", procs: procs{cpu: []int{os.Getpid()}, names: []string{"bench"}},
		call: func(context.Context) error {
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, err := argon2id.ComparePasswordAndHash(benchPassword, hash)
			if err == nil && !ok {
				err = fmt.Errorf("argon2id: no match")
			}
			return err
		}}
	pl := o.plan
	pl.duration = o.loginDuration
	pl.profileC = conc
	r := compare(ctx, "row 3", pl, portalSide, hashSide, []int{conc})
	if len(r) == 0 {
		return [2]result{}, slots
	}
	return r[0], slots
}

// rpcRow is row 6: GET /readyz through a Portal whose services speak gRPC
// (the default) against one whose services speak mucp, each in its own
// cluster. The gateway gives the two Health calls 2 s and the load
// generator's client each request 5 s, so a call lost on the way is an
// error (503 or a timeout), not a request missing from the count.
func rpcRow(ctx context.Context, e *env, o options, bin string) [2]result {
	readyz := func(name string, rpc map[string]string) side {
		progress("row 6: starting Portal, %s", name)
		c := startCluster(e, bin, false, rpc)
		cl := newClient(o.rpcConc)
		req := request{method: http.MethodGet, url: c.webURL + "/readyz", want: http.StatusOK}
		return side{name: name, procs: c.procs(c.web), redis: c.redisCommands,
			call: func(ctx context.Context) error { return do(ctx, cl, req) }}
	}
	grpc := readyz("gRPC (default)", nil)
	mucp := readyz("mucp over http", map[string]string{"MICRO_SERVER": "mucp", "MICRO_CLIENT": "mucp"})
	pl := o.plan
	pl.duration = o.rpcDuration
	pl.profileC = 0
	r := compare(ctx, "row 6", pl, grpc, mucp, []int{o.rpcConc})
	if len(r) == 0 {
		return [2]result{}
	}
	return r[0]
}

// report is everything measured, printed at the end.
type report struct {
	opts                  options
	began                 time.Time
	took                  time.Duration
	loadBefore, loadAfter string
	me                    []meGroup // rows 1 and 2
	row3                  [2]result
	hashSlots             int
	row4                  *embeddedResult
	row5                  []storeRow
	row6                  [2]result
}

// meGroup is one Portal configuration of rows 1-2 against the baseline, at
// each concurrency.
type meGroup struct {
	row   string // "1", "1r", "2"
	pairs [][2]result
}

// target is the group's throughput target (and, for row 1, p99's) at
// targetConcRow1, and whether a ratio meets it.
func (g meGroup) target(tp, p99 float64) (string, bool) {
	if g.row == "2" {
		return fmt.Sprintf(">= %.1fx", targetRow2), tp >= targetRow2
	}
	return fmt.Sprintf(">= %.1fx, p99 <= %.1fx", targetRow1, targetRow1P99), tp >= targetRow1 && p99 <= targetRow1P99
}

// Targets of issue 7.
const (
	targetRow1     = 1.0
	targetRow1P99  = 1.5
	targetRow2     = 0.7
	targetRow3     = 0.9
	targetMaxLat   = time.Second
	targetReady    = time.Second
	targetIdleRSS  = 40 << 20
	targetLoadRSS  = 120 << 20
	targetConcRow1 = 64
)

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "## Portal benchmark (%s)\n\n", r.began.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %s. Load average %s before, %s after; took %v.\n", machine(), r.loadBefore, r.loadAfter, r.took.Round(time.Second))
	fmt.Fprintf(w, "Command: `%s`. Everything on loopback, the load generator on the same cores. "+
		"CPU/req is the CPU time of the processes under test (Portal's services or the baseline, and Redis) per successful request; "+
		"RSS is theirs (not Redis') at the end.\n\n", strings.TrimSpace("go run ./bench "+strings.Join(r.opts.args, " ")))

	var maxLat time.Duration
	latest := func(s summary) { maxLat = max(maxLat, s.max) }

	if len(r.me) > 0 {
		fmt.Fprintf(w, "### 1-2. GET /api/v1/me, Portal distributed vs one gin process\n\n")
		fmt.Fprintf(w, "Row 1: the gateway's cache on, in memory (the default); 1r: in Redis (PORTAL_CACHE=redis, as deploy/ runs it); "+
			"2: off (PORTAL_CACHE=none), every request makes the RPC and the store read.\n\n")
		t := newTable("row", "side", "conc>", "req/s>", "p50 ms>", "p99 ms>", "max ms>", "errors>", "RSS MiB>", "CPU us/req>", "Redis cmd/req>")
		for _, g := range r.me {
			for _, pair := range g.pairs {
				for _, res := range pair {
					s := summarize(res)
					latest(s)
					t.add(g.row, res.side, strconv.Itoa(res.conc), fmt.Sprintf("%.0f", s.rps), ms(s.p50), ms(s.p99), ms(s.max),
						strconv.Itoa(res.errs), mb(res.rss), us(s.cpuPerReq), fmt.Sprintf("%.1f", s.redisPerReq))
				}
			}
		}
		fmt.Fprintln(w, t)
		fmt.Fprintf(w, "Portal / baseline:\n\n")
		rt := newTable("row", "conc>", "throughput>", "p99>", "CPU/req>", "target", "met")
		for _, g := range r.me {
			for _, pair := range g.pairs {
				a, b := summarize(pair[0]), summarize(pair[1])
				tp, p99 := ratio(a.rps, b.rps), ratio(float64(a.p99), float64(b.p99))
				target, met := "", ""
				if pair[0].conc == targetConcRow1 {
					var ok bool
					target, ok = g.target(tp, p99)
					met = yesNo(ok)
				}
				rt.add(g.row, strconv.Itoa(pair[0].conc), x(tp), x(p99), x(ratio(float64(a.cpuPerReq), float64(b.cpuPerReq))), target, met)
			}
		}
		fmt.Fprintln(w, rt)
		fmt.Fprintf(w, "CPU per request by process at c%d (us, last slice):\n\n", targetConcRow1)
		for _, g := range r.me {
			for _, pair := range g.pairs {
				if pair[0].conc != targetConcRow1 {
					continue
				}
				for _, res := range pair {
					fmt.Fprintf(w, "- row %s, %s: %s\n", g.row, res.side, res.cpuBy)
				}
			}
		}
		fmt.Fprintln(w)
	}
	if r.row3[0].conc > 0 {
		fmt.Fprintf(w, "### 3. Logins: Portal vs the password hash alone (argon2id, the user service's parameters, %d at once)\n\n", r.hashSlots)
		t := newTable("side", "conc>", "per s>", "p50 ms>", "p99 ms>", "max ms>", "errors>", "CPU ms/op>", "Redis cmd/op>")
		for _, res := range r.row3 {
			s := summarize(res)
			latest(s)
			t.add(res.side, strconv.Itoa(res.conc), fmt.Sprintf("%.1f", s.rps), ms(s.p50), ms(s.p99), ms(s.max), strconv.Itoa(res.errs), ms(s.cpuPerReq), fmt.Sprintf("%.1f", s.redisPerReq))
		}
		fmt.Fprintln(w, t)
		tp := ratio(summarize(r.row3[0]).rps, summarize(r.row3[1]).rps)
		fmt.Fprintf(w, "Portal / hash: %s (target >= %.1fx: %s). CPU per login by process (us, last slice): %s.\n\n",
			x(tp), targetRow3, yesNo(tp >= targetRow3), r.row3[0].cpuBy)
	}
	if e := r.row4; e != nil {
		fmt.Fprintf(w, "### 4. Embedded mode (`portal` alone)\n\n")
		t := newTable("measure", "value>", "target", "met")
		t.add("start to GET /readyz 200, fresh data dir", ms(e.readyFirst)+" ms", "< 1 s", yesNo(e.readyFirst < targetReady))
		t.add("start to GET /readyz 200, restart", ms(e.readyRestart)+" ms", "< 1 s", yesNo(e.readyRestart < targetReady))
		t.add(fmt.Sprintf("RSS idle (%v after the restart)", r.opts.idle), mb(e.rssIdle)+" MiB", "< 40 MiB", yesNo(e.rssIdle < targetIdleRSS))
		me, in := summarize(e.me), summarize(e.logins)
		latest(me)
		latest(in)
		t.add(fmt.Sprintf("RSS after %v of load: GET /me x64 %.0f/s (p99 %s ms, max %s ms), logins x2 %.1f/s (p99 %s ms, max %s ms), %d errors",
			r.opts.embeddedLoad, me.rps, ms(me.p99), ms(me.max), in.rps, ms(in.p99), ms(in.max), e.me.errs+e.logins.errs),
			mb(e.rssLoaded)+" MiB", "< 120 MiB", yesNo(e.rssLoaded < targetLoadRSS))
		t.add("RSS peak (VmHWM)", mb(e.rssPeak)+" MiB", "", "")
		t.add(fmt.Sprintf("RSS idle again (%v after the load)", r.opts.rest), mb(e.rssRested)+" MiB", "< 40 MiB", yesNo(e.rssRested < targetIdleRSS))
		fmt.Fprintln(w, t)
	}
	if r.opts.rows[1] || r.opts.rows[2] || r.opts.rows[3] || r.opts.rows[4] {
		fmt.Fprintf(w, "Slowest request of rows 1-4: %s ms (target < 1 s: %s).\n\n", ms(maxLat), yesNo(maxLat < targetMaxLat))
	}
	if len(r.row5) > 0 {
		writeStoreRows(w, r.row5, r.opts.storeSamples)
	}
	if r.row6[0].conc > 0 {
		fmt.Fprintf(w, "### 6. GET /readyz (two RPCs), Portal distributed: its services on gRPC vs on mucp over http\n\n")
		fmt.Fprintf(w, "%d connections, %v per side in %d interleaved slices. Errors: answers other than 200 and requests that failed or timed out.\n\n",
			r.row6[0].conc, r.opts.rpcDuration, r.opts.rounds)
		t := newTable("RPC", "req/s>", "p50 ms>", "p99 ms>", "errors>")
		for _, res := range r.row6 {
			s := summarize(res)
			t.add(res.side, fmt.Sprintf("%.0f", s.rps), ms(s.p50), ms(s.p99), strconv.Itoa(res.errs))
		}
		fmt.Fprintln(w, t)
	}
}

// commit is the checkout's short commit, with "+dirty" for local changes.
func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty=+dirty").Output()
	if err != nil {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					return s.Value[:min(len(s.Value), 7)]
				}
			}
		}
		return "?"
	}
	return strings.TrimSpace(string(out))
}
