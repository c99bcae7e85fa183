//go:build up

package supervisor_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/selector"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/supervisor"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// TestRunInProcess runs the supervisor in the test process, so that the race
// detector watches it (TestUp runs the binary, built without it): RPC calls,
// an admin's restart and a SIGKILLed child at once, then a stop. It needs
// the embedded etcd and NATS in the test binary, so -tags up, which make
// test and make test-race (CI, with the race detector) give.
func TestRunInProcess(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildPortal(t)
	dir := t.TempDir()
	etcd := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	out := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- supervisor.Run(ctx, supervisor.Options{
			DataDir: dir, HTTPAddress: "127.0.0.1:0", ConfigFile: filepath.Join(dir, "portal.yaml"),
			EtcdAddress: etcd, NATSAddress: "127.0.0.1:0", Executable: bin,
			Log: slog.New(slog.NewTextHandler(out, nil)), Output: out,
		})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
		if t.Failed() {
			t.Logf("output:\n%s", out.String())
		}
	}()

	var addr string
	poll.Wait(t, 30*time.Second, "the gateway's ready line", func() bool {
		_, rest, ok := strings.Cut(out.String(), `msg="portal ready" service=web http=`)
		addr, _, _ = strings.Cut(rest, "\n")
		return ok
	})
	reg := upRegistry(t, dir, etcd)
	refusesStrangers(t, dir, etcd, out.String())
	u := &up{url: "http://" + addr, rpc: grpcclient.NewClient(client.Registry(reg),
		client.Selector(selector.NewSelector(selector.Registry(reg))), client.RequestTimeout(10*time.Second))}
	u.waitReady(t)
	ctxAdmin := pauth.ContextWithToken(context.Background(), u.login(t, "admin", testenv.AdminPassword))
	procs := u.waitRunning(t, ctxAdmin, nil)

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 20 {
				supervisor.Status(ctxAdmin, u.rpc)
				supervisor.Logs(ctxAdmin, u.rpc, "web", 10)
			}
		})
	}
	if _, err := supervisor.Restart(ctxAdmin, u.rpc, "web"); err != nil {
		t.Fatalf("Runtime.Restart(web): %v", err)
	}
	if err := syscall.Kill(int(procs["system"].Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	u.waitRunning(t, ctxAdmin, map[string]int64{"web": procs["web"].Pid, "system": procs["system"].Pid})

	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return within 60s of the cancel")
	}
}
