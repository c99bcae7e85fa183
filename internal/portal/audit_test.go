package portal_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// kinds returns the kinds of entries, in order.
func kinds(es []audit.Entry) []audit.Kind {
	var out []audit.Kind
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

// wantUserAudit checks that the log holds exactly a login_failed, a login
// and a register for name (newest first), the logins from the loopback.
func wantUserAudit(t *testing.T, l *audit.Log, name string) {
	t.Helper()
	p, err := l.List(context.Background(), audit.Query{User: name})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []audit.Kind{audit.KindLoginFailed, audit.KindLogin, audit.KindRegister}
	if got := kinds(p.Entries); !slices.Equal(got, want) {
		t.Fatalf("%s's audit entries %v, want %v: %+v", name, got, want, p.Entries)
	}
	failed, login, reg := p.Entries[0], p.Entries[1], p.Entries[2]
	if login.ActorName != name || login.SubjectName != name || login.ActorID == "" || login.ClientAddr != "127.0.0.1" {
		t.Errorf("login entry %+v", login)
	}
	if failed.SubjectName != name || failed.SubjectID != login.ActorID || failed.ClientAddr != "127.0.0.1" || failed.Detail != "wrong password" {
		t.Errorf("login_failed entry %+v", failed)
	}
	if reg.ActorID != login.ActorID {
		t.Errorf("register entry %+v", reg)
	}
}

// TestAuditEmbedded: in the embedded mode a register, a login and a failed
// login reach the audit log in the data dir, stored by the time Portal has
// stopped.
func TestAuditEmbedded(t *testing.T) {
	parallel(t)
	p := portaltest.Start(t, portaltest.Options{})
	c := newClient(t, p)
	c.register("ann", "ann-password-1")
	c.login("ann", "ann-password-1")
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "ann", "password": "wrong-password"}), http.StatusUnauthorized)
	p.Stop(t)

	st, err := filestore.New(filepath.Join(p.DataDir, "store"), store.Database("system"), store.Table("system"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	wantUserAudit(t, audit.NewLog(st, audit.LogOptions{}), "ann")
}

// auditWhileSystemDown is step h of TestDistributed: with the system service
// down, a user registers and logs in; the entries wait in NATS JetStream and
// are in the log (in Redis) once system is back, each once.
func auditWhileSystemDown(t *testing.T, c *cluster) {
	rs := redisstore.NewStore(store.Nodes(c.env.Redis.Addr), store.Table("portal:system:"))
	cli := goredis.NewClient(&goredis.Options{Addr: c.env.Redis.Addr})
	t.Cleanup(func() { _ = rs.Close(); _ = cli.Close() })
	// The log as system keeps it: the store plugin and its indexes.
	l := audit.NewLog(rs, audit.LogOptions{KV: kv.NewRedis(cli, "portal:system:", 5*time.Second)})
	// A user registered with system up is in the log.
	w := c.clients(t)[0]
	early, _ := stepUser(t, w)
	poll.Wait(t, 20*time.Second, early+"'s register entry", func() bool {
		p, err := l.List(context.Background(), audit.Query{User: early, Kind: audit.KindRegister})
		return err == nil && len(p.Entries) == 1
	})

	c.system.Stop(t)
	w.register("hank", "hank-password-1")
	w.login("hank", "hank-password-1")
	w.expect(w.do("POST", "/api/v1/login", "", map[string]string{"username": "hank", "password": "wrong-password"}), http.StatusUnauthorized)
	if p, err := l.List(context.Background(), audit.Query{User: "hank"}); err != nil || len(p.Entries) != 0 {
		t.Fatalf("stored with system down: %+v, %v", p.Entries, err)
	}

	restarted := time.Now()
	c.start("system")
	poll.Wait(t, 20*time.Second, "hank's audit entries after system restarted", func() bool {
		p, err := l.List(context.Background(), audit.Query{User: "hank"})
		return err == nil && len(p.Entries) >= 3
	})
	c.note(t, "audit entries published while system was down stored %d ms after it restarted", time.Since(restarted).Milliseconds())
	wantUserAudit(t, l, "hank")
}
