package kv_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// stores runs fn against every Store Portal runs on: memory (Local over
// go-micro's memory store), the file store, and Redis. Each gets a fresh one.
func stores(t *testing.T, fn func(t *testing.T, s kv.Store, st store.Store)) {
	t.Run("memory", func(t *testing.T) {
		st := store.NewMemoryStore(store.Table("t"))
		fn(t, kv.NewLocal(st), st)
	})
	t.Run("file", func(t *testing.T) {
		fs, err := filestore.New(t.TempDir(), store.Table("t"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close() })
		fn(t, fs, fs)
	})
	t.Run("redis", func(t *testing.T) {
		r := testenv.StartRedis(t)
		cli := goredis.NewClient(&goredis.Options{Addr: r.Addr})
		t.Cleanup(func() { cli.Close() })
		fn(t, kv.NewRedis(cli, "t:", 5*time.Second), redisPluginStore(t, r.Addr))
	})
}

func apply(t *testing.T, s kv.Store, want bool, ops ...kv.Op) {
	t.Helper()
	got, err := s.Apply(ops...)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Apply(%v) = %v, want %v", ops, got, want)
	}
}

func get(t *testing.T, s kv.Store, key string) []byte {
	t.Helper()
	vals, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return vals[0]
}

func TestConditions(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store, st store.Store) {
		// Exists fails on a missing key, and then nothing of the batch lands.
		apply(t, s, false, kv.PutOp("a", []byte("1"), 0), kv.PutOp("b", []byte("1"), 0).When(kv.Exists))
		if get(t, s, "a") != nil {
			t.Fatal("a batch whose condition failed wrote")
		}
		apply(t, s, true, kv.PutOp("a", []byte("1"), 0).When(kv.Absent), kv.AddOp("ix", "a"))
		apply(t, s, false, kv.PutOp("a", []byte("2"), 0).When(kv.Absent))
		apply(t, s, true, kv.PutOp("a", []byte("2"), 0).When(kv.Exists))
		if v := string(get(t, s, "a")); v != "2" {
			t.Fatalf("a = %q, want 2", v)
		}
		// A claim recognises its own value, and no other.
		apply(t, s, true, kv.PutOp("n", []byte("me"), 0).When(kv.AbsentOrSame))
		apply(t, s, true, kv.PutOp("n", []byte("me"), 0).When(kv.AbsentOrSame))
		apply(t, s, false, kv.PutOp("n", []byte("you"), 0).When(kv.AbsentOrSame))
		// Equal: delete only what still holds the expected value.
		apply(t, s, false, kv.DeleteOp("n").WhenEqual([]byte("you")))
		apply(t, s, true, kv.DeleteOp("n").WhenEqual([]byte("me")))
		if get(t, s, "n") != nil {
			t.Fatal("n not deleted")
		}
		// The go-micro store reads what Apply wrote (same records).
		recs, err := st.Read("a")
		if err != nil || len(recs) != 1 || string(recs[0].Value) != "2" {
			t.Fatalf("store.Read(a) = %v, %v", recs, err)
		}
		// A TTL expires the record.
		apply(t, s, true, kv.PutOp("x", []byte("1"), 50*time.Millisecond))
		poll.Wait(t, 10*time.Second, "x to expire", func() bool { return get(t, s, "x") == nil })
		apply(t, s, false, kv.PutOp("x", []byte("1"), 0).When(kv.Exists))
	})
}

func members(t *testing.T, s kv.Store, index string, r kv.Range) []string {
	t.Helper()
	ms, err := s.Members(index, r)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestIndexes(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store, _ store.Store) {
		var ops []kv.Op
		for i := range 10 {
			ops = append(ops, kv.AddOp("i", fmt.Sprintf("m%02d", i)))
		}
		ops = append(ops, kv.AddOp("i2", "other"), kv.AddOp("i/x", "nested"))
		apply(t, s, true, ops...)
		for _, c := range []struct {
			r    kv.Range
			want []string
		}{
			{kv.Range{Limit: 3}, []string{"m00", "m01", "m02"}},
			{kv.Range{Limit: 3, Desc: true}, []string{"m09", "m08", "m07"}},
			{kv.Range{Limit: 3, After: "m04"}, []string{"m05", "m06", "m07"}},
			{kv.Range{Limit: 3, Before: "m04", Desc: true}, []string{"m03", "m02", "m01"}},
			{kv.Range{Limit: 2, Offset: 1, Desc: true}, []string{"m08", "m07"}},
			{kv.Range{Limit: 100, After: "m07"}, []string{"m08", "m09"}},
			{kv.Range{Limit: 100, Before: "m01", Desc: true}, []string{"m00"}},
		} {
			if got := members(t, s, "i", c.r); !slices.Equal(got, c.want) {
				t.Errorf("Members(%+v) = %v, want %v", c.r, got, c.want)
			}
		}
		if n, err := s.Count("i", "m05", 0); err != nil || n != 5 {
			t.Fatalf("Count(m05) = %d, %v; want 5", n, err)
		}
		if n, err := s.Count("i", "", 3); err != nil || n != 3 {
			t.Fatalf("Count bounded by 3 = %d, %v", n, err)
		}
		apply(t, s, true, kv.TrimOp("i", "m03"), kv.RemoveOp("i", "m05"))
		want := []string{"m03", "m04", "m06", "m07", "m08", "m09"}
		if got := members(t, s, "i", kv.Range{Limit: 100}); !slices.Equal(got, want) {
			t.Fatalf("after trim and remove: %v, want %v", got, want)
		}
		if got := members(t, s, "i2", kv.Range{Limit: 100}); !slices.Equal(got, []string{"other"}) {
			t.Fatalf("another index: %v", got)
		}
		if got := members(t, s, "none", kv.Range{Limit: 100, Desc: true}); len(got) != 0 {
			t.Fatalf("empty index: %v", got)
		}
	})
}

// TestNoResurrection races writers that update a record only while it
// exists (a session's "last seen") against one that deletes it (a logout):
// once deleted, it stays deleted. An unconditional write (read, then write
// back) brings it back in most runs.
func TestNoResurrection(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store, _ store.Store) {
		for round := range 20 {
			key := fmt.Sprintf("session/%d", round)
			apply(t, s, true, kv.PutOp(key, []byte("0"), time.Hour), kv.AddOp("sessions", key))
			var wg sync.WaitGroup
			deleted := make(chan struct{})
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						if _, err := s.Apply(kv.PutOp(key, []byte(fmt.Sprint(w, i)), time.Hour).When(kv.Exists)); err != nil {
							t.Error(err)
							return
						}
						select {
						case <-deleted:
							if i > 3 {
								return
							}
						default:
						}
					}
				}()
			}
			apply(t, s, true, kv.DeleteOp(key), kv.RemoveOp("sessions", key))
			close(deleted)
			wg.Wait()
			if v := get(t, s, key); v != nil {
				t.Fatalf("round %d: deleted record came back: %q", round, v)
			}
		}
	})
}

// redisPluginStore is go-micro's redis store plugin on the same table, to
// check that it reads what Apply writes.
func redisPluginStore(t *testing.T, addr string) store.Store {
	t.Helper()
	st := redisstore.NewStore(store.Nodes(addr), store.Table("t:"))
	t.Cleanup(func() { st.Close() })
	return st
}

func TestIncr(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store, _ store.Store) {
		for range 3 {
			apply(t, s, true, kv.IncrOp("n", time.Hour))
		}
		if n := kv.Atoi(get(t, s, "n")); n != 3 {
			t.Fatalf("counter = %d, want 3", n)
		}
		// In a batch whose condition fails, nothing counts.
		apply(t, s, false, kv.IncrOp("n", time.Hour), kv.CheckOp("none", kv.Exists))
		if n := kv.Atoi(get(t, s, "n")); n != 3 {
			t.Fatalf("counter = %d after a failed batch, want 3", n)
		}
		apply(t, s, true, kv.IncrOp("short", 50*time.Millisecond))
		poll.Wait(t, 10*time.Second, "the counter to expire", func() bool { return get(t, s, "short") == nil })
	})
}

// TestConcurrentClaims: of claims of one key with different values, made
// at once, exactly one wins (usernames, the bootstrap admin).
func TestConcurrentClaims(t *testing.T) {
	stores(t, func(t *testing.T, s kv.Store, _ store.Store) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won, err := s.Apply(kv.PutOp("name/x", []byte(fmt.Sprint(i)), 0).When(kv.AbsentOrSame))
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d claims won, want 1", n)
		}
	})
}
