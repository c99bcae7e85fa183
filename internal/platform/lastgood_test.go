package platform_test

import (
	"context"
	"log/slog"
	"strings"
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

// registryTimeout is etcd's timeout for each registry question in
// TestEtcdOutage: long, so that a call that waits for the registry shows.
const registryTimeout = 30 * time.Second

// TestEtcdOutage: with etcd up, a node that replaced another is called
// however often the selector's entries expire; with etcd away longer than
// the selector keeps nodes, calls are answered from the last good view
// without waiting on etcd (issue 18, finding 6: every call waited out the
// registry's timeout); a service stopped meanwhile stops at once and logs no
// error; once etcd is back, a node that changed is found.
func TestEtcdOutage(t *testing.T) {
	testenv.Require(t, "etcd")
	etcd := testenv.StartEtcd(t)
	const ttl = 2 * time.Second
	p := platform.Plugins{
		Registry:    etcdreg.NewRegistry(registry.Addrs(etcd.Addr), registry.Timeout(registryTimeout)),
		Broker:      broker.NewMemoryBroker(),
		Address:     "127.0.0.1:0",
		SelectorTTL: ttl,
	}
	start := func(name, id string, log *slog.Logger) *platform.Service {
		t.Helper()
		svc := platform.NewService(name, p, log)
		// A short TTL: nodes left behind expire soon after etcd is back.
		if err := svc.Server().Init(server.Id(id), server.RegisterTTL(5*time.Second), server.RegisterInterval(time.Second)); err != nil {
			t.Fatal(err)
		}
		if name == "user" {
			if err := userpb.RegisterUserHandler(svc.Server(), healthyUser{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	first := start("user", "first", quiet())
	caller := start("web", "caller", quiet())
	t.Cleanup(func() { _ = caller.Stop() })
	var logs testenv.SyncBuffer
	leaving := start("web", "leaving", slog.New(slog.NewTextHandler(&logs, nil)))
	users := userpb.NewUserService("user", caller.Client())
	health := func() (time.Duration, error) {
		began := time.Now()
		_, err := users.Health(context.Background(), &userpb.HealthRequest{})
		return time.Since(began), err
	}
	if _, err := health(); err != nil {
		t.Fatalf("with etcd up: %v", err)
	}
	// A node replaced while etcd is up, a little before etcd goes: the view
	// the outage finds has the new node (go-micro's cache, and a view kept
	// only from the selector's last question, would have the old one).
	second := start("user", "second", quiet())
	t.Cleanup(func() { _ = second.Stop() })
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, "calls to reach the second node", func() bool {
		_, err := health()
		return err == nil
	})
	replaced := time.Now()
	poll.Wait(t, 10*time.Second, "two refreshes of the view", func() bool { return time.Since(replaced) > 2500*time.Millisecond })

	etcd.Stop(t)
	outage := time.Now()
	for i := range 3 {
		// Past the selector's TTL each time: its entries expired.
		poll.Wait(t, 30*time.Second, "the selector's TTL to pass", func() bool { return time.Since(outage) > time.Duration(i+1)*ttl+time.Second })
		took, err := health()
		if err != nil || took > registryTimeout/3 {
			t.Fatalf("call %d with etcd away: %v after %v (the registry's timeout is %v)", i, err, took, registryTimeout)
		}
	}
	began := time.Now()
	if err := leaving.Stop(); err != nil {
		t.Fatalf("stop with etcd away: %v", err)
	}
	if took := time.Since(began); took > registryTimeout/3 {
		t.Fatalf("stop with etcd away took %v", took)
	}
	if out := logs.String(); strings.Contains(out, "level=ERROR") {
		t.Fatalf("stop with etcd away logged an error:\n%s", out)
	}

	// etcd back: the second node goes, a third comes; calls find it.
	etcd.Start(t)
	third := start("user", "third", quiet())
	t.Cleanup(func() { _ = third.Stop() })
	if err := second.Stop(); err != nil {
		t.Logf("stop second: %v", err)
	}
	poll.Wait(t, 30*time.Second, "calls to reach the node registered after etcd came back", func() bool {
		_, err := health()
		return err == nil
	})
	for i := range 10 {
		if _, err := health(); err != nil {
			t.Fatalf("call %d after the catch-up: %v", i, err)
		}
	}
}
