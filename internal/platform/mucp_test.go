package platform_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// Calls sent one after another over mucp, each on the connection the one
// before it used, are all answered. Before mucpTransport, go-micro's server
// handed a call that arrived while the previous call's goroutines were
// still finishing to that finished call, and about one call in a few
// hundred went unanswered until its timeout (fastest to hit with calls the
// server refuses at once, as here).
func TestMucpAnswersCallsOneAfterAnother(t *testing.T) {
	p := platform.Plugins{Registry: registry.NewMemoryRegistry(), Broker: broker.NewMemoryBroker(), Address: "127.0.0.1:0", RPC: "mucp"}
	srv := platform.NewService("seq.user", p, quiet())
	srv.SetAuth(func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			if req.Endpoint() == "User.Info" {
				return merrors.Forbidden("seq.forbidden", "no")
			}
			return next(ctx, req, rsp)
		}
	})
	if err := userpb.RegisterUserHandler(srv.Server(), orderUser{}); err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	cli := userpb.NewUserService("seq.user", platform.NewService("seq.web", p, quiet()).Client())
	opts := []client.CallOption{platform.Timeout(5 * time.Second), client.WithRetries(0)}
	ctx := context.Background()
	for i := range 1000 {
		if _, err := cli.Health(ctx, &userpb.HealthRequest{}, opts...); err != nil {
			t.Fatalf("call %d, Health: %v", 2*i, err)
		}
		if _, err := cli.Info(ctx, &userpb.InfoRequest{}, opts...); merrors.FromError(err).Code != http.StatusForbidden {
			t.Fatalf("call %d, Info: %v, want 403", 2*i+1, err)
		}
	}
}
