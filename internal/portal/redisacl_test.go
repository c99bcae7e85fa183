package portal_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv"
)

// TestRedisACL runs Redis on TLS only with an ACL user per service, each
// confined by redisx.ACLRules to its own key prefix: every service's store,
// kv steps and cache work through their user, no user reaches another
// service's keys or a dangerous command, and a wrong CA, password or
// scheme is refused with a message that names it.
func TestRedisACL(t *testing.T) {
	parallel(t)
	testenv.Require(t, "redis-server")
	pki := testenv.NewPKI(t, "redis")
	r := testenv.StartSecureRedis(t, testenv.RedisOptions{PKI: pki, ACL: true})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	for _, name := range []string{"user", "system"} {
		st, k, err := portal.RedisServiceStore(name, pki.CAFile, redisstore.NewStore(store.Nodes(r.URL(name))), log)
		if err != nil {
			t.Fatalf("%s store: %v", name, err)
		}
		defer st.Close()
		defer k.(*kv.Redis).Close()
		if err := st.Write(&store.Record{Key: "k/1", Value: []byte("v"), Expiry: time.Minute}); err != nil {
			t.Fatalf("%s: Write: %v", name, err)
		}
		if recs, err := st.Read("k/", store.ReadPrefix()); err != nil || len(recs) != 1 || string(recs[0].Value) != "v" {
			t.Fatalf("%s: Read prefix: %v, %v", name, recs, err)
		}
		if keys, err := st.List(); err != nil || len(keys) != 1 {
			t.Fatalf("%s: List: %v, %v", name, keys, err)
		}
		// The kv.Store's Lua steps: a claim, an index, a counter.
		if won, err := k.Apply(kv.PutOp("name/x", []byte("1"), 0).When(kv.AbsentOrSame), kv.AddOp("idx/names", "x"), kv.IncrOp("count/x", time.Minute)); err != nil || !won {
			t.Fatalf("%s: Apply: %v, %v", name, won, err)
		}
		if vals, err := k.Get("k/1", "name/x"); err != nil || string(vals[0]) != "v" || string(vals[1]) != "1" {
			t.Fatalf("%s: Get: %q, %v", name, vals, err)
		}
		if m, err := k.Members("idx/names", kv.Range{Limit: 10}); err != nil || len(m) != 1 {
			t.Fatalf("%s: Members: %q, %v", name, m, err)
		}
		if err := st.Delete("k/1"); err != nil {
			t.Fatalf("%s: Delete: %v", name, err)
		}
	}
	c, err := portal.RedisCache(r.URL("web"), pki.CAFile, log)
	if err != nil {
		t.Fatalf("web cache: %v", err)
	}
	defer c.(io.Closer).Close()
	if err := c.Put(ctx, "portal:web:session:s1", []byte{1}, time.Minute); err != nil {
		t.Fatalf("cache Put: %v", err)
	}
	if v, _, err := c.Get(ctx, "portal:web:session:s1"); err != nil || string(v.([]byte)) != "\x01" {
		t.Fatalf("cache Get: %v, %v", v, err)
	}

	// Each user is confined to its prefix and to data commands.
	for svc, u := range r.Users {
		for _, cmd := range [][]string{
			{"GET", "portal:" + other(svc) + ":k"},
			{"SET", "portal:" + other(svc) + ":k", "x"},
			{"GET", "elsewhere"},
			{"KEYS", "*"},
			{"FLUSHALL"},
			{"CONFIG", "GET", "*"},
			{"PUBLISH", "c", "m"},
		} {
			reply, err := r.DoAs(u, 5*time.Second, cmd...)
			if err != nil || !strings.HasPrefix(reply, "-NOPERM") {
				t.Errorf("%s: %q = %q, %v: want NOPERM", u.Name, cmd, reply, err)
			}
		}
		if reply, err := r.DoAs(u, 5*time.Second, "GET", "portal:"+svc+":nothing"); err != nil || reply != "$-1" {
			t.Errorf("%s: GET of its own key = %q, %v", u.Name, reply, err)
		}
	}

	other := testenv.NewPKI(t, "other")
	u := r.Users["user"]
	host := strings.TrimPrefix(r.URL("system"), "rediss://"+r.Users["system"].Name+":"+r.Users["system"].Password+"@")
	for _, w := range []struct {
		name, url, ca, want string
	}{
		{"wrong password", "rediss://" + u.Name + ":not-it@" + host, pki.CAFile, "refused the user and password"},
		{"no credentials", "rediss://" + host, pki.CAFile, "requires authentication"},
		{"wrong CA", r.URL("user"), other.CAFile, "PORTAL_REDIS_CA_FILE"},
		{"plaintext to TLS", "redis://" + u.Name + ":" + u.Password + "@" + host, "", "TLS on one side only"},
	} {
		rs := redisstore.NewStore(store.Nodes(w.url))
		_, _, err := portal.RedisServiceStore("user", w.ca, rs, log)
		rs.Close()
		if err == nil || !strings.Contains(err.Error(), w.want) || !strings.Contains(err.Error(), "MICRO_STORE_ADDRESS") || strings.Contains(err.Error(), u.Password) {
			t.Errorf("%s: %v, want an error naming MICRO_STORE_ADDRESS with %q, without the password", w.name, err, w.want)
		}
	}
}

// other is a service other than name.
func other(name string) string {
	if name == "user" {
		return "system"
	}
	return "user"
}
