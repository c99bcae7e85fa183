package auth

import (
	"context"
	"errors"
	"strings"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// MetadataKey is the RPC metadata entry that carries the caller's token, as
// "Bearer <token>".
const MetadataKey = "Authorization"

// Rules says who may call which endpoint; every service checks them itself,
// whatever the gateway did. Anything not listed is refused.
var Rules = append([]*auth.Rule{
	public("user", "User.Register"),
	public("user", "User.Login"),
	public("user", "User.Health"),
	// The OpenID provider's HTTP requests, forwarded by gateways; its own
	// endpoints authenticate clients and users (internal/sso).
	public("user", "OIDC.Serve"),
	public("system", "System.Health"),
	{ID: "user-any", Scope: auth.ScopeAccount, Access: auth.AccessGranted, Resource: &auth.Resource{Type: "service", Name: "user", Endpoint: "*"}},
	{ID: "system-admin", Scope: RoleAdmin, Access: auth.AccessGranted, Resource: &auth.Resource{Type: "service", Name: "system", Endpoint: "*"}},
	// The supervisor of `portal up` (internal/supervisor): list, restart and
	// read the logs of the services.
	{ID: "runtime-admin", Scope: RoleAdmin, Access: auth.AccessGranted, Resource: &auth.Resource{Type: "service", Name: "runtime", Endpoint: "*"}},
}, adminOnly("user", "User.ListUsers", "User.GetUser", "User.UpdateUser", "User.DeleteUser", "User.Stats",
	"OIDC.CreateClient", "OIDC.ListClients", "OIDC.UpdateClient", "OIDC.DeleteClient",
	"User.ListLockouts", "User.LiftLockout")...)

func public(service, endpoint string) *auth.Rule {
	return &auth.Rule{
		ID: "public-" + endpoint, Scope: auth.ScopePublic, Access: auth.AccessGranted, Priority: 1,
		Resource: &auth.Resource{Type: "service", Name: service, Endpoint: endpoint},
	}
}

// adminOnly makes endpoints of a service whose other endpoints any account
// may call need the admin role: granted to admins first, then denied to every
// other account before the service-wide grant is reached.
func adminOnly(service string, endpoints ...string) []*auth.Rule {
	var rules []*auth.Rule
	for _, e := range endpoints {
		res := &auth.Resource{Type: "service", Name: service, Endpoint: e}
		rules = append(rules,
			&auth.Rule{ID: "admin-" + e, Scope: RoleAdmin, Access: auth.AccessGranted, Priority: 3, Resource: res},
			&auth.Rule{ID: "deny-" + e, Scope: auth.ScopeAccount, Access: auth.AccessDenied, Priority: 2, Resource: res},
		)
	}
	return rules
}

// IsAdmin reports whether roles hold the admin role.
func IsAdmin(roles []string) bool {
	for _, r := range roles {
		if r == RoleAdmin {
			return true
		}
	}
	return false
}

// SessionChecker confirms that an account's session is still live (not ended,
// user not disabled) and returns the user's roles now: a token carries the
// roles of when it was issued, and a demoted admin must lose the role at once.
// It returns ErrSessionEnded when the session is over.
type SessionChecker interface {
	CheckSession(ctx context.Context, acc *auth.Account) (roles []string, err error)
}

// SessionReader is a SessionChecker whose check reads records the handler
// of the same call needs: HandlerWrapper hands the handler the context
// ReadSession returns, so that they are not read twice.
type SessionReader interface {
	SessionChecker
	ReadSession(ctx context.Context, acc *auth.Account) (handlerCtx context.Context, roles []string, err error)
}

// checkSession runs the check, and returns the context for the handler:
// what ReadSession gave, or ctx.
func checkSession(ctx context.Context, sessions SessionChecker, acc *auth.Account) (context.Context, []string, error) {
	if r, ok := sessions.(SessionReader); ok {
		return r.ReadSession(ctx, acc)
	}
	roles, err := sessions.CheckSession(ctx, acc)
	return ctx, roles, err
}

// ErrSessionEnded means the token is well signed but its session is over.
var ErrSessionEnded = errors.New("auth: session ended")

// TokenFromContext returns the caller's token from the RPC metadata.
func TokenFromContext(ctx context.Context) string {
	v, _ := metadata.Get(ctx, MetadataKey)
	return strings.TrimPrefix(v, auth.BearerScheme)
}

// ContextWithToken puts a token into the outgoing RPC metadata.
func ContextWithToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.Set(ctx, MetadataKey, auth.BearerScheme+token)
}

// HandlerWrapper checks every request against Rules: a public endpoint passes;
// any other needs a token in the metadata, verified, whose session sessions
// confirms live, and whose user's current roles the endpoint's rule grants.
// The account, with those roles as its scopes, reaches handlers through
// auth.AccountFromContext.
func HandlerWrapper(a auth.Auth, sessions SessionChecker) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			res := &auth.Resource{Type: "service", Name: req.Service(), Endpoint: req.Endpoint()}
			if auth.Verify(Rules, nil, res) == nil {
				return next(ctx, req, rsp)
			}
			tok := TokenFromContext(ctx)
			if tok == "" {
				return merrors.Unauthorized("auth.unauthenticated", "%s needs a token", req.Endpoint())
			}
			acc, err := a.Inspect(tok)
			if errors.Is(err, ErrExpired) {
				return merrors.Unauthorized("auth.token_expired", "the token has expired")
			} else if err != nil {
				return merrors.Unauthorized("auth.invalid_token", "the token is not valid")
			}
			ctx, roles, err := checkSession(ctx, sessions, acc)
			if errors.Is(err, ErrSessionEnded) {
				return merrors.Unauthorized("auth.session_ended", "the session has ended")
			} else if err != nil {
				return err
			}
			acc.Scopes = roles
			if err := auth.Verify(Rules, acc, res); err != nil {
				return merrors.Forbidden("auth.forbidden", "%s is not allowed for this account", req.Endpoint())
			}
			return next(auth.ContextWithAccount(ctx, acc), req, rsp)
		}
	}
}

// ClientKey is the RPC metadata entry in which the gateway names the end
// client's address, for session records and the audit log. Services take it
// as the gateway's word: it is informative, never a credential.
const ClientKey = "Portal-Client-Addr"

// ContextWithClient puts the end client's address into the outgoing RPC
// metadata.
func ContextWithClient(ctx context.Context, addr string) context.Context {
	if addr == "" {
		return ctx
	}
	return metadata.Set(ctx, ClientKey, addr)
}

// ClientFromContext returns the end client's address the gateway named.
func ClientFromContext(ctx context.Context) string {
	v, _ := metadata.Get(ctx, ClientKey)
	return v
}
