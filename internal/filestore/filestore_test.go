package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/store"
	bolt "go.etcd.io/bbolt"
)

// The contract suite runs every store.Store implementation we have against the
// behaviour documented by go-micro's store package (and relied on by Portal).
// Every store under test is opened with Database "d" and Table "t".

const (
	testDB    = "d"
	testTable = "t"
	otherTbl  = "other"
)

func TestFileStore(t *testing.T) {
	runContract(t, func(t *testing.T) store.Store {
		t.Helper()
		return openFile(t, t.TempDir())
	}, nil)
}

// memoryDeviations are the parts of the contract go-micro v4.11.0's memory
// store breaks, and how.
var memoryDeviations = map[string]string{
	"ReadPrefix":            "Read with ReadPrefix and no ReadLimit returns no records (its loop runs to Limit, which is 0)",
	"ReadPrefixLimitOffset": "ReadLimit/ReadOffset page over the whole table in random map order before the prefix filter is applied",
	"ListPrefix":            "List without ListLimit/ListOffset returns keys in random map order",
	"ListPrefixLimitOffset": "ListLimit is used as an end index (keys[offset:limit]) and ListPrefix filters after paging",
	"ReadSuffix":            "Read with ReadSuffix and no ReadLimit returns no records, and paging ignores the suffix and key order",
	"ListSuffix":            "List returns keys in random map order and ListLimit/ListOffset are applied before the suffix filter",
	"ExpiredIsHidden":       "WriteExpiry in the past becomes a negative go-cache duration, which go-cache stores as never expiring",
}

func TestMemoryStore(t *testing.T) {
	runContract(t, func(t *testing.T) store.Store {
		t.Helper()
		s := store.NewMemoryStore(store.Database(testDB), store.Table(testTable))
		t.Cleanup(func() { _ = s.Close() })
		return s
	}, memoryDeviations)
}

// openFile opens a file store on dir and closes it when the test ends.
func openFile(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(dir, store.Database(testDB), store.Table(testTable))
	if err != nil {
		t.Fatalf("New(%q): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustWrite(t *testing.T, s store.Store, r *store.Record, opts ...store.WriteOption) {
	t.Helper()
	if err := s.Write(r, opts...); err != nil {
		t.Fatalf("Write(%q): %v", r.Key, err)
	}
}

func mustWriteKeys(t *testing.T, s store.Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		mustWrite(t, s, &store.Record{Key: k, Value: []byte("v:" + k)})
	}
}

// readOne reads key and insists on exactly one record with that key.
func readOne(t *testing.T, s store.Store, key string, opts ...store.ReadOption) *store.Record {
	t.Helper()
	recs, err := s.Read(key, opts...)
	if err != nil {
		t.Fatalf("Read(%q): %v", key, err)
	}
	if len(recs) != 1 {
		t.Fatalf("Read(%q): got %d records, want 1", key, len(recs))
	}
	if recs[0].Key != key {
		t.Fatalf("Read(%q): got key %q", key, recs[0].Key)
	}
	return recs[0]
}

func wantNotFound(t *testing.T, s store.Store, key string, opts ...store.ReadOption) {
	t.Helper()
	recs, err := s.Read(key, opts...)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Read(%q): got %d records and error %v, want store.ErrNotFound", key, len(recs), err)
	}
	if len(recs) != 0 {
		t.Fatalf("Read(%q): got %d records alongside ErrNotFound, want none", key, len(recs))
	}
}

// readKeys runs a (prefix or suffix) Read and returns the keys, in the order
// returned, checking each value matches what mustWriteKeys wrote.
func readKeys(t *testing.T, s store.Store, key string, opts ...store.ReadOption) []string {
	t.Helper()
	recs, err := s.Read(key, opts...)
	if err != nil {
		t.Fatalf("Read(%q): %v", key, err)
	}
	keys := []string{}
	for _, r := range recs {
		if want := "v:" + r.Key; string(r.Value) != want {
			t.Fatalf("Read(%q): record %q has value %q, want %q", key, r.Key, r.Value, want)
		}
		keys = append(keys, r.Key)
	}
	return keys
}

func listKeys(t *testing.T, s store.Store, opts ...store.ListOption) []string {
	t.Helper()
	keys, err := s.List(opts...)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if keys == nil {
		keys = []string{}
	}
	return keys
}

func wantKeys(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got keys %q, want %q", what, got, want)
	}
}

func contains(keys []string, key string) bool {
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}

func runContract(t *testing.T, newStore func(t *testing.T) store.Store, except map[string]string) {
	// run runs one part of the contract, unless the store is known not to
	// meet it: such a part is named in the log, not run (nor reported as
	// a skip: make test fails CI on skips, and a known deviation of a store
	// that is not ours is not a test that could not run).
	run := func(name string, f func(t *testing.T)) {
		if why, ok := except[name]; ok {
			t.Logf("%s: not run on this store: %s", name, why)
			return
		}
		t.Run(name, f)
	}
	run("Options", func(t *testing.T) {
		s := newStore(t)
		o := s.Options()
		if o.Database != testDB || o.Table != testTable {
			t.Fatalf("Options: got database %q table %q, want %q %q", o.Database, o.Table, testDB, testTable)
		}
	})

	run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		in := &store.Record{
			Key:      "user/1",
			Value:    []byte("hello\x00world"),
			Metadata: map[string]interface{}{"owner": "alice", "kind": "greeting"},
		}
		mustWrite(t, s, in)
		got := readOne(t, s, "user/1")
		if string(got.Value) != string(in.Value) {
			t.Fatalf("value: got %q, want %q", got.Value, in.Value)
		}
		if !reflect.DeepEqual(got.Metadata, in.Metadata) {
			t.Fatalf("metadata: got %#v, want %#v", got.Metadata, in.Metadata)
		}
		if got.Expiry != 0 {
			t.Fatalf("expiry: got %v for a record written without one, want 0", got.Expiry)
		}
		// The stored copy must not alias the caller's slice.
		in.Value[0] = 'X'
		if got := readOne(t, s, "user/1"); string(got.Value) != "hello\x00world" {
			t.Fatalf("value changed with the caller's slice after Write: %q", got.Value)
		}
	})

	run("ReadMissing", func(t *testing.T) {
		s := newStore(t)
		wantNotFound(t, s, "nope")
		mustWriteKeys(t, s, "present")
		wantNotFound(t, s, "nope")
		wantNotFound(t, s, "pres") // a prefix of a key is not the key
		wantNotFound(t, s, "present", store.ReadFrom(testDB, "never-written"))
	})

	run("Overwrite", func(t *testing.T) {
		s := newStore(t)
		mustWrite(t, s, &store.Record{Key: "k", Value: []byte("one"), Metadata: map[string]interface{}{"a": "1"}},
			store.WriteExpiry(time.Now().Add(time.Hour)))
		mustWrite(t, s, &store.Record{Key: "k", Value: []byte("two"), Metadata: map[string]interface{}{"b": "2"}})
		got := readOne(t, s, "k")
		if string(got.Value) != "two" {
			t.Fatalf("value: got %q, want %q", got.Value, "two")
		}
		if want := map[string]interface{}{"b": "2"}; !reflect.DeepEqual(got.Metadata, want) {
			t.Fatalf("metadata: got %#v, want %#v (overwrite replaces, not merges)", got.Metadata, want)
		}
		if got.Expiry != 0 {
			t.Fatalf("expiry: got %v, want 0 after overwriting with a record without expiry", got.Expiry)
		}
		wantKeys(t, "List", listKeys(t, s), "k")
	})

	run("Delete", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, "a", "b")
		if err := s.Delete("a"); err != nil {
			t.Fatalf("Delete(a): %v", err)
		}
		wantNotFound(t, s, "a")
		readOne(t, s, "b")
		if keys := listKeys(t, s); contains(keys, "a") || !contains(keys, "b") {
			t.Fatalf("List after Delete(a): got %q, want [b]", keys)
		}
		if err := s.Delete("a"); err != nil {
			t.Fatalf("Delete of an already deleted key: %v", err)
		}
		if err := s.Delete("never-existed"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if err := s.Delete("x", store.DeleteFrom(testDB, "never-written")); err != nil {
			t.Fatalf("Delete from a missing table: %v", err)
		}
	})

	// Keys are written out of order; "ab" and "b/1" share no "a/" prefix.
	prefixKeys := []string{"a/3", "b/1", "a/1", "ab", "a/4", "a/2"}

	run("ReadPrefix", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, prefixKeys...)
		wantKeys(t, "Read(a/, prefix)", readKeys(t, s, "a/", store.ReadPrefix()), "a/1", "a/2", "a/3", "a/4")
		wantKeys(t, "Read('', prefix)", readKeys(t, s, "", store.ReadPrefix()), "a/1", "a/2", "a/3", "a/4", "ab", "b/1")

		recs, err := s.Read("zzz", store.ReadPrefix())
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Read(zzz, prefix): %v", err)
		}
		if len(recs) != 0 {
			t.Fatalf("Read(zzz, prefix): got %d records, want none", len(recs))
		}
	})

	run("ReadPrefixLimitOffset", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, prefixKeys...)
		p := store.ReadPrefix()
		wantKeys(t, "limit 2", readKeys(t, s, "a/", p, store.ReadLimit(2)), "a/1", "a/2")
		wantKeys(t, "offset 1 limit 2", readKeys(t, s, "a/", p, store.ReadOffset(1), store.ReadLimit(2)), "a/2", "a/3")
		wantKeys(t, "offset 3 limit 2", readKeys(t, s, "a/", p, store.ReadOffset(3), store.ReadLimit(2)), "a/4")
		wantKeys(t, "offset 2", readKeys(t, s, "a/", p, store.ReadOffset(2)), "a/3", "a/4")
		wantKeys(t, "offset past end", readKeys(t, s, "a/", p, store.ReadOffset(10), store.ReadLimit(2)))
	})

	run("ListPrefix", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, prefixKeys...)
		wantKeys(t, "List()", listKeys(t, s), "a/1", "a/2", "a/3", "a/4", "ab", "b/1")
		wantKeys(t, "List(prefix a/)", listKeys(t, s, store.ListPrefix("a/")), "a/1", "a/2", "a/3", "a/4")
		wantKeys(t, "List(prefix zzz)", listKeys(t, s, store.ListPrefix("zzz")))
	})

	run("ListPrefixLimitOffset", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, prefixKeys...)
		p := store.ListPrefix("a/")
		wantKeys(t, "limit 2", listKeys(t, s, p, store.ListLimit(2)), "a/1", "a/2")
		wantKeys(t, "offset 1 limit 2", listKeys(t, s, p, store.ListOffset(1), store.ListLimit(2)), "a/2", "a/3")
		wantKeys(t, "offset 3 limit 2", listKeys(t, s, p, store.ListOffset(3), store.ListLimit(2)), "a/4")
		wantKeys(t, "offset 2", listKeys(t, s, p, store.ListOffset(2)), "a/3", "a/4")
		wantKeys(t, "offset past end", listKeys(t, s, p, store.ListOffset(10), store.ListLimit(2)))
	})

	suffixKeys := []string{"z.json", "y.txt", "x.json", "a/q.json", "json"}

	run("ReadSuffix", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, suffixKeys...)
		sfx := store.ReadSuffix()
		wantKeys(t, "Read(.json, suffix)", readKeys(t, s, ".json", sfx), "a/q.json", "x.json", "z.json")
		wantKeys(t, "offset 1 limit 1", readKeys(t, s, ".json", sfx, store.ReadOffset(1), store.ReadLimit(1)), "x.json")
		wantKeys(t, "Read(.csv, suffix)", readKeys(t, s, ".csv", sfx))
	})

	run("ListSuffix", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, suffixKeys...)
		wantKeys(t, "List(suffix .json)", listKeys(t, s, store.ListSuffix(".json")), "a/q.json", "x.json", "z.json")
		wantKeys(t, "List(suffix .json, offset 1, limit 1)",
			listKeys(t, s, store.ListSuffix(".json"), store.ListOffset(1), store.ListLimit(1)), "x.json")
		wantKeys(t, "List(prefix a/, suffix .json)",
			listKeys(t, s, store.ListPrefix("a/"), store.ListSuffix(".json")), "a/q.json")
		wantKeys(t, "List(suffix .csv)", listKeys(t, s, store.ListSuffix(".csv")))
	})

	run("TableOverride", func(t *testing.T) {
		s := newStore(t)
		mustWrite(t, s, &store.Record{Key: "shared", Value: []byte("default")})
		mustWrite(t, s, &store.Record{Key: "shared", Value: []byte("other")}, store.WriteTo(testDB, otherTbl))
		mustWrite(t, s, &store.Record{Key: "only-other", Value: []byte("o")}, store.WriteTo(testDB, otherTbl))

		if got := readOne(t, s, "shared"); string(got.Value) != "default" {
			t.Fatalf("default table: got %q, want %q", got.Value, "default")
		}
		if got := readOne(t, s, "shared", store.ReadFrom(testDB, otherTbl)); string(got.Value) != "other" {
			t.Fatalf("other table: got %q, want %q", got.Value, "other")
		}
		if got := readOne(t, s, "shared", store.ReadFrom(testDB, testTable)); string(got.Value) != "default" {
			t.Fatalf("explicit default table: got %q, want %q", got.Value, "default")
		}
		wantNotFound(t, s, "only-other")
		readOne(t, s, "only-other", store.ReadFrom(testDB, otherTbl))

		if keys := listKeys(t, s); len(keys) != 1 || keys[0] != "shared" {
			t.Fatalf("List(default table): got %q, want [shared]", keys)
		}
		if keys := listKeys(t, s, store.ListFrom(testDB, otherTbl)); len(keys) != 2 ||
			!contains(keys, "shared") || !contains(keys, "only-other") {
			t.Fatalf("List(other table): got %q, want [only-other shared]", keys)
		}

		if err := s.Delete("shared", store.DeleteFrom(testDB, otherTbl)); err != nil {
			t.Fatalf("Delete(shared, other table): %v", err)
		}
		wantNotFound(t, s, "shared", store.ReadFrom(testDB, otherTbl))
		if got := readOne(t, s, "shared"); string(got.Value) != "default" {
			t.Fatalf("default table after deleting from other: got %q, want %q", got.Value, "default")
		}
		if err := s.Delete("shared"); err != nil {
			t.Fatalf("Delete(shared): %v", err)
		}
		wantNotFound(t, s, "shared")
		readOne(t, s, "only-other", store.ReadFrom(testDB, otherTbl))
	})

	run("ExpiredIsHidden", func(t *testing.T) {
		s := newStore(t)
		mustWriteKeys(t, s, "e/live")
		mustWrite(t, s, &store.Record{Key: "e/gone", Value: []byte("x")}, store.WriteExpiry(time.Now().Add(-time.Minute)))
		wantNotFound(t, s, "e/gone")
		if keys := listKeys(t, s); contains(keys, "e/gone") || !contains(keys, "e/live") {
			t.Fatalf("List: got %q, want e/live without e/gone", keys)
		}
		if keys := listKeys(t, s, store.ListPrefix("e/")); contains(keys, "e/gone") {
			t.Fatalf("List(prefix e/): got %q, expired e/gone listed", keys)
		}
		if keys := readKeys(t, s, "e/", store.ReadPrefix(), store.ReadLimit(10)); contains(keys, "e/gone") {
			t.Fatalf("Read(e/, prefix): got %q, expired e/gone read", keys)
		}
		// An expired record does not count towards Offset either.
		mustWriteKeys(t, s, "e/z")
		if keys := listKeys(t, s, store.ListPrefix("e/"), store.ListOffset(1), store.ListLimit(5)); !reflect.DeepEqual(keys, []string{"e/z"}) {
			t.Fatalf("List(prefix e/, offset 1): got %q, want [e/z]", keys)
		}
	})

	run("ExpiresAtDeadline", func(t *testing.T) {
		s := newStore(t)
		deadline := time.Now().Add(20 * time.Millisecond)
		mustWrite(t, s, &store.Record{Key: "soon", Value: []byte("x")}, store.WriteExpiry(deadline))
		time.Sleep(time.Until(deadline) + 5*time.Millisecond)
		wantNotFound(t, s, "soon")
		if keys := listKeys(t, s); contains(keys, "soon") {
			t.Fatalf("List after the deadline: got %q, expired key listed", keys)
		}
	})

	run("UnexpiredIsLive", func(t *testing.T) {
		s := newStore(t)
		mustWrite(t, s, &store.Record{Key: "later", Value: []byte("x")}, store.WriteExpiry(time.Now().Add(time.Hour)))
		got := readOne(t, s, "later")
		if string(got.Value) != "x" {
			t.Fatalf("value: got %q, want %q", got.Value, "x")
		}
		if got.Expiry <= 0 || got.Expiry > time.Hour {
			t.Fatalf("expiry: got %v, want in (0, 1h]", got.Expiry)
		}
		if keys := listKeys(t, s); !contains(keys, "later") {
			t.Fatalf("List: got %q, want later listed", keys)
		}
	})

	run("TTLOverridesExpiry", func(t *testing.T) {
		// store.WriteOptions: "If Expiry and TTL are set TTL takes precedence."
		s := newStore(t)
		mustWrite(t, s, &store.Record{Key: "ttl", Value: []byte("x")},
			store.WriteExpiry(time.Now().Add(-time.Minute)), store.WriteTTL(time.Hour))
		got := readOne(t, s, "ttl")
		if got.Expiry <= 0 || got.Expiry > time.Hour {
			t.Fatalf("expiry: got %v, want in (0, 1h]", got.Expiry)
		}
	})
}

// File-store only behaviour.

func TestFileStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	mustWrite(t, s, &store.Record{Key: "k", Value: []byte("v"), Metadata: map[string]interface{}{"m": "1"}})
	mustWrite(t, s, &store.Record{Key: "o", Value: []byte("ov")}, store.WriteTo(testDB, otherTbl))
	mustWrite(t, s, &store.Record{Key: "later", Value: []byte("x")}, store.WriteExpiry(time.Now().Add(time.Hour)))
	mustWrite(t, s, &store.Record{Key: "gone", Value: []byte("x")}, store.WriteExpiry(time.Now().Add(-time.Minute)))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openFile(t, dir)
	got := readOne(t, s2, "k")
	if string(got.Value) != "v" || !reflect.DeepEqual(got.Metadata, map[string]interface{}{"m": "1"}) {
		t.Fatalf("after re-open: got value %q metadata %#v", got.Value, got.Metadata)
	}
	if got := readOne(t, s2, "o", store.ReadFrom(testDB, otherTbl)); string(got.Value) != "ov" {
		t.Fatalf("other table after re-open: got %q, want %q", got.Value, "ov")
	}
	if got := readOne(t, s2, "later"); got.Expiry <= 0 || got.Expiry > time.Hour {
		t.Fatalf("expiry after re-open: got %v, want in (0, 1h]", got.Expiry)
	}
	wantNotFound(t, s2, "gone")
	wantKeys(t, "List after re-open", listKeys(t, s2), "k", "later")

	// The documented way to reopen the same value: Init after Close.
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s2.Init(); err != nil {
		t.Fatalf("Init after Close: %v", err)
	}
	readOne(t, s2, "k")
}

func TestFileStoreClosed(t *testing.T) {
	s := openFile(t, t.TempDir())
	mustWriteKeys(t, s, "k")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Read("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Read("", store.ReadPrefix()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read(prefix) after Close: got %v, want ErrClosed", err)
	}
	if err := s.Write(&store.Record{Key: "k2", Value: []byte("v")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: got %v, want ErrClosed", err)
	}
	if err := s.Delete("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Delete after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.List(); !errors.Is(err, ErrClosed) {
		t.Fatalf("List after Close: got %v, want ErrClosed", err)
	}
}

func TestFileStoreFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	openFile(t, dir)
	path := filepath.Join(dir, testDB+".db")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("%s: mode %#o, want 0600", path, perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("stat %s: %v", dir, err)
	}
	if perm := di.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("%s: mode %#o, want no group/other access", dir, perm)
	}
}

func TestFileStoreConcurrentWrites(t *testing.T) {
	s := openFile(t, t.TempDir())
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("c/%02d", i)
			if err := s.Write(&store.Record{Key: key, Value: []byte(key)}); err != nil {
				errs <- fmt.Errorf("Write(%s): %w", key, err)
				return
			}
			// Reads race with the other writers too.
			if _, err := s.List(store.ListPrefix("c/")); err != nil {
				errs <- fmt.Errorf("List during writes: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent: %v", err)
	}
	keys := listKeys(t, s, store.ListPrefix("c/"))
	if len(keys) != n {
		t.Fatalf("List: got %d keys, want %d: %q", len(keys), n, keys)
	}
	for i := range n {
		key := fmt.Sprintf("c/%02d", i)
		if keys[i] != key {
			t.Fatalf("List[%d]: got %q, want %q", i, keys[i], key)
		}
		if got := readOne(t, s, key); string(got.Value) != key {
			t.Fatalf("Read(%s): got %q", key, got.Value)
		}
	}
}

// Init may re-open the file while other calls are running: they must neither
// race on the options nor see the store half-open.
func TestFileStoreInitDuringCalls(t *testing.T) {
	s := openFile(t, t.TempDir())
	mustWriteKeys(t, s, "k")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for range 10 {
			if err := s.Init(store.Table(testTable)); err != nil {
				errs <- fmt.Errorf("Init: %w", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			if _, err := s.Read("k"); err != nil {
				errs <- fmt.Errorf("Read: %w", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 100 {
			if err := s.Write(&store.Record{Key: fmt.Sprintf("w/%03d", i)}); err != nil {
				errs <- fmt.Errorf("Write: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("during Init: %v", err)
	}
	if keys := listKeys(t, s, store.ListPrefix("w/")); len(keys) != 100 {
		t.Fatalf("List(prefix w/): got %d keys, want 100", len(keys))
	}
}

func TestFileStoreSweep(t *testing.T) {
	s, err := New(t.TempDir(), store.Database("d"), store.Table("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	for _, w := range []struct {
		key, table string
		exp        time.Time
	}{{"dead1", "t", past}, {"dead2", "other", past}, {"live", "t", future}, {"forever", "t", time.Time{}}} {
		opts := []store.WriteOption{store.WriteTo("d", w.table)}
		if !w.exp.IsZero() {
			opts = append(opts, store.WriteExpiry(w.exp))
		}
		if err := s.Write(&store.Record{Key: w.key, Value: []byte("v")}, opts...); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Sweep()
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 expired records removed", n, err)
	}
	var raw int
	if err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { raw += b.Stats().KeyN; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if raw != 2 {
		t.Fatalf("%d records left on disk, want 2 (live, forever)", raw)
	}
}
