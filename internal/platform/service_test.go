package platform_test

import (
	"context"
	"errors"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/platform"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
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

// TestCallsCountAsWork: every call a service serves counts as the
// process's work, which keeps ReturnMemoryWhenIdle from running meanwhile.
func TestCallsCountAsWork(t *testing.T) {
	p := testPlugins()
	svc := platform.NewService("user", p, quiet())
	if err := userpb.RegisterUserHandler(svc.Server(), &slowUser{started: make(chan struct{}, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	before := platform.WorkDone()
	caller := platform.NewService("web", p, quiet())
	if _, err := userpb.NewUserService("user", caller.Client()).Health(context.Background(), &userpb.HealthRequest{}); err != nil {
		t.Fatal(err)
	}
	if after := platform.WorkDone(); after <= before {
		t.Errorf("work counted %d before a call, %d after: the call was not counted", before, after)
	}
}

// streamWorkers counts the goroutines that are a grpc.Server's stream
// workers.
func streamWorkers() int {
	buf := make([]byte, 1<<20)
	for {
		if n := goruntime.Stack(buf, true); n < len(buf) {
			return strings.Count(string(buf[:n]), "google.golang.org/grpc.(*Server).serverWorker(")
		}
		buf = make([]byte, 2*len(buf)) // every goroutine, not a truncated list
	}
}

// TestStreamWorkersOfTheServingServerOnly: a started gRPC service has the
// stream workers of the one grpc.Server that serves, and none once stopped.
// The gRPC server plugin makes a new grpc.Server at every Init and drops the
// one before unstopped; with the workers asked for before the last Init,
// every dropped server's workers stayed for the life of the process.
//
// The count starts from none: the servers of earlier tests, stopped, end
// their workers in goroutines of their own, and counted as a baseline they
// made it wrong once they ended (18 where 32 had started).
func TestStreamWorkersOfTheServingServerOnly(t *testing.T) {
	poll.Wait(t, 10*time.Second, "the stream workers of earlier tests' servers to end", func() bool { return streamWorkers() == 0 })
	p := testPlugins()
	svc := platform.NewService("user", p, quiet())
	// Inits after NewService, as Portal's builders make them.
	if err := svc.Server().Init(server.Metadata(map[string]string{"zone": "a"})); err != nil {
		t.Fatal(err)
	}
	if err := userpb.RegisterUserHandler(svc.Server(), &slowUser{started: make(chan struct{}, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	caller := platform.NewService("web", p, quiet())
	if _, err := userpb.NewUserService("user", caller.Client()).Health(t.Context(), &userpb.HealthRequest{}); err != nil {
		t.Fatalf("a call to the started service: %v", err)
	}
	if got, want := streamWorkers(), 16*goruntime.GOMAXPROCS(0); got != want {
		t.Errorf("%d stream workers after Start, want %d (one grpc.Server's)", got, want)
	}
	if err := svc.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	poll.Wait(t, 5*time.Second, "the stream workers to end with the service", func() bool { return streamWorkers() == 0 })
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

// A node whose health check starts failing leaves the registry within two
// register intervals, stays out while the check fails, and is back within
// two intervals once it passes again: on both servers (the gRPC plugin and
// go-micro's mucp), with the memory registry and with etcd.
func TestUnhealthyNodeLeavesRegistryAndComesBack(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	registries := map[string]func() registry.Registry{
		"memory": func() registry.Registry { return registry.NewMemoryRegistry() },
		"etcd":   func() registry.Registry { return etcdreg.NewRegistry(registry.Addrs(etcd.Addr)) },
	}
	for _, reg := range []string{"memory", "etcd"} {
		for _, rpc := range []string{"grpc", "mucp"} {
			t.Run(reg+"/"+rpc, func(t *testing.T) {
				t.Parallel()
				p := testPlugins()
				p.Registry, p.RPC = registries[reg](), rpc
				unhealthyNode(t, p)
			})
		}
	}
}

// unhealthyNode is TestUnhealthyNodeLeavesRegistryAndComesBack on p.
func unhealthyNode(t *testing.T, p platform.Plugins) {
	t.Helper()
	const interval = 200 * time.Millisecond
	svc := platform.NewService("user", p, quiet())
	var down atomic.Bool
	svc.SetHealth(func(context.Context) error {
		if down.Load() {
			return errors.New("store down")
		}
		return nil
	})
	// An id of its own: go-micro's default is one per process, and the
	// subtests run at once on one etcd, where one's stop would deregister
	// the other's node.
	id := strings.ReplaceAll(t.Name(), "/", "-")
	if err := svc.Server().Init(server.Id(id), server.RegisterInterval(interval), server.RegisterTTL(10*interval)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	// This node (the registry may hold the other subtests' nodes).
	node := "user-" + svc.Server().Options().Id
	listed := func() bool {
		list, err := p.Registry.GetService("user")
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("registry GetService(user): %v", err)
		}
		for _, s := range list {
			for _, n := range s.Nodes {
				if n.Id == node {
					return true
				}
			}
		}
		return false
	}
	// Start registers, but a registration that failed (etcd slow on a busy
	// machine) is retried at the next interval: wait for it.
	poll.Wait(t, 10*time.Second, "the healthy node registered at start", listed)

	down.Store(true)
	failed := time.Now()
	for listed() {
		if time.Since(failed) > 2*interval+interval/2 {
			t.Fatalf("health check failing for %v (register interval %v): still registered", time.Since(failed), interval)
		}
		time.Sleep(5 * time.Millisecond)
	}
	gone := time.Since(failed)
	// Out, and kept out: go-micro's register loop deregisters a node whose
	// check fails and registers it again in the same tick. Watched past the
	// server's backoff after the refused registration (~2.7 s) and two more
	// ticks.
	for until := time.Now().Add(3*time.Second + 2*interval); time.Now().Before(until); time.Sleep(5 * time.Millisecond) {
		if listed() {
			t.Fatalf("registered again %v after the health check began to fail", time.Since(failed).Round(time.Millisecond))
		}
	}

	down.Store(false)
	passed := time.Now()
	for !listed() {
		if time.Since(passed) > 2*interval+interval/2 {
			t.Fatalf("health check passing again for %v: not registered", time.Since(passed))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("register interval %v: gone %v after the check began to fail; back %v after it passed",
		interval, gone.Round(time.Millisecond), time.Since(passed).Round(time.Millisecond))
}
