package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	goredis "github.com/go-redis/redis/v8"

	"github.com/portal-go/portal/internal/testenv"
)

// Row 5: what a store read costs as the store grows. Redis is filled, with
// pipelined SETs, with keys no request needs (other users' sessions, audit
// entries: the kinds of key that grow), and at each size GET
// /api/v1/me/sessions and GET /api/v1/admin/users are timed one after
// another. With indexes their time stays flat; with the redis store plugin's
// List (a SCAN of the whole database) it grew with the keys.

// storeRow is one size of row 5.
type storeRow struct {
	keys           int
	sessions, list summary
	errs           int
}

// storeRowRun runs row 5 on a cluster of its own (Redis store, no gateway
// cache), at each size in keys, timing samples requests of each kind.
func storeRowRun(ctx context.Context, e *env, bin string, keys []int, samples int) []storeRow {
	for _, b := range []string{"etcd", "redis-server"} {
		testenv.Require(e, b)
	}
	tc := testenv.Cluster{
		Etcd:  testenv.StartEtcd(e),
		NATS:  testenv.StartNATS(e),
		Redis: testenv.StartRedis(e),
		Keys:  testenv.NewPortalKeys(e),
	}
	if r, err := testenv.RedisDo(tc.Redis.Addr, 2*time.Second, "CONFIG", "SET", "appendfsync", "everysec"); err != nil || r != "+OK" {
		e.Fatalf("redis CONFIG SET appendfsync: %q %v", r, err)
	}
	start := func(service, ready string) *testenv.Proc {
		env := testenv.PortalEnv(e, service, tc)
		env["PORTAL_CACHE"] = "none"
		return testenv.StartProc(e, bin, []string{service}, env, ready)
	}
	start("user", `msg="service started"`)
	start("system", `msg="service started"`)
	web := start("web", `msg="portal ready"`)
	base := "http://" + web.LogValue("portal ready", "http")
	token := signIn(e, base, true)
	admin, _ := json.Marshal(map[string]string{"username": "admin", "password": testenv.AdminPassword})
	adminToken := login(e, base, admin)

	rdb := goredis.NewClient(&goredis.Options{Addr: tc.Redis.Addr})
	defer rdb.Close()
	cl := &http.Client{Timeout: 30 * time.Second}
	var rows []storeRow
	filled := 0
	for _, n := range keys {
		if ctx.Err() != nil {
			break
		}
		progress("row 5: filling Redis to %d keys", n)
		have, err := rdb.DBSize(ctx).Result()
		if err != nil {
			e.Fatalf("DBSIZE: %v", err)
		}
		if filled, err = fillRedis(ctx, rdb, filled, n-int(have)); err != nil {
			e.Fatalf("filling Redis: %v", err)
		}
		r := storeRow{keys: n}
		var sess, list []time.Duration
		for range samples {
			d, ok := timedGet(ctx, cl, base+"/api/v1/me/sessions", token)
			sess = append(sess, d)
			if !ok {
				r.errs++
			}
			d, ok = timedGet(ctx, cl, base+"/api/v1/admin/users?limit=50", adminToken)
			list = append(list, d)
			if !ok {
				r.errs++
			}
		}
		r.sessions, r.list = latencies(sess), latencies(list)
		progress("row 5: %d keys: /me/sessions p50 %s, /admin/users p50 %s, %d errors", n, ms(r.sessions.p50), ms(r.list.p50), r.errs)
		rows = append(rows, r)
	}
	return rows
}

// fillRedis adds n keys that no request reads, in pipelines of 10k, named
// after the kinds that grow: sessions of other users (in user's table) and
// audit entries (in system's). from numbers them on from an earlier fill.
func fillRedis(ctx context.Context, rdb *goredis.Client, from, n int) (int, error) {
	value := []byte(`{"id":"filler","user_id":"someone-else","expires_at":"2099-01-01T00:00:00Z"}`)
	for n > 0 {
		batch := min(n, 10000)
		p := rdb.Pipeline()
		for i := range batch {
			k := "portal:user:session/fill-" + strconv.Itoa(from+i)
			if (from+i)%2 == 1 {
				k = "portal:system:a/e/fill-" + strconv.Itoa(from+i)
			}
			p.Set(ctx, k, value, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			return from, err
		}
		from += batch
		n -= batch
	}
	return from, nil
}

// timedGet times one GET with the token; ok when it answered 200.
func timedGet(ctx context.Context, cl *http.Client, url, token string) (time.Duration, bool) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	r.Header.Set("Authorization", "Bearer "+token)
	t := time.Now()
	rsp, err := cl.Do(r)
	if err != nil {
		return time.Since(t), false
	}
	_, _ = io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	return time.Since(t), rsp.StatusCode == http.StatusOK
}

// latencies summarises sequential request times (no throughput).
func latencies(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{p50: percentile(s, 50), p99: percentile(s, 99), max: percentile(s, 100)}
}

// writeStoreRows prints row 5.
func writeStoreRows(w io.Writer, rows []storeRow, samples int) {
	fmt.Fprintf(w, "### 5. Store reads as Redis grows\n\n")
	fmt.Fprintf(w, "Redis filled (pipelined SETs) with keys no request reads: other users' sessions and audit entries. "+
		"%d sequential requests of each kind per size, gateway cache off. Flat is the target: no request scans keys it does not need.\n\n", samples)
	t := newTable("keys>", "/me/sessions p50 ms>", "p99 ms>", "/admin/users p50 ms>", "p99 ms>", "errors>")
	for _, r := range rows {
		t.add(strconv.Itoa(r.keys), ms(r.sessions.p50), ms(r.sessions.p99), ms(r.list.p50), ms(r.list.p99), strconv.Itoa(r.errs))
	}
	fmt.Fprintln(w, t)
}
