package portal_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	"go-micro.dev/v4/cache"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/user"
	"github.com/portal-go/portal/internal/web"
)

// TestRedisKeys: the user service's MGET reads what the redis store plugin
// wrote, in the same key space, nil for absent keys; and claims (kv.Apply) hold.
func TestRedisKeys(t *testing.T) {
	parallel(t)
	testenv.Require(t, "redis-server")
	r := testenv.StartRedis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, k, err := portal.RedisUserStore(redisstore.NewStore(store.Nodes(r.Addr)), log)
	if err != nil {
		t.Fatalf("RedisUserStore: %v", err)
	}
	defer st.Close()
	defer k.(*kv.Redis).Close()
	g, ok := k.(user.Getter)
	if !ok {
		t.Fatalf("the Redis kv.Store %T is no user.Getter", k)
	}
	for k, v := range map[string]string{"user/1": `{"id":"1"}`, "session/a": "sess"} {
		if err := st.Write(&store.Record{Key: k, Value: []byte(v)}); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	vals, err := g.Get("session/a", "user/none", "user/1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := [][]byte{[]byte("sess"), nil, []byte(`{"id":"1"}`)}
	if !slices.EqualFunc(vals, want, func(a, b []byte) bool { return string(a) == string(b) && (a == nil) == (b == nil) }) {
		t.Fatalf("Get = %q, want %q", vals, want)
	}
	claim := func(v string) (bool, error) { return k.Apply(kv.PutOp("name/x", []byte(v), 0).When(kv.AbsentOrSame)) }
	if won, err := claim("1"); err != nil || !won {
		t.Fatalf("first claim: %v, %v", won, err)
	}
	if won, err := claim("2"); err != nil || won {
		t.Fatalf("second claim: %v, %v", won, err)
	}
	if vals, err := g.Get("name/x"); err != nil || string(vals[0]) != "1" {
		t.Fatalf("claimed value: %q, %v", vals, err)
	}
}

// TestRedisWebCacheGetMany: the Redis-cached gateway reads what the cache
// wrote with one MGET, nil for a missing key.
func TestRedisWebCacheGetMany(t *testing.T) {
	parallel(t)
	testenv.Require(t, "redis-server")
	r := testenv.StartRedis(t)
	c, err := portal.RedisWebCache(r.Addr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("RedisWebCache: %v", err)
	}
	defer c.(io.Closer).Close()
	mg, ok := c.(web.MultiGetter)
	if !ok {
		t.Fatalf("the Redis cache %T is no web.MultiGetter", c)
	}
	ctx := context.Background()
	if err := c.Put(ctx, "portal:web:session:s1", []byte{1, 2, 3}, time.Minute); err != nil {
		t.Fatalf("Put: %v", err)
	}
	vals, err := mg.GetMany(ctx, "portal:web:revoked:s1", "portal:web:session:s1")
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(vals) != 2 || vals[0] != nil {
		t.Fatalf("GetMany = %v, want no tombstone", vals)
	}
	if b, ok := vals[1].([]byte); !ok || string(b) != "\x01\x02\x03" {
		t.Fatalf("verdict = %#v, want the bytes put", vals[1])
	}
	if v, _, err := c.Get(ctx, "portal:web:session:s1"); err != nil || string(v.([]byte)) != string(vals[1].([]byte)) {
		t.Fatalf("Get = %v, %v: not what GetMany read", v, err)
	}
	// Get keeps the plugin's contract: the expiry from the TTL, a missing
	// key is cache.ErrKeyNotFound, Delete removes.
	if _, exp, _ := c.Get(ctx, "portal:web:session:s1"); exp.Before(time.Now()) || exp.After(time.Now().Add(time.Minute+time.Second)) {
		t.Errorf("expiry %v, want within a minute", exp)
	}
	if err := c.Delete(ctx, "portal:web:session:s1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := c.Get(ctx, "portal:web:session:s1"); !errors.Is(err, cache.ErrKeyNotFound) {
		t.Fatalf("Get after Delete: %v, want cache.ErrKeyNotFound", err)
	}
}
