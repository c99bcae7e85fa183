package outbox_test

import (
	"fmt"
	"testing"
	"time"

	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/outbox"
	"github.com/portal-go/portal/internal/testenv"
)

// BenchmarkLogoutWrite is what the outbox adds to a logout's store work, on
// the file store and Redis: "plain" is the session's deletion batch; "batch"
// that batch with the session.revoked record in it; "audit" one more write,
// the audit entry's record on its own (the record's deletion after the
// acknowledgement is in the background, off the request's path).
func BenchmarkLogoutWrite(b *testing.B) {
	stores := map[string]func(b *testing.B) kv.Store{
		"file": func(b *testing.B) kv.Store {
			fs, err := filestore.New(b.TempDir(), store.Database("bench"), store.Table("bench"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = fs.Close() })
			return fs
		},
		"redis": func(b *testing.B) kv.Store {
			cli := goredis.NewClient(&goredis.Options{Addr: testenv.StartRedis(b).Addr})
			b.Cleanup(func() { _ = cli.Close() })
			return kv.NewRedis(cli, "bench:", 5*time.Second)
		},
	}
	for _, name := range []string{"file", "redis"} {
		k := stores[name](b)
		o := outbox.New(k, nil, nil, nil)
		for _, mode := range []string{"plain", "batch", "audit"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				b.StopTimer()
				for i := 0; i < b.N; i++ {
					id := fmt.Sprintf("%s-%d", mode, i)
					if _, err := k.Apply(kv.PutOp("s/"+id, []byte("session"), time.Hour), kv.AddOp("sessions", id)); err != nil {
						b.Fatal(err)
					}
					ops := []kv.Op{kv.DeleteOp("s/" + id), kv.RemoveOp("sessions", id)}
					m := outbox.NewMessage("session.revoked", []byte(`{"sessionId":"`+id+`"}`))
					if mode != "plain" {
						ops = append(ops, o.Ops(m)...)
					}
					b.StartTimer()
					if _, err := k.Apply(ops...); err != nil {
						b.Fatal(err)
					}
					if mode == "audit" {
						if err := o.Put(outbox.NewMessage("audit", []byte(`{"kind":"logout"}`))); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
				}
			})
		}
	}
}
