package platform_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/metadata"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/platform"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// seenUser records the end client each User.Health call was handled for.
type seenUser struct {
	userpb.UserHandler
	mu   sync.Mutex
	seen []pauth.Client
}

func (s *seenUser) Health(ctx context.Context, _ *userpb.HealthRequest, rsp *userpb.HealthResponse) error {
	c, _ := pauth.ClientOf(ctx)
	s.mu.Lock()
	s.seen = append(s.seen, c)
	s.mu.Unlock()
	rsp.Status = "ok"
	return nil
}

func (s *seenUser) last() pauth.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// relaySystem's System.Health asks user, as system does for an admin.
type relaySystem struct {
	systempb.SystemHandler
	users userpb.UserService
}

func (r *relaySystem) Health(ctx context.Context, _ *systempb.HealthRequest, rsp *systempb.HealthResponse) error {
	_, err := r.users.Health(ctx, &userpb.HealthRequest{})
	return err
}

func newProof(t *testing.T, key string) *pauth.ClientProof {
	t.Helper()
	p, err := pauth.NewClientProof([]byte(strings.Repeat(key, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Over real RPC: the client a gateway names reaches user (directly, and
// relayed by system); a caller without the gateway key, whatever it puts in
// the metadata, is taken for its own address (gRPC; none under mucp, whose
// "Remote" a caller can shadow), with no user agent.
func TestClientProofOverRPC(t *testing.T) {
	for rpc, peer := range map[string]string{"grpc": "127.0.0.1", "mucp": ""} {
		t.Run(rpc, func(t *testing.T) { clientProofOverRPC(t, rpc, peer) })
	}
}

func clientProofOverRPC(t *testing.T, rpc, peer string) {
	p := testPlugins()
	p.RPC = rpc
	key := newProof(t, "k")
	start := func(name string, proof *pauth.ClientProof) *platform.Service {
		t.Helper()
		s := platform.NewService(name, p, quiet())
		if proof != nil {
			s.UseClientProof(proof)
		}
		return s
	}
	users := &seenUser{}
	userSvc := start("user", key)
	var bad []error
	key.OnBad = func(err error) { bad = append(bad, err) }
	if err := userpb.RegisterUserHandler(userSvc.Server(), users); err != nil {
		t.Fatal(err)
	}
	systemSvc := start("system", key)
	if err := systempb.RegisterSystemHandler(systemSvc.Server(), &relaySystem{users: userpb.NewUserService("user", systemSvc.Client())}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*platform.Service{userSvc, systemSvc} {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
	}
	gateway := start("web", key)
	client := pauth.Client{Addr: "203.0.113.7", UserAgent: "agent/1"}
	ctx := pauth.WithClient(context.Background(), client)

	if _, err := userpb.NewUserService("user", gateway.Client()).Health(ctx, &userpb.HealthRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := users.last(); got != client {
		t.Errorf("gateway -> user: user saw %+v, want %+v", got, client)
	}
	if _, err := systempb.NewSystemService("system", gateway.Client()).Health(ctx, &systempb.HealthRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := users.last(); got != client {
		t.Errorf("gateway -> system -> user: user saw %+v, want %+v", got, client)
	}
	if len(bad) != 0 {
		t.Errorf("good proofs reported bad: %v", bad)
	}

	// Callers without the key: no proof, a forged entry, the entry of
	// another key, the old unsigned header, a spoofed "Remote".
	forgedEntry := "1.MjAzLjAuMTEzLjc.YWdlbnQvMQ.AAAA"
	rogue := start("web", nil)
	otherKey := start("web", newProof(t, "x"))
	for name, call := range map[string]func() error{
		"no proof": func() error {
			_, err := userpb.NewUserService("user", rogue.Client()).Health(ctx, &userpb.HealthRequest{})
			return err
		},
		"forged entry and headers": func() error {
			c := metadata.Set(ctx, pauth.ClientKey, forgedEntry)
			c = metadata.Set(c, "Portal-Client-Addr", client.Addr)
			c = metadata.Set(c, "remote", client.Addr+":1")
			_, err := userpb.NewUserService("user", rogue.Client()).Health(c, &userpb.HealthRequest{})
			return err
		},
		"another key": func() error {
			_, err := userpb.NewUserService("user", otherKey.Client()).Health(ctx, &userpb.HealthRequest{})
			return err
		},
		"another key, through system": func() error {
			_, err := systempb.NewSystemService("system", otherKey.Client()).Health(ctx, &systempb.HealthRequest{})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := users.last(); got != (pauth.Client{Addr: peer}) {
			t.Errorf("%s: user saw %+v, want the caller's own address %q and no user agent", name, got, peer)
		}
	}
	if len(bad) != 1 {
		t.Errorf("bad proofs reported %d times, want once per process: %v", len(bad), bad)
	}
}
