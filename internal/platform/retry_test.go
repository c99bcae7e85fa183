package platform_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// healthyUser answers User.Health.
type healthyUser struct{ userpb.UserHandler }

func (healthyUser) Health(_ context.Context, _ *userpb.HealthRequest, rsp *userpb.HealthResponse) error {
	rsp.Status = "ok"
	return nil
}

// TestRetriesReachTheLiveNode: two real user nodes, one killed but still
// registered (as kill -9 leaves it until its TTL runs out); concurrent calls
// all succeed, each retry going to the node its call has not tried (issue
// 18, finding 4).
func TestRetriesReachTheLiveNode(t *testing.T) {
	p := testPlugins()
	var nodes []*platform.Service
	for i := range 2 {
		svc := platform.NewService("user", p, quiet())
		// go-micro's default server id is one per process.
		if err := svc.Server().Init(server.Id(fmt.Sprint("node-", i))); err != nil {
			t.Fatal(err)
		}
		if err := userpb.RegisterUserHandler(svc.Server(), healthyUser{}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, svc)
	}
	t.Cleanup(func() { _ = nodes[0].Stop() })
	list, err := p.Registry.GetService("user")
	if err != nil || len(list) != 1 || len(list[0].Nodes) != 2 {
		t.Fatalf("registry: %v, %v; want two user nodes", list, err)
	}
	// Kill the second node: stopped, it leaves the registry; its entry goes
	// back as a kill -9 would have left it.
	deadAddr := nodes[1].Server().Options().Address
	var dead *registry.Node
	for _, n := range list[0].Nodes {
		if n.Address == deadAddr {
			dead = n
		}
	}
	if dead == nil {
		t.Fatalf("no node at %s in %+v", deadAddr, list[0].Nodes)
	}
	if err := nodes[1].Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Registry.Register(&registry.Service{Name: "user", Version: list[0].Version, Nodes: []*registry.Node{dead}}, registry.RegisterTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}

	caller := platform.NewService("web", p, quiet())
	users := userpb.NewUserService("user", caller.Client())
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := users.Health(context.Background(), &userpb.HealthRequest{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if failed++; first == nil {
			first = err
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 200 calls failed with a live node registered; first: %v", failed, first)
	}
}
