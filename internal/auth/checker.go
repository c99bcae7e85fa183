package auth

import (
	"context"
	"net/http"

	"go-micro.dev/v4/auth"
	merrors "go-micro.dev/v4/errors"

	userpb "github.com/portal-go/portal/proto/user"
)

// UserChecker is the Checker of a service other than user (system, the
// supervisor's runtime): it asks the user service, which owns sessions, API
// keys and roles, with the caller's own token (in ctx's metadata). The answer
// is the user's roles and permissions now, not those of when the token was
// issued, so a role edit applies here as soon as the user service has it.
// Nothing is cached: every call asks.
func UserChecker(users userpb.UserService) Checker { return userChecker{users} }

type userChecker struct{ users userpb.UserService }

func (c userChecker) Check(ctx context.Context, tok string, acc *auth.Account) (context.Context, *auth.Account, Grant, error) {
	info, err := c.users.Info(ctx, &userpb.InfoRequest{})
	if e := merrors.FromError(err); err != nil && e.Code == http.StatusUnauthorized {
		return ctx, nil, Grant{}, ErrSessionEnded
	} else if err != nil {
		return ctx, nil, Grant{}, merrors.New("auth.unavailable", "user service: "+e.Detail, http.StatusServiceUnavailable)
	}
	if acc == nil { // an API key: the user service named its owner
		acc = &auth.Account{ID: info.Id, Type: "key", Metadata: map[string]string{MetaUsername: info.Username, MetaKey: info.KeyId}}
	}
	return ctx, acc, Grant{Roles: info.Roles, Permissions: info.Permissions}, nil
}
