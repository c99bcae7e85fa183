package platform_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"

	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// slowUser answers User.Health after a pause, saying when it started.
type slowUser struct {
	userpb.UserHandler
	pause   time.Duration
	started chan struct{}
}

func (s *slowUser) Health(ctx context.Context, req *userpb.HealthRequest, rsp *userpb.HealthResponse) error {
	s.started <- struct{}{}
	time.Sleep(s.pause)
	rsp.Status = "ok"
	return nil
}

func testPlugins() platform.Plugins {
	return platform.Plugins{
		Registry: registry.NewMemoryRegistry(),
		Broker:   broker.NewMemoryBroker(),
		Address:  "127.0.0.1:0",
	}
}

// A request in flight when Stop is called finishes, though it outlasts the
// 1 s the gRPC server plugin gives on its own; the node is registered with
// its metadata until then and gone after.
func TestStopWaitsForRequestsInFlight(t *testing.T) {
	p := testPlugins()
	svc := platform.NewService("user", p, quiet())
	h := &slowUser{pause: 1500 * time.Millisecond, started: make(chan struct{}, 1)}
	if err := userpb.RegisterUserHandler(svc.Server(), h); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	list, err := p.Registry.GetService("user")
	if err != nil || len(list) != 1 || len(list[0].Nodes) != 1 {
		t.Fatalf("registry: %v, %v; want one user node", list, err)
	}
	if md := list[0].Nodes[0].Metadata; md["version"] != platform.Version || md["description"] != platform.Descriptions["user"] || md["pid"] != strconv.Itoa(os.Getpid()) {
		t.Errorf("node metadata %v, want version %s, a description and pid %d", md, platform.Version, os.Getpid())
	}

	caller := platform.NewService("web", p, quiet())
	errc := make(chan error, 1)
	go func() {
		_, err := userpb.NewUserService("user", caller.Client()).Health(context.Background(), &userpb.HealthRequest{})
		errc <- err
	}()
	<-h.started
	began := time.Now()
	if err := svc.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	took := time.Since(began)
	if err := <-errc; err != nil {
		t.Fatalf("the call in flight during Stop failed: %v", err)
	}
	if took < time.Second {
		t.Errorf("Stop returned after %v, before the call in flight ended", took)
	}
	if _, err := p.Registry.GetService("user"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after Stop, registry GetService(user): %v, want not found", err)
	}
}

// A service whose health check fails is not registered.
func TestUnhealthyServiceNotRegistered(t *testing.T) {
	p := testPlugins()
	svc := platform.NewService("system", p, quiet())
	svc.SetHealth(func(context.Context) error { return errors.New("registry down") })
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	if _, err := p.Registry.GetService("system"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unhealthy service: registry GetService(system): %v, want not found", err)
	}
}

// Background jobs run from Start to Stop; Stop ends their context and
// waits for them to return before it stops the server.
func TestBackground(t *testing.T) {
	svc := platform.NewService("system", testPlugins(), quiet())
	started, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var ended atomic.Bool
	svc.Background(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		<-release // work still to finish after the end was asked for
		ended.Store(true)
	})
	select {
	case <-started:
		t.Fatal("the job ran before Start")
	default:
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not start with the service")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the job's context")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while the job was running", err)
	default:
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the job did")
	}
	if !ended.Load() {
		t.Fatal("Stop returned before the job")
	}
}
