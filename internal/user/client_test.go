package user

import (
	"context"
	"testing"

	"go-micro.dev/v4/server"

	pauth "github.com/portal-go/portal/internal/auth"
	pb "github.com/portal-go/portal/proto/user"
)

// bodyRequest is a server.Request that only has a body.
type bodyRequest struct {
	server.Request
	body interface{}
}

func (r bodyRequest) Body() interface{} { return r.body }

// What a login request's body says about the client is replaced by what
// the caller proved: with no proof at all, nothing.
func TestProvenClientOverwritesTheBody(t *testing.T) {
	var seen *pb.LoginRequest
	h := ProvenClient(func(_ context.Context, req server.Request, _ interface{}) error {
		seen = req.Body().(*pb.LoginRequest)
		return nil
	})
	for name, tc := range map[string]struct {
		ctx  context.Context
		want pauth.Client
	}{
		"proven":   {pauth.WithClient(context.Background(), pauth.Client{Addr: "203.0.113.7", UserAgent: "ua"}), pauth.Client{Addr: "203.0.113.7", UserAgent: "ua"}},
		"no proof": {context.Background(), pauth.Client{}},
	} {
		req := &pb.LoginRequest{Username: "alice", ClientAddr: "198.51.100.66", UserAgent: "forged"}
		if err := h(tc.ctx, bodyRequest{body: req}, nil); err != nil {
			t.Fatal(err)
		}
		if seen.ClientAddr != tc.want.Addr || seen.UserAgent != tc.want.UserAgent || seen.Username != "alice" {
			t.Errorf("%s: the handler got %q, %q; want %q, %q", name, seen.ClientAddr, seen.UserAgent, tc.want.Addr, tc.want.UserAgent)
		}
	}
}
