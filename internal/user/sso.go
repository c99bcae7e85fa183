package user

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/portal-go/portal/internal/audit"
	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/endpoint"
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
	return sso.Person{ID: u.ID, Username: u.Username, Stamp: stamp(u)}, nil
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
	amr := s.AMR
	if len(amr) == 0 { // a session opened before sessions recorded it
		amr = []string{"pwd"}
	}
	return sso.SignIn{UserID: u.ID, SessionID: s.ID, AuthTime: s.CreatedAt, AMR: amr}, nil
}

// EndSession implements sso.Accounts: RP-initiated logout ends the Portal
// session, as a logout would, and is audited as one.
func (a SSOAccounts) EndSession(ctx context.Context, userID, sessionID string) error {
	if err := a.h.endSession(ctx, userID, sessionID); err != nil {
		return err
	}
	a.h.publishAudit(ctx, audit.Entry{Kind: audit.KindLogout, ActorID: userID, SubjectID: userID, Detail: "logout requested by an application (OpenID RP-initiated logout)"})
	return nil
}

// Holds implements sso.Accounts: whether the user's roles give permission
// under this instance's role definitions now.
func (a SSOAccounts) Holds(ctx context.Context, userID, permission string) (bool, error) {
	u, err := a.h.repo.Get(ctx, userID)
	if err != nil {
		return false, err
	}
	return a.h.grant(u.Roles).Has(endpoint.Permission(permission)), nil
}

// stamp is a short digest of the user's password hash: it changes with the
// password, so grants made before a password change end with it.
func stamp(u *User) string {
	h := sha256.Sum256([]byte(u.PasswordHash))
	return hex.EncodeToString(h[:8])
}
