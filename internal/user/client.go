package user

import (
	"context"

	"go-micro.dev/v4/server"

	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// ProvenClient is a server handler wrapper that replaces what a request's
// body says about the end client (LoginRequest's client_addr and
// user_agent) with what the caller proved (auth.ClientProof.Verify, which
// must run outside it): a gateway's signed word, or else the caller's own
// address. The body of an arbitrary caller is never believed, so it can
// neither move another address's failure counter nor name the client in
// the audit log.
func ProvenClient(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if r, ok := req.Body().(*pb.LoginRequest); ok {
			c, _ := pauth.ClientOf(ctx)
			r.ClientAddr, r.UserAgent = c.Addr, c.UserAgent
		}
		return next(ctx, req, rsp)
	}
}
