package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv"
)

// The log's behaviour, run against every store.Store Portal keeps it in: the
// file store (embedded mode), go-micro's memory store and its redis store
// (distributed mode; skipped without redis-server).

// opener opens an empty store for one subtest.
type opener func(t *testing.T) store.Store

// storeOpener returns the opener of a kind of store. Redis, when asked for,
// runs until t ends; each subtest gets a table of its own.
func storeOpener(t *testing.T, kind string) opener {
	t.Helper()
	switch kind {
	case "file":
		return func(t *testing.T) store.Store {
			st, err := filestore.New(t.TempDir(), store.Database("system"), store.Table("system"))
			if err != nil {
				t.Fatalf("filestore: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
	case "memory":
		return func(t *testing.T) store.Store {
			st := store.NewMemoryStore(store.Database("system"), store.Table("system"))
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
	case "redis":
		addr := testenv.StartRedis(t).Addr
		n := 0
		return func(t *testing.T) store.Store {
			n++
			table := fmt.Sprintf("portal:system%d:", n)
			st := redisstore.NewStore(store.Nodes(addr), store.Table(table),
				redisstore.WithRedisOptions(goredis.UniversalOptions{Addrs: []string{addr}}))
			cli := goredis.NewClient(&goredis.Options{Addr: addr})
			t.Cleanup(func() { _ = st.Close(); _ = cli.Close() })
			return redisKV{st, kv.NewRedis(cli, table, 5*time.Second)}
		}
	}
	t.Fatalf("no store %q", kind)
	return nil
}

// redisKV is the redis store plugin with the kv.Store on its key space, as
// the system service runs them.
type redisKV struct {
	store.Store
	*kv.Redis
}

// Close closes the store; the test's cleanup closes the kv.Store's client.
func (r redisKV) Close() error { return r.Store.Close() }

// logCases are the behaviours every store must give the log.
var logCases = []struct {
	name string
	run  func(t *testing.T, st store.Store)
}{
	{"order and paging", testOrderPaging},
	{"filters", testFilters},
	{"cursor stable under appends", testCursorStable},
	{"idempotent", testIdempotent},
	{"hourly counts", testHourlyCounts},
	{"no cap per hour", testNoCap},
	{"size bound", testSizeBound},
	{"retention", testRetention},
	{"invalid input", testInvalid},
	{"get", testGet},
	{"migrate", testMigrate},
}

func TestLog(t *testing.T) {
	for _, kind := range []string{"file", "memory", "redis"} {
		t.Run(kind, func(t *testing.T) {
			open := storeOpener(t, kind)
			for _, c := range logCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
			}
		})
	}
}

// now is the tests' clock: a fixed time, so that hour and day boundaries do
// not move under a test.
var now = time.Now().UTC()

func newLog(st store.Store, o audit.LogOptions) *audit.Log {
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	return audit.NewLog(st, o)
}

// entry is an entry of kind at now - ago, by and on the user name (id
// "id-"+name).
func entry(id string, kind audit.Kind, ago time.Duration, name string) audit.Entry {
	return audit.Entry{
		ID: id, Time: now.Add(-ago), Kind: kind,
		ActorID: "id-" + name, ActorName: name, SubjectID: "id-" + name, SubjectName: name,
		ClientAddr: "192.0.2.1",
	}
}

func mustAppend(t *testing.T, l *audit.Log, es ...audit.Entry) {
	t.Helper()
	for _, e := range es {
		if err := l.Append(context.Background(), e); err != nil {
			t.Fatalf("Append(%s): %v", e.ID, err)
		}
	}
}

// listAll follows the cursor through every page of q and returns the IDs
// in order, and the page sizes.
func listAll(t *testing.T, l *audit.Log, q audit.Query) (ids []string, sizes []int) {
	t.Helper()
	for range 100 {
		p, err := l.List(context.Background(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		for _, e := range p.Entries {
			ids = append(ids, e.ID)
		}
		sizes = append(sizes, len(p.Entries))
		if p.Next == "" {
			return ids, sizes
		}
		q.Cursor = p.Next
	}
	t.Fatalf("List(%+v): more than 100 pages", q)
	return nil, nil
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func testOrderPaging(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	// Appended out of order, over days with gaps, up to the retention's
	// first day; two at the same time, told apart by ID.
	es := []audit.Entry{
		entry("e3", audit.KindLogin, 2*time.Hour, "alice"),
		entry("e1", audit.KindRegister, 0, "alice"),
		entry("e6", audit.KindLogout, 49*time.Hour, "bob"),
		entry("e2b", audit.KindLogin, time.Hour, "bob"),
		entry("e2a", audit.KindLoginFailed, time.Hour, "bob"),
		entry("e7", audit.KindLogin, 29*24*time.Hour, "carol"),
		entry("e4", audit.KindLogin, 25*time.Hour, "carol"),
		entry("e5", audit.KindPasswordChange, 48*time.Hour, "alice"),
	}
	mustAppend(t, l, es...)
	want := []string{"e1", "e2b", "e2a", "e3", "e4", "e5", "e6", "e7"}
	for _, limit := range []int{1, 3, 8, 50} {
		ids, sizes := listAll(t, l, audit.Query{Limit: limit})
		wantIDs(t, fmt.Sprintf("limit %d", limit), ids, want...)
		for i, n := range sizes {
			if n != limit && i != len(sizes)-1 {
				t.Fatalf("limit %d: page sizes %v", limit, sizes)
			}
		}
	}
	// A page's entries come back whole.
	p, err := l.List(context.Background(), audit.Query{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, w := p.Entries[0], es[1]
	if !got.Time.Equal(w.Time) {
		t.Fatalf("time %v, want %v", got.Time, w.Time)
	}
	got.Time = w.Time
	if got != w {
		t.Fatalf("entry %+v, want %+v", got, w)
	}
	// Totals, by every index.
	for _, c := range []struct {
		q     audit.Query
		want  []string
		next  bool
		total int
	}{
		{audit.Query{Limit: 3}, []string{"e1", "e2b", "e2a"}, true, 0},
		{audit.Query{Total: true, Limit: 2}, []string{"e1", "e2b"}, true, 8},
		{audit.Query{Total: true, Kind: audit.KindLogin, Limit: 3}, []string{"e2b", "e3", "e4"}, true, 4},
		{audit.Query{Total: true, User: "ALICE", Limit: 2}, []string{"e1", "e3"}, true, 3},
		{audit.Query{Total: true, User: "carol", Kind: audit.KindLogin}, []string{"e4", "e7"}, false, 2},
	} {
		p, err := l.List(context.Background(), c.q)
		if err != nil {
			t.Fatalf("List(%+v): %v", c.q, err)
		}
		var ids []string
		for _, e := range p.Entries {
			ids = append(ids, e.ID)
		}
		wantIDs(t, fmt.Sprintf("%+v", c.q), ids, c.want...)
		if (p.Next != "") != c.next || p.Total != c.total {
			t.Fatalf("List(%+v): next %q, total %d; want next %v, total %d", c.q, p.Next, p.Total, c.next, c.total)
		}
	}
	// A total ignores the cursor.
	p1, _ := l.List(context.Background(), audit.Query{Limit: 2})
	p2, err := l.List(context.Background(), audit.Query{Cursor: p1.Next, Limit: 2, Total: true})
	if err != nil || p2.Total != 8 || len(p2.Entries) != 2 || p2.Entries[0].ID != "e2a" || p2.Entries[1].ID != "e3" {
		t.Fatalf("after %s: %+v, %v; want e2a, e3 of 8", p1.Next, p2, err)
	}

	// The last page has no Next, even when it is exactly full.
	if p, err := l.List(context.Background(), audit.Query{Limit: 8}); err != nil || p.Next != "" || len(p.Entries) != 8 {
		t.Fatalf("List(limit 8) = %d entries, next %q, %v; want 8, none", len(p.Entries), p.Next, err)
	}
}

func testFilters(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	admin := entry("a1", audit.KindRoleChange, 3*time.Hour, "admin")
	admin.SubjectID, admin.SubjectName = "id-bob", "bob"
	odd := audit.Entry{ID: "f1", Time: now.Add(-time.Minute), Kind: audit.KindLoginFailed, SubjectName: "../X y*[1]"}
	dots := audit.Entry{ID: "f2", Time: now.Add(-2 * time.Minute), Kind: audit.KindLoginFailed, SubjectName: ".."}
	mustAppend(t, l,
		entry("b1", audit.KindLogin, time.Hour, "bob"),
		entry("b2", audit.KindLogout, 26*time.Hour, "bob"),
		entry("bb", audit.KindLogin, 30*time.Minute, "bobby"),
		entry("c1", audit.KindLogin, 2*time.Hour, "carol"),
		admin, odd, dots,
	)
	for _, c := range []struct {
		q    audit.Query
		want []string
	}{
		{audit.Query{User: "bob"}, []string{"b1", "a1", "b2"}}, // actor or subject; not bobby
		{audit.Query{User: "BOB"}, []string{"b1", "a1", "b2"}},
		{audit.Query{User: "id-bob"}, []string{"b1", "a1", "b2"}},
		{audit.Query{User: "admin"}, []string{"a1"}},
		{audit.Query{User: "bo"}, nil},
		{audit.Query{User: "nobody"}, nil},
		{audit.Query{User: "../x Y*[1]"}, []string{"f1"}},
		{audit.Query{User: ".."}, []string{"f2"}},
		{audit.Query{Kind: audit.KindLogin}, []string{"bb", "b1", "c1"}},
		{audit.Query{Kind: audit.KindLogout}, []string{"b2"}},
		{audit.Query{Kind: audit.KindDelete}, nil},
		{audit.Query{User: "bob", Kind: audit.KindLogin}, []string{"b1"}},
		{audit.Query{User: "bob", Kind: audit.KindRoleChange}, []string{"a1"}},
		{audit.Query{User: "bob", Limit: 1}, []string{"b1", "a1", "b2"}},
		{audit.Query{Kind: audit.KindLogin, Limit: 2}, []string{"bb", "b1", "c1"}},
	} {
		ids, _ := listAll(t, l, c.q)
		wantIDs(t, fmt.Sprintf("%+v", c.q), ids, c.want...)
	}
}

func testCursorStable(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	mustAppend(t, l,
		entry("o1", audit.KindLogin, 3*time.Hour, "dan"),
		entry("o2", audit.KindLogin, 4*time.Hour, "dan"),
		entry("o3", audit.KindLogin, 5*time.Hour, "dan"),
	)
	for i, q := range []audit.Query{{Limit: 1}, {Limit: 1, User: "dan"}} {
		before, _ := listAll(t, l, q)
		p1, err := l.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		// Newer entries arrive between the pages: the next page goes on
		// where the first ended.
		mustAppend(t, l, entry(fmt.Sprint("new", i), audit.KindLogin, time.Minute, "dan"))
		q.Cursor = p1.Next
		ids, _ := listAll(t, l, q)
		wantIDs(t, fmt.Sprintf("%+v after %s", q, p1.Entries[0].ID), ids, before[1:]...)
	}
}

func testIdempotent(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	e := entry("same", audit.KindLogin, 0, "erin")
	mustAppend(t, l, e, e, e)
	// A redelivery that differs (it cannot, but say it did) changes nothing.
	e2 := e
	e2.Detail = "changed"
	mustAppend(t, l, e2)
	ids, _ := listAll(t, l, audit.Query{})
	wantIDs(t, "all", ids, "same")
	ids, _ = listAll(t, l, audit.Query{User: "erin"})
	wantIDs(t, "erin", ids, "same")
	got, err := l.Get(context.Background(), "same")
	if err != nil || got.Detail != "" {
		t.Fatalf("Get = %+v, %v; want the first version", got, err)
	}
	hc, err := l.CountsByHour(context.Background(), 1, audit.KindLogin)
	if err != nil {
		t.Fatal(err)
	}
	if n := hc[0].Counts[audit.KindLogin]; n != 1 {
		t.Fatalf("count %d, want 1", n)
	}
}

func testHourlyCounts(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	this := now.Sub(now.Truncate(time.Hour)) // into the current hour
	var es []audit.Entry
	add := func(kind audit.Kind, ago time.Duration, n int) {
		for range n {
			es = append(es, entry(fmt.Sprintf("h%d", len(es)), kind, ago, "fay"))
		}
	}
	add(audit.KindLogin, this, 2)                           // the current hour's start
	add(audit.KindLogin, this+time.Hour-time.Nanosecond, 1) // the end of the hour before
	add(audit.KindLoginFailed, this+23*time.Hour, 3)        // the first of the 24 hours
	add(audit.KindLoginFailed, this+time.Nanosecond, 4)     // the end of the previous hour
	add(audit.KindLoginFailed, this+24*time.Hour, 5)        // before the window
	add(audit.KindLogout, this, 6)                          // not asked for
	mustAppend(t, l, es...)

	hc, err := l.CountsByHour(context.Background(), 24, audit.KindLogin, audit.KindLoginFailed)
	if err != nil {
		t.Fatal(err)
	}
	if len(hc) != 24 {
		t.Fatalf("%d hours, want 24", len(hc))
	}
	want := map[int][2]int{23: {2, 0}, 22: {1, 4}, 0: {0, 3}}
	for i, h := range hc {
		if wantStart := now.Truncate(time.Hour).Add(time.Duration(i-23) * time.Hour); !h.Start.Equal(wantStart) {
			t.Fatalf("hour %d starts %v, want %v", i, h.Start, wantStart)
		}
		w := want[i]
		if h.Counts[audit.KindLogin] != w[0] || h.Counts[audit.KindLoginFailed] != w[1] || len(h.Counts) != 2 {
			t.Errorf("hour %d (%v): %v, want login %d, login_failed %d", i, h.Start, h.Counts, w[0], w[1])
		}
	}
	if _, err := l.CountsByHour(context.Background(), 0, audit.KindLogin); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("0 hours: %v, want ErrInvalid", err)
	}
	if _, err := l.CountsByHour(context.Background(), 24, "nope"); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("bad kind: %v, want ErrInvalid", err)
	}
}

// testNoCap: a flood of one kind in one hour is stored whole (the log once
// kept 1000 entries per kind per hour and dropped the rest, so that an
// attacker could flood it and then act unrecorded).
func testNoCap(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	ago := now.Sub(now.Truncate(time.Hour)) / 2 // within the current hour
	const n = 1100
	for i := range n {
		mustAppend(t, l, entry(fmt.Sprintf("x%d", i), audit.KindLoginFailed, ago-time.Duration(i), "gus"))
	}
	mustAppend(t, l, entry("last", audit.KindLogin, 0, "gus"))
	p, err := l.List(context.Background(), audit.Query{Total: true, Limit: 1})
	if err != nil || p.Total != n+1 || p.Entries[0].ID != "last" {
		t.Fatalf("List = %d in all, first %+v, %v; want %d, the last login", p.Total, p.Entries, err, n+1)
	}
	hc, err := l.CountsByHour(context.Background(), 1, audit.KindLoginFailed)
	if err != nil {
		t.Fatal(err)
	}
	if c := hc[0].Counts[audit.KindLoginFailed]; c != n {
		t.Fatalf("count %d, want %d", c, n)
	}
	if _, err := l.Get(context.Background(), "x0"); err != nil {
		t.Fatalf("Get(the first) = %v", err)
	}
}

// testSizeBound: past MaxEntries the oldest entries go first, from every
// index, and each one dropped is counted.
func testSizeBound(t *testing.T, st store.Store) {
	dropped := map[string]int{}
	l := newLog(st, audit.LogOptions{MaxEntries: 10, OnDrop: func(reason string, n int) { dropped[reason] += n }})
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("s%02d", i)
		mustAppend(t, l, entry(id, audit.KindLogin, time.Duration(25-i)*time.Minute, "kim"))
		want = append([]string{id}, want...)
	}
	if _, err := l.Trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids, _ := listAll(t, l, audit.Query{})
	wantIDs(t, "kept", ids, want[:10]...)
	ids, _ = listAll(t, l, audit.Query{User: "kim", Kind: audit.KindLogin})
	wantIDs(t, "kept for kim", ids, want[:10]...)
	if p, err := l.List(context.Background(), audit.Query{Kind: audit.KindLogin, Total: true}); err != nil || p.Total != 10 {
		t.Fatalf("total of the kind %d, %v; want 10", p.Total, err)
	}
	if dropped["size"] != 15 || dropped["age"] != 0 {
		t.Fatalf("dropped %v, want 15 for size", dropped)
	}
	if _, err := l.Get(context.Background(), "s00"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("Get(the oldest) = %v, want ErrNotFound", err)
	}
}

func testRetention(t *testing.T, st store.Store) {
	clock := now
	dropped := map[string]int{}
	l := audit.NewLog(st, audit.LogOptions{Retention: time.Hour, Now: func() time.Time { return clock },
		OnDrop: func(reason string, n int) { dropped[reason] += n }})
	if err := l.Append(context.Background(), audit.Entry{ID: "old", Time: now.Add(-time.Hour), Kind: audit.KindLogin}); !errors.Is(err, audit.ErrExpired) {
		t.Fatalf("Append(an hour old) = %v, want ErrExpired", err)
	}
	mustAppend(t, l,
		audit.Entry{ID: "going", Time: now.Add(-time.Hour + time.Second), Kind: audit.KindLogin, ActorName: "hal"},
		audit.Entry{ID: "staying", Time: now, Kind: audit.KindLogin, ActorName: "hal"},
	)
	all, _ := listAll(t, l, audit.Query{})
	wantIDs(t, "before", all, "staying", "going")
	clock = now.Add(2 * time.Second)
	// Past the retention it is not listed, even before a trim drops it.
	all, _ = listAll(t, l, audit.Query{})
	wantIDs(t, "past the retention", all, "staying")
	if n, err := l.Trim(context.Background()); err != nil || n != 1 || dropped["age"] != 1 {
		t.Fatalf("Trim = %d, %v (dropped %v); want 1 for age", n, err, dropped)
	}
	hal, _ := listAll(t, l, audit.Query{User: "hal"})
	wantIDs(t, "hal", hal, "staying")
	if _, err := l.Get(context.Background(), "going"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("Get(going) = %v, want ErrNotFound", err)
	}
	if _, err := l.Get(context.Background(), "staying"); err != nil {
		t.Fatalf("Get(staying) = %v", err)
	}
}

func testInvalid(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	ok := entry("ok", audit.KindLogin, time.Minute, "ivy")
	for _, c := range []struct {
		name string
		edit func(*audit.Entry)
		want error
	}{
		{"no id", func(e *audit.Entry) { e.ID = "" }, audit.ErrInvalid},
		{"id with a slash", func(e *audit.Entry) { e.ID = "a/b" }, audit.ErrInvalid},
		{"long id", func(e *audit.Entry) { e.ID = strings.Repeat("a", 65) }, audit.ErrInvalid},
		{"unknown kind", func(e *audit.Entry) { e.Kind = "login/x" }, audit.ErrInvalid},
		{"no time", func(e *audit.Entry) { e.Time = time.Time{} }, audit.ErrInvalid},
		{"two hours ahead", func(e *audit.Entry) { e.Time = now.Add(2 * time.Hour) }, audit.ErrInvalid},
		{"before the retention", func(e *audit.Entry) { e.Time = now.Add(-audit.DefaultRetention) }, audit.ErrExpired},
	} {
		e := ok
		c.edit(&e)
		if err := l.Append(context.Background(), e); !errors.Is(err, c.want) {
			t.Errorf("%s: Append = %v, want %v", c.name, err, c.want)
		}
	}
	// Long fields are cut, not refused.
	long := ok
	long.Detail, long.ClientAddr = strings.Repeat("é", 3000), strings.Repeat("1", 100)
	mustAppend(t, l, long)
	got, err := l.Get(context.Background(), "ok")
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(got.Detail)); n != 2000 || len(got.ClientAddr) != 64 {
		t.Errorf("detail of %d characters, address of %d; want 2000 and 64", n, len(got.ClientAddr))
	}
	ids, _ := listAll(t, l, audit.Query{})
	wantIDs(t, "stored", ids, "ok")

	for _, cur := range []string{"x", "1.a", "0000000000000000001./", "00000000000000000001.a"} {
		if _, err := l.List(context.Background(), audit.Query{Cursor: cur}); !errors.Is(err, audit.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", cur, err)
		}
	}
	if _, err := l.List(context.Background(), audit.Query{Kind: "nope"}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("kind nope: %v, want ErrInvalid", err)
	}
}

func testGet(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	e := entry("g1", audit.KindDisable, 30*time.Hour, "jo")
	e.Detail = "by the admin"
	mustAppend(t, l, e)
	got, err := l.Get(context.Background(), "g1")
	if err != nil || got.Detail != "by the admin" || !got.Time.Equal(e.Time) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for _, id := range []string{"g2", "", "../g1"} {
		if _, err := l.Get(context.Background(), id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// testMigrate: entries stored by the earlier layout (e/<day>/<kind>/<pos>
// and its u/, i/, n/ keys) are listed after Migrate, which runs once.
func testMigrate(t *testing.T, st store.Store) {
	l := newLog(st, audit.LogOptions{})
	old := []audit.Entry{entry("m1", audit.KindLogin, time.Hour, "mo"), entry("m2", audit.KindLogout, 2*time.Hour, "mo")}
	for _, e := range old {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		pos := fmt.Sprintf("%019d.%s", e.Time.UnixNano(), e.ID)
		for k, v := range map[string][]byte{
			"e/" + e.Time.Format("20060102") + "/" + string(e.Kind) + "/" + pos: data,
			"u/mo/" + string(e.Kind) + "/" + pos:                                []byte("1"),
			"i/" + e.ID:                                                         []byte("x"),
		} {
			if err := st.Write(&store.Record{Key: k, Value: v, Expiry: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := l.Migrate(context.Background()); err != nil || n != 2 {
		t.Fatalf("Migrate = %d, %v; want 2", n, err)
	}
	ids, _ := listAll(t, l, audit.Query{User: "mo"})
	wantIDs(t, "migrated", ids, "m1", "m2")
	for _, prefix := range []string{"e/", "u/", "i/"} {
		if keys, err := st.List(store.ListPrefix(prefix)); err != nil || len(keys) != 0 {
			t.Fatalf("old %s keys left: %v, %v", prefix, keys, err)
		}
	}
	if n, err := l.Migrate(context.Background()); err != nil || n != 0 {
		t.Fatalf("Migrate again = %d, %v; want 0", n, err)
	}
}
