package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/portal-go/portal/internal/endpoint"
)

// The built-in roles: admin holds every permission, always; user none
// beyond the account's own (the user service keeps their definitions).
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// MetadataKey is the RPC metadata entry that carries the caller's token, as
// "Bearer <token>".
const MetadataKey = "Authorization"

// IsAdmin reports whether roles hold the admin role.
func IsAdmin(roles []string) bool {
	for _, r := range roles {
		if r == RoleAdmin {
			return true
		}
	}
	return false
}

// Grant is what a caller may do now: the roles its user holds and the
// permissions they (and, for an API key, the key) give. A token carries the
// roles of when it was issued; a grant is read at each call, so a demoted
// user or an edited role takes effect at once.
type Grant struct {
	Roles       []string
	Permissions []string
}

// Has reports whether the grant holds permission p.
func (g Grant) Has(p endpoint.Permission) bool {
	return slices.Contains(g.Permissions, string(p))
}

// Checker confirms that a caller's credential is live and says what it may
// do now. acc is the account of a verified token, whose session Check
// confirms (not ended, user enabled); for an API key (IsKey(tok)) acc is nil
// and Check finds the key's account. It returns the context the handler
// gets (which may carry records the check read, so that the handler of the
// same call does not read them again; else ctx), the account the handler
// sees, and its grant; ErrSessionEnded when the session or key is over.
type Checker interface {
	Check(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, Grant, error)
}

// ErrSessionEnded means the token is well signed but its session (or the API
// key) is over.
var ErrSessionEnded = errors.New("auth: session ended")

// KeyPrefix starts every API key, which is not a JWT: "ptk_<id>_<secret>".
const KeyPrefix = "ptk_"

// MetaKey is the account metadata naming the API key a call came with.
const MetaKey = "key"

// IsKey reports whether a bearer token is an API key.
func IsKey(tok string) bool { return strings.HasPrefix(tok, KeyPrefix) }

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

type grantKey struct{}

// GrantFromContext returns the grant the auth wrapper found for the call.
func GrantFromContext(ctx context.Context) Grant {
	g, _ := ctx.Value(grantKey{}).(Grant)
	return g
}

// Can reports whether the caller of this call holds permission p, for a
// handler whose endpoint is open to every signed-in caller but does more for
// some (another user's sessions).
func Can(ctx context.Context, p endpoint.Permission) bool {
	return GrantFromContext(ctx).Has(p)
}

// HandlerWrapper checks every request against the service's endpoint table:
// a public endpoint passes; any other needs a token in the metadata (a JWT,
// verified by a, or an API key) that checker confirms live, and, unless the
// endpoint is open to every signed-in caller, a grant holding its
// permission. An endpoint not in the table is refused. The account, its
// scopes the user's roles now, reaches handlers through
// auth.AccountFromContext, its grant through GrantFromContext.
func HandlerWrapper(a auth.Auth, table *endpoint.Table, checker Checker) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			ep, ok := table.Lookup(req.Endpoint())
			if !ok || req.Service() != table.Service {
				return merrors.Forbidden("auth.forbidden", "%s is not an endpoint of %s", req.Endpoint(), table.Service)
			}
			if ep.Access == endpoint.Public {
				return next(ctx, req, rsp)
			}
			tok := TokenFromContext(ctx)
			if tok == "" {
				return merrors.Unauthorized("auth.unauthenticated", "%s needs a token", req.Endpoint())
			}
			var acc *auth.Account
			if !IsKey(tok) {
				var err error
				acc, err = a.Inspect(tok)
				if errors.Is(err, ErrExpired) {
					return merrors.Unauthorized("auth.token_expired", "the token has expired")
				} else if err != nil {
					return merrors.Unauthorized("auth.invalid_token", "the token is not valid")
				}
			}
			ctx, acc, grant, err := checker.Check(ctx, tok, acc)
			if errors.Is(err, ErrSessionEnded) {
				return merrors.Unauthorized("auth.session_ended", "the session has ended")
			} else if err != nil {
				return err
			}
			acc.Scopes = grant.Roles
			if ep.Access != endpoint.SignedIn && !grant.Has(ep.Access) {
				return merrors.Forbidden("auth.forbidden", "%s needs the permission %s", req.Endpoint(), ep.Access)
			}
			ctx = context.WithValue(auth.ContextWithAccount(ctx, acc), grantKey{}, grant)
			return next(ctx, req, rsp)
		}
	}
}
