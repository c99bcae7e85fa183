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

	const (
		none    = ""
		garbage = "garbage.token.here"
	)
	tests := []struct {
		name       string
		service    string
		endpoint   string
		token      string
		rawHeader  map[string]string // metadata used instead of token
		checkerErr error
		roles      []string // the user's roles now; nil: the token's
		wantID     string   // go-micro error id; "" means the handler runs
		wantCode   int32
		wantErr    error  // exact error expected (pass-through), instead of wantID
		wantAcc    string // account id the handler sees; "" means none
		wantCheck  bool   // the session checker is consulted
	}{
		{name: "register without token", service: "user", endpoint: "User.Register", token: none},
		{name: "login without token", service: "user", endpoint: "User.Login", token: none},
		{name: "user health without token", service: "user", endpoint: "User.Health", token: none},
		{name: "system health without token", service: "system", endpoint: "System.Health", token: none},
		{name: "login with a garbage token", service: "user", endpoint: "User.Login", token: garbage},
		{name: "system health with a garbage token", service: "system", endpoint: "System.Health", token: garbage},
		{name: "register with an expired token", service: "user", endpoint: "User.Register", token: expiredTok.AccessToken},
		{name: "public endpoint with an ended session", service: "user", endpoint: "User.Login", token: userTok.AccessToken, checkerErr: ErrSessionEnded},

		{name: "info without token", service: "user", endpoint: "User.Info", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "info with empty bearer", service: "user", endpoint: "User.Info", rawHeader: map[string]string{"Authorization": "Bearer "},
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "info with garbage token", service: "user", endpoint: "User.Info", token: garbage,
			wantID: "auth.invalid_token", wantCode: 401},
		{name: "info with a secret for a token", service: "user", endpoint: "User.Info", token: generate(t, j, defaultMint()).Secret,
			wantID: "auth.invalid_token", wantCode: 401},
		{name: "info with expired token", service: "user", endpoint: "User.Info", token: expiredTok.AccessToken,
			wantID: "auth.token_expired", wantCode: 401},
		{name: "info with user token", service: "user", endpoint: "User.Info", token: userTok.AccessToken,
			wantAcc: userOpts.id, wantCheck: true},
		{name: "lower-case metadata key", service: "user", endpoint: "User.Info",
			rawHeader: map[string]string{"authorization": "Bearer " + userTok.AccessToken},
			wantAcc:   userOpts.id, wantCheck: true},
		{name: "list services with user token", service: "system", endpoint: "System.ListServices", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "list users on the user service with user token", service: "user", endpoint: "User.ListUsers", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "update user with user token", service: "user", endpoint: "User.UpdateUser", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "delete user with admin token", service: "user", endpoint: "User.DeleteUser", token: adminTok.AccessToken,
			wantAcc: adminOpts.id, wantCheck: true},
		{name: "list lockouts with user token", service: "user", endpoint: "User.ListLockouts", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "lift lockout with user token", service: "user", endpoint: "User.LiftLockout", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "lift lockout with admin token", service: "user", endpoint: "User.LiftLockout", token: adminTok.AccessToken,
			wantAcc: adminOpts.id, wantCheck: true},
		{name: "register an OpenID client with user token", service: "user", endpoint: "OIDC.CreateClient", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "disable an OpenID client with user token", service: "user", endpoint: "OIDC.UpdateClient", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "register an OpenID client with admin token", service: "user", endpoint: "OIDC.CreateClient", token: adminTok.AccessToken,
			wantAcc: adminOpts.id, wantCheck: true},
		{name: "consent without token", service: "user", endpoint: "OIDC.Consent", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "OpenID provider's HTTP without token", service: "user", endpoint: "OIDC.Serve", token: none},
		{name: "admin token of a demoted admin", service: "system", endpoint: "System.ListUsers", token: adminTok.AccessToken,
			roles: []string{RoleUser}, wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "user token of a promoted user", service: "system", endpoint: "System.ListUsers", token: userTok.AccessToken,
			roles: []string{RoleUser, RoleAdmin}, wantAcc: userOpts.id, wantCheck: true},
		{name: "list sessions with user token", service: "user", endpoint: "User.ListSessions", token: userTok.AccessToken,
			wantAcc: userOpts.id, wantCheck: true},
		{name: "list services without token", service: "system", endpoint: "System.ListServices", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "list services with admin token", service: "system", endpoint: "System.ListServices", token: adminTok.AccessToken,
			wantAcc: adminOpts.id, wantCheck: true},
		{name: "runtime list with user token", service: "runtime", endpoint: "Runtime.List", token: userTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "runtime restart without token", service: "runtime", endpoint: "Runtime.Restart", token: none,
			wantID: "auth.unauthenticated", wantCode: 401},
		{name: "runtime logs with admin token", service: "runtime", endpoint: "Runtime.Logs", token: adminTok.AccessToken,
			wantAcc: adminOpts.id, wantCheck: true},
		{name: "unknown service with admin token", service: "billing", endpoint: "Billing.Charge", token: adminTok.AccessToken,
			wantID: "auth.forbidden", wantCode: 403, wantCheck: true},
		{name: "session ended", service: "user", endpoint: "User.Info", token: userTok.AccessToken, checkerErr: ErrSessionEnded,
			wantID: "auth.session_ended", wantCode: 401, wantCheck: true},
		{name: "wrapped session ended", service: "user", endpoint: "User.Info", token: userTok.AccessToken,
			checkerErr: errors.Join(errors.New("lookup"), ErrSessionEnded),
			wantID:     "auth.session_ended", wantCode: 401, wantCheck: true},
		{name: "other checker error passes through", service: "system", endpoint: "System.ListServices", token: adminTok.AccessToken,
			checkerErr: otherErr, wantErr: otherErr, wantCheck: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var checked *auth.Account
			checker := SessionCheckerFunc(func(ctx context.Context, acc *auth.Account) ([]string, error) {
				checked = acc
				if tc.roles != nil {
					return tc.roles, tc.checkerErr
				}
				return acc.Scopes, tc.checkerErr
			})
			var (
				called bool
				seen   *auth.Account
			)
			next := func(ctx context.Context, req server.Request, rsp interface{}) error {
				called = true
				seen, _ = auth.AccountFromContext(ctx)
				return nil
			}
			ctx := context.Background()
			if tc.rawHeader != nil {
				ctx = metadata.NewContext(ctx, tc.rawHeader)
			} else if tc.token != "" {
				ctx = metadata.Set(ctx, MetadataKey, auth.BearerScheme+tc.token)
			}
			err := HandlerWrapper(j, checker)(next)(ctx, fakeRequest{tc.service, tc.endpoint}, nil)

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
			if (checked != nil) != tc.wantCheck {
				t.Errorf("session checker consulted = %v, want %v", checked != nil, tc.wantCheck)
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
			if !reflect.DeepEqual(seen, checked) {
				t.Errorf("handler saw %+v, the checker %+v", seen, checked)
			}
			if tc.roles != nil && !reflect.DeepEqual(seen.Scopes, tc.roles) {
				t.Errorf("handler saw scopes %v, want the current roles %v", seen.Scopes, tc.roles)
			}
			if seen.Metadata[MetaSession] == "" {
				t.Errorf("account has no session: %+v", seen)
			}
		})
	}
}

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

// SessionCheckerFunc adapts a function to SessionChecker (tests only).
type SessionCheckerFunc func(ctx context.Context, acc *auth.Account) ([]string, error)

// CheckSession calls f.
func (f SessionCheckerFunc) CheckSession(ctx context.Context, acc *auth.Account) ([]string, error) {
	return f(ctx, acc)
}
