package auth

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go-micro.dev/v4/auth"
	"go-micro.dev/v4/codec"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/endpoint"
)

// fakeRequest is the least of a server.Request the wrapper reads.
type fakeRequest struct{ service, endpoint string }

var _ server.Request = fakeRequest{}

func (r fakeRequest) Service() string           { return r.service }
func (r fakeRequest) Method() string            { return r.endpoint }
func (r fakeRequest) Endpoint() string          { return r.endpoint }
func (r fakeRequest) ContentType() string       { return "application/protobuf" }
func (r fakeRequest) Header() map[string]string { return map[string]string{} }
func (r fakeRequest) Body() interface{}         { return nil }
func (r fakeRequest) Read() ([]byte, error)     { return nil, nil }
func (r fakeRequest) Codec() codec.Reader       { return nil }
func (r fakeRequest) Stream() bool              { return false }

func TestHandlerWrapper(t *testing.T) {
	j, clk := newTestJWT(t)

	userOpts := defaultMint()
	_, userTok := mint(t, j, userOpts)

	adminOpts := defaultMint()
	adminOpts.id, adminOpts.username, adminOpts.roles, adminOpts.session = "admin-1", "admin", []string{RoleAdmin, RoleUser}, "sess-admin"
	_, adminTok := mint(t, j, adminOpts)

	// Minted an hour before baseTime, for 15 minutes.
	clk.Set(baseTime.Add(-time.Hour))
	_, expiredTok := mint(t, j, defaultMint())
	clk.Set(baseTime)

	otherErr := merrors.New("user.unavailable", "store down", 503)
	all := endpoint.All()

	const (
		none    = ""
		garbage = "garbage.token.here"
	)
	tests := []struct {
		name       string
		table      *endpoint.Table
		endpoint   string
		token      string
		rawHeader  map[string]string // metadata used instead of token
		checkerErr error
		perms      []string // the caller's permissions now (nil: none)
		wantID     string   // go-micro error id; "" means the handler runs
		wantCode   int32
		wantErr    error  // exact error expected (pass-through), instead of wantID
		wantAcc    string // account id the handler sees; "" means none
		wantCheck  bool   // the checker is consulted
	}{
		{name: "register without token", table: testUser, endpoint: "User.Register", token: none},
		{name: "login without token", table: testUser, endpoint: "User.Login", token: none},
		{name: "system health without token", table: testSystem, endpoint: "System.Health", token: none},
		{name: "login with a garbage token", table: testUser, endpoint: "User.Login", token: garbage},
		{name: "register with an expired token", table: testUser, endpoint: "User.Register", token: expiredTok.AccessToken},
		{name: "public endpoint with an ended session", table: testUser, endpoint: "User.Login", token: userTok.AccessToken, checkerErr: ErrSessionEnded},

		{name: "info without token", table: testUser, endpoint: "User.Info", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "info with empty bearer", table: testUser, endpoint: "User.Info", rawHeader: map[string]string{"Authorization": "Bearer "},
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "info with garbage token", table: testUser, endpoint: "User.Info", token: garbage,
			wantID: "auth.invalid_token", wantCode: 401},
		{name: "info with a secret for a token", table: testUser, endpoint: "User.Info", token: generate(t, j, defaultMint()).Secret,
			wantID: "auth.invalid_token", wantCode: 401},
		{name: "info with expired token", table: testUser, endpoint: "User.Info", token: expiredTok.AccessToken,
			wantID: "auth.token_expired", wantCode: 401},
		{name: "info with user token", table: testUser, endpoint: "User.Info", token: userTok.AccessToken,
			wantAcc: userOpts.id, wantCheck: true},
		{name: "lower-case metadata key", table: testUser, endpoint: "User.Info",
			rawHeader: map[string]string{"authorization": "Bearer " + userTok.AccessToken},
			wantAcc:   userOpts.id, wantCheck: true},
		{name: "list services without services.read", table: testSystem, endpoint: "System.ListServices", token: userTok.AccessToken,
			perms: []string{"audit.read"}, wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "list services with services.read", table: testSystem, endpoint: "System.ListServices", token: userTok.AccessToken,
			perms: []string{"services.read"}, wantAcc: userOpts.id, wantCheck: true},
		{name: "audit.read alone reads the audit log", table: testSystem, endpoint: "System.ListAudit", token: userTok.AccessToken,
			perms: []string{"audit.read"}, wantAcc: userOpts.id, wantCheck: true},
		{name: "list users without users.read", table: testUser, endpoint: "User.ListUsers", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "update user with users.read only", table: testUser, endpoint: "User.UpdateUser", token: userTok.AccessToken,
			perms: []string{"users.read"}, wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "delete user with every permission", table: testUser, endpoint: "User.DeleteUser", token: adminTok.AccessToken,
			perms: all, wantAcc: adminOpts.id, wantCheck: true},
		{name: "admin token of a demoted admin", table: testUser, endpoint: "User.ListUsers", token: adminTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "user token of a promoted user", table: testUser, endpoint: "User.ListUsers", token: userTok.AccessToken,
			perms: all, wantAcc: userOpts.id, wantCheck: true},
		{name: "list sessions with user token", table: testUser, endpoint: "User.ListSessions", token: userTok.AccessToken,
			wantAcc: userOpts.id, wantCheck: true},
		{name: "list services without token", table: testSystem, endpoint: "System.ListServices", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "endpoint not in the table", table: testSystem, endpoint: "System.Undeclared", token: adminTok.AccessToken,
			perms: all, wantID: "auth.forbidden", wantCode: 403},
		{name: "another service's endpoint", table: testSystem, endpoint: "User.ListUsers", token: adminTok.AccessToken,
			perms: all, wantID: "auth.forbidden", wantCode: 403},
		{name: "session ended", table: testUser, endpoint: "User.Info", token: userTok.AccessToken, checkerErr: ErrSessionEnded,
			wantID: "auth.session_ended", wantCode: 401, wantCheck: true},
		{name: "wrapped session ended", table: testUser, endpoint: "User.Info", token: userTok.AccessToken,
			checkerErr: errors.Join(errors.New("lookup"), ErrSessionEnded),
			wantID:     "auth.session_ended", wantCode: 401, wantCheck: true},
		{name: "other checker error passes through", table: testSystem, endpoint: "System.ListServices", token: adminTok.AccessToken,
			checkerErr: otherErr, wantErr: otherErr, wantCheck: true},
		{name: "an API key is not inspected but checked", table: testSystem, endpoint: "System.ListAudit", token: KeyPrefix + "0123456789abcdef_secret",
			perms: []string{"audit.read"}, wantAcc: "key-owner", wantCheck: true},
		{name: "an API key without the permission", table: testSystem, endpoint: "System.ListServices", token: KeyPrefix + "0123456789abcdef_secret",
			perms: []string{"audit.read"}, wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var checked *auth.Account
			consulted := false
			checker := checkerFunc(func(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, Grant, error) {
				consulted = true
				if acc == nil { // an API key: the checker names its owner
					if !IsKey(tok) {
						t.Errorf("checker given no account for %q", tok)
					}
					acc = &auth.Account{ID: "key-owner", Metadata: map[string]string{MetaKey: "0123456789abcdef"}}
				}
				checked = acc
				return context.WithValue(ctx, readKey{}, acc.ID), acc, Grant{Roles: []string{"r"}, Permissions: tc.perms}, tc.checkerErr
			})
			var (
				called bool
				seen   *auth.Account
				grant  Grant
				read   string // what the checker left in the handler's context
			)
			next := func(ctx context.Context, req server.Request, rsp interface{}) error {
				called = true
				seen, _ = auth.AccountFromContext(ctx)
				grant = GrantFromContext(ctx)
				read, _ = ctx.Value(readKey{}).(string)
				return nil
			}
			ctx := context.Background()
			if tc.rawHeader != nil {
				ctx = metadata.NewContext(ctx, tc.rawHeader)
			} else if tc.token != "" {
				ctx = metadata.Set(ctx, MetadataKey, auth.BearerScheme+tc.token)
			}
			service := tc.table.Service
			err := HandlerWrapper(j, tc.table, checker)(next)(ctx, fakeRequest{service, tc.endpoint}, nil)

			switch {
			case tc.wantErr != nil:
				if err != tc.wantErr {
					t.Fatalf("error = %v, want %v unchanged", err, tc.wantErr)
				}
			case tc.wantID != "":
				me, ok := err.(*merrors.Error)
				if !ok {
					t.Fatalf("error = %#v, want a go-micro error %s", err, tc.wantID)
				}
				if me.Id != tc.wantID || me.Code != tc.wantCode {
					t.Fatalf("error = %s %d (%s), want %s %d", me.Id, me.Code, me.Detail, tc.wantID, tc.wantCode)
				}
			default:
				if err != nil {
					t.Fatalf("error = %v, want the handler to run", err)
				}
			}
			wantCalled := tc.wantID == "" && tc.wantErr == nil
			if called != wantCalled {
				t.Errorf("handler called = %v, want %v", called, wantCalled)
			}
			if consulted != tc.wantCheck {
				t.Errorf("checker consulted = %v, want %v", consulted, tc.wantCheck)
			}
			if tc.wantAcc == "" {
				if seen != nil {
					t.Errorf("handler saw account %+v, want none", seen)
				}
				return
			}
			if seen == nil || seen.ID != tc.wantAcc {
				t.Fatalf("handler saw account %+v, want id %s", seen, tc.wantAcc)
			}
			if seen != checked {
				t.Errorf("handler saw %+v, the checker gave %+v", seen, checked)
			}
			if !reflect.DeepEqual(seen.Scopes, []string{"r"}) || !reflect.DeepEqual(grant.Permissions, tc.perms) {
				t.Errorf("handler saw scopes %v and grant %+v, want the checker's", seen.Scopes, grant)
			}
			if read != seen.ID {
				t.Errorf("handler's context lacks what the check read (%q)", read)
			}
		})
	}
}

// The tables TestHandlerWrapper checks calls against.
var (
	testUser = endpoint.Declare("test-user",
		endpoint.Endpoint{Name: "User.Register", Access: endpoint.Public},
		endpoint.Endpoint{Name: "User.Login", Access: endpoint.Public},
		endpoint.Endpoint{Name: "User.Info", Access: endpoint.SignedIn},
		endpoint.Endpoint{Name: "User.ListSessions", Access: endpoint.SignedIn},
		endpoint.Endpoint{Name: "User.ListUsers", Access: endpoint.UsersRead},
		endpoint.Endpoint{Name: "User.UpdateUser", Access: endpoint.UsersWrite},
		endpoint.Endpoint{Name: "User.DeleteUser", Access: endpoint.UsersWrite},
	)
	testSystem = endpoint.Declare("test-system",
		endpoint.Endpoint{Name: "System.Health", Access: endpoint.Public},
		endpoint.Endpoint{Name: "System.ListServices", Access: endpoint.ServicesRead},
		endpoint.Endpoint{Name: "System.ListAudit", Access: endpoint.AuditRead},
	)
)

func TestContextWithToken(t *testing.T) {
	tests := []struct {
		name, token string
	}{
		{"token", "abc.def.ghi"},
		{"empty", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ContextWithToken(context.Background(), tc.token)
			if got := TokenFromContext(ctx); got != tc.token {
				t.Errorf("TokenFromContext = %q, want %q", got, tc.token)
			}
			v, ok := metadata.Get(ctx, MetadataKey)
			if tc.token == "" {
				if ok {
					t.Errorf("an empty token set metadata %q", v)
				}
				return
			}
			if v != "Bearer "+tc.token {
				t.Errorf("metadata = %q", v)
			}
		})
	}
}

// checkerFunc adapts a function to Checker (tests only).
type checkerFunc func(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, Grant, error)

func (f checkerFunc) Check(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, Grant, error) {
	return f(ctx, tok, acc)
}

// readKey is the context key under which the test's checker leaves what it
// "read" for the handler.
type readKey struct{}
