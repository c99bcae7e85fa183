package web

import (
	"context"
	"sync"

	"go-micro.dev/v4/client"

	pauth "github.com/portal-go/portal/internal/auth"
	systempb "github.com/portal-go/portal/proto/system"
	userpb "github.com/portal-go/portal/proto/user"
)

// fakeUsers is a userpb.UserService that records its calls (and the token
// each call carried) and answers what the test configured.
type fakeUsers struct {
	// UserService, nil, makes a call the fake does not answer panic.
	userpb.UserService
	mu     sync.Mutex
	calls  map[string]int
	tokens map[string][]string // method -> tokens seen in the RPC metadata
	// clients: method -> end clients the calls named (pauth.ClientOf)
	clients map[string][]pauth.Client

	healthErr error

	info    *userpb.InfoResponse
	infoErr error

	renew    *userpb.RenewResponse
	renewErr error

	login     *userpb.LoginResponse
	loginErr  error
	lastLogin *userpb.LoginRequest

	register    *userpb.RegisterResponse
	registerErr error

	sessions  []*userpb.Session
	revokeErr error
}

func newFakeUsers() *fakeUsers {
	return &fakeUsers{
		calls:    map[string]int{},
		tokens:   map[string][]string{},
		clients:  map[string][]pauth.Client{},
		info:     &userpb.InfoResponse{Id: "u-1", Username: "alice", Roles: []string{"user"}, SessionId: "s-1"},
		renew:    &userpb.RenewResponse{Token: "renewed-token", ExpiresAt: 0},
		login:    &userpb.LoginResponse{Token: "login-token", SessionId: "s-new"},
		register: &userpb.RegisterResponse{Id: "u-2", Username: "bob"},
	}
}

func (f *fakeUsers) record(ctx context.Context, method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	f.tokens[method] = append(f.tokens[method], pauth.TokenFromContext(ctx))
	cl, _ := pauth.ClientOf(ctx)
	f.clients[method] = append(f.clients[method], cl)
}

func (f *fakeUsers) clientsOf(method string) []pauth.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]pauth.Client(nil), f.clients[method]...)
}

func (f *fakeUsers) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeUsers) tokensOf(method string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens[method]...)
}

func (f *fakeUsers) Register(ctx context.Context, in *userpb.RegisterRequest, _ ...client.CallOption) (*userpb.RegisterResponse, error) {
	f.record(ctx, "Register")
	if f.registerErr != nil {
		return nil, f.registerErr
	}
	return f.register, nil
}

func (f *fakeUsers) Login(ctx context.Context, in *userpb.LoginRequest, _ ...client.CallOption) (*userpb.LoginResponse, error) {
	f.record(ctx, "Login")
	f.mu.Lock()
	f.lastLogin = in
	f.mu.Unlock()
	if f.loginErr != nil {
		return nil, f.loginErr
	}
	return f.login, nil
}

func (f *fakeUsers) Logout(ctx context.Context, _ *userpb.LogoutRequest, _ ...client.CallOption) (*userpb.LogoutResponse, error) {
	f.record(ctx, "Logout")
	return &userpb.LogoutResponse{}, nil
}

func (f *fakeUsers) Info(ctx context.Context, _ *userpb.InfoRequest, _ ...client.CallOption) (*userpb.InfoResponse, error) {
	f.record(ctx, "Info")
	if f.infoErr != nil {
		return nil, f.infoErr
	}
	return f.info, nil
}

func (f *fakeUsers) ChangePassword(ctx context.Context, _ *userpb.ChangePasswordRequest, _ ...client.CallOption) (*userpb.ChangePasswordResponse, error) {
	f.record(ctx, "ChangePassword")
	return &userpb.ChangePasswordResponse{}, nil
}

func (f *fakeUsers) Renew(ctx context.Context, _ *userpb.RenewRequest, _ ...client.CallOption) (*userpb.RenewResponse, error) {
	f.record(ctx, "Renew")
	if f.renewErr != nil {
		return nil, f.renewErr
	}
	return f.renew, nil
}

func (f *fakeUsers) Health(ctx context.Context, _ *userpb.HealthRequest, _ ...client.CallOption) (*userpb.HealthResponse, error) {
	f.record(ctx, "Health")
	if f.healthErr != nil {
		return nil, f.healthErr
	}
	return &userpb.HealthResponse{}, nil
}

func (f *fakeUsers) ListSessions(ctx context.Context, _ *userpb.ListSessionsRequest, _ ...client.CallOption) (*userpb.ListSessionsResponse, error) {
	f.record(ctx, "ListSessions")
	return &userpb.ListSessionsResponse{Sessions: f.sessions}, nil
}

func (f *fakeUsers) RevokeSession(ctx context.Context, _ *userpb.RevokeSessionRequest, _ ...client.CallOption) (*userpb.RevokeSessionResponse, error) {
	f.record(ctx, "RevokeSession")
	if f.revokeErr != nil {
		return nil, f.revokeErr
	}
	return &userpb.RevokeSessionResponse{}, nil
}

func (f *fakeUsers) ListTokens(ctx context.Context, _ *userpb.ListTokensRequest, _ ...client.CallOption) (*userpb.ListTokensResponse, error) {
	f.record(ctx, "ListTokens")
	return &userpb.ListTokensResponse{}, nil
}

// fakeSystem is a systempb.SystemService that always answers.
type fakeSystem struct {
	// SystemService, nil, makes a call the fake does not answer panic.
	systempb.SystemService
	mu    sync.Mutex
	calls int
}

func (f *fakeSystem) Health(context.Context, *systempb.HealthRequest, ...client.CallOption) (*systempb.HealthResponse, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return &systempb.HealthResponse{Status: "ok"}, nil
}

func (f *fakeSystem) ListServices(context.Context, *systempb.ListServicesRequest, ...client.CallOption) (*systempb.ListServicesResponse, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return &systempb.ListServicesResponse{}, nil
}

var (
	_ userpb.UserService     = (*fakeUsers)(nil)
	_ systempb.SystemService = (*fakeSystem)(nil)
)
