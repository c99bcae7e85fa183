// Package leak checks that a package's tests leave no goroutine running:
// each package that starts servers (Portal in-process, go-micro services,
// watchers, clients of etcd, Redis and NATS) calls VerifyTestMain from its
// TestMain. A leaked goroutine fails the package, with its stack.
package leak

import (
	"testing"

	"go.uber.org/goleak"
)

// ignored are goroutines that libraries start and give no way to stop
// (go-micro v4.11.0 and its plugins, gRPC and etcd clients under them),
// matched by any function on their stack. A goroutine of Portal's own code
// is never ignored, unless listed here with its reason.
var ignored = []goleak.Option{
	// go-micro's memory store (go-cache) cleans up in a goroutine that
	// only a finalizer stops.
	goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	// go-micro's package-level DefaultConfig and memory registry, made at
	// init, run for the life of the process.
	goleak.IgnoreAnyFunction("go-micro.dev/v4/config.(*config).run.func2"),
	goleak.IgnoreAnyFunction("go-micro.dev/v4/config.(*config).run"),
	// ... and DefaultConfig's watch on its memory loader. (Portal's own
	// config.Center uses no loader: it watches its source itself.)
	goleak.IgnoreTopFunction("go-micro.dev/v4/config/loader/memory.(*memory).Watch.func1"),
	goleak.IgnoreAnyFunction("go-micro.dev/v4/registry.(*memRegistry).ttlPrune"),
	goleak.IgnoreAnyFunction("go-micro.dev/v4/registry.(*memWatcher).Next"),
	// The client selector's registry cache watches the registry with no
	// Stop reachable from a service; under it, the etcd registry plugin's
	// client (never closed: the registry interface has no Close) and its
	// gRPC connection.
	goleak.IgnoreAnyFunction("go-micro.dev/v4/registry/cache.(*cache).watch.func1"),
	goleak.IgnoreAnyFunction("github.com/go-micro/plugins/v4/registry/etcd.(*etcdWatcher).Next"),
	goleak.IgnoreAnyFunction("github.com/go-micro/plugins/v4/registry/etcd.newEtcdWatcher.func1"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGRPCStream).waitCancelSubstreams.func1"),
	goleak.IgnoreAnyFunction("go.etcd.io/etcd/client/v3.(*watchGRPCStream).waitCancelSubstreams.func2"),
	// ... and the context.AfterFunc-style goroutine the etcd client's
	// watch context leaves waiting on its never-cancelled parent. (Its
	// stack holds only the standard library's frames.)
	goleak.IgnoreTopFunction("context.(*cancelCtx).propagateCancel.func2"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc.(*pickerWrapper).pick"),
	goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
}

// VerifyTestMain runs the package's tests, then fails when goroutines other
// than the ignored ones are still running.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, ignored...)
}
