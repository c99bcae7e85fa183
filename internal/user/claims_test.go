package user_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/user"
)

// stallProxy forwards TCP to a Redis; when armed, it holds back the next
// integer reply (a script's answer) for stall: Redis has run the command,
// the client has not heard.
type stallProxy struct {
	ln     net.Listener
	to     string
	stall  time.Duration
	armed  atomic.Bool
	stalls atomic.Int32
	wg     sync.WaitGroup
}

func startStallProxy(t *testing.T, to string, stall time.Duration) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, to: to, stall: stall}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *stallProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); p.replies(c, s); c.Close() }()
	}
}

// replies copies Redis's replies to the client, holding back the first
// integer reply after the proxy is armed.
func (p *stallProxy) replies(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if buf[0] == ':' && p.armed.CompareAndSwap(true, false) {
				p.stalls.Add(1)
				time.Sleep(p.stall)
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestStalledClaimKeepsTheName: Redis stalls 700 ms on a registration's
// claim, past the client's 500 ms read timeout, after running it; the
// client sends it again. The account is created and the name works. (With
// SETNX, the retry found the name taken, the registration deleted its
// record, and the name was burned: neither registrable nor usable.)
func TestStalledClaimKeepsTheName(t *testing.T) {
	r := testenv.StartRedis(t)
	proxy := startStallProxy(t, r.Addr, 700*time.Millisecond)
	// The user service's Redis client bounds (portal's redisOptions).
	cli := goredis.NewClient(&goredis.Options{
		Addr: proxy.ln.Addr().String(), DialTimeout: time.Second,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		MaxRetries: 3, MinRetryBackoff: 8 * time.Millisecond, MaxRetryBackoff: 64 * time.Millisecond,
	})
	st := redisstore.NewStore(store.Nodes(r.Addr), store.Table("portal:user:"))
	t.Cleanup(func() { _ = st.Close(); _ = cli.Close() })
	k := kv.NewRedis(cli, "portal:user:", 5*time.Second)
	repo := user.NewRepo(st).WithKV(k).WithGetter(k)
	ctx := context.Background()

	proxy.armed.Store(true)
	u := &user.User{ID: "id-dave", Username: "Dave", Roles: []string{"user"}}
	if err := repo.Create(ctx, u); err != nil {
		t.Fatalf("Create through a stall: %v", err)
	}
	if proxy.stalls.Load() != 1 {
		t.Fatalf("the proxy stalled %d replies, want 1: the test did not stall the claim", proxy.stalls.Load())
	}
	got, err := repo.ByName(ctx, "dave")
	if err != nil || got.ID != u.ID {
		t.Fatalf("ByName(dave) = %+v, %v: the name is burned", got, err)
	}
	if err := repo.Create(ctx, &user.User{ID: "id-other", Username: "DAVE"}); !errors.Is(err, user.ErrExists) {
		t.Fatalf("a second Dave: %v, want ErrExists", err)
	}
}

// TestOrphanClaimTakenBack: a name whose claim names an account record that
// is missing (left by an earlier version) can be registered again; a name
// whose account exists cannot.
func TestOrphanClaimTakenBack(t *testing.T) {
	repoStores(t, func(t *testing.T, st store.Store, repo *user.Repo) {
		ctx := context.Background()
		if err := st.Write(&store.Record{Key: "name/erin", Value: []byte("id-gone")}); err != nil {
			t.Fatal(err)
		}
		if err := repo.Create(ctx, &user.User{ID: "id-erin", Username: "erin"}); err != nil {
			t.Fatalf("Create over an orphan claim: %v", err)
		}
		if got, err := repo.ByName(ctx, "ERIN"); err != nil || got.ID != "id-erin" {
			t.Fatalf("ByName = %+v, %v", got, err)
		}
		if err := repo.Create(ctx, &user.User{ID: "id-erin2", Username: "erin"}); !errors.Is(err, user.ErrExists) {
			t.Fatalf("Create over a live claim: %v, want ErrExists", err)
		}
	})
}
