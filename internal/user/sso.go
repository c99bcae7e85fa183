package user

import (
	"context"
	"errors"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/sso"
)

// SSOAccounts are the handler's sessions as the OpenID provider
// (internal/sso) needs them: a grant lives only as long as the Portal session
// it was made in, so logout, a password change, an ended session and a
// disabled or deleted user end it at once.
type SSOAccounts struct{ h *Handler }

// SSO returns the handler's sessions for the OpenID provider.
func (h *Handler) SSO() SSOAccounts { return SSOAccounts{h: h} }

// Live implements sso.Accounts.
func (a SSOAccounts) Live(ctx context.Context, userID, sessionID string) (sso.Person, error) {
	s, u, err := a.h.repo.SessionAndUser(ctx, sessionID, userID)
	if errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrNotFound) {
		return sso.Person{}, sso.ErrEnded
	} else if err != nil {
		return sso.Person{}, err
	}
	if s.UserID != userID || u.Disabled || !a.h.now().Before(s.ExpiresAt) {
		return sso.Person{}, sso.ErrEnded
	}
	return sso.Person{ID: u.ID, Username: u.Username}, nil
}

// Identify implements sso.Accounts: the caller's token, from the RPC
// metadata, verified, and its session live.
func (a SSOAccounts) Identify(ctx context.Context) (sso.SignIn, error) {
	tok := pauth.TokenFromContext(ctx)
	if tok == "" {
		return sso.SignIn{}, sso.ErrEnded
	}
	acc, err := a.h.auth.Inspect(tok)
	if err != nil {
		return sso.SignIn{}, sso.ErrEnded
	}
	s, u, err := a.h.repo.SessionAndUser(ctx, acc.Metadata[pauth.MetaSession], acc.ID)
	if err != nil {
		return sso.SignIn{}, sso.ErrEnded
	}
	if s.UserID != acc.ID || u.Disabled || !a.h.now().Before(s.ExpiresAt) {
		return sso.SignIn{}, sso.ErrEnded
	}
	return sso.SignIn{UserID: u.ID, SessionID: s.ID, AuthTime: s.CreatedAt, AMR: []string{"pwd"}}, nil
}
