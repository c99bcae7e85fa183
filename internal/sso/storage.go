package sso

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/kv"
)

// Store keys of the provider's records, beside the user service's own.
const (
	prefixClient  = "oidc/client/"
	prefixRequest = "oidc/req/"
	prefixCode    = "oidc/code/"
	prefixGrant   = "oidc/grant/"
	prefixRefresh = "oidc/rt/"
	prefixUsed    = "oidc/rt-used/"
	prefixAccess  = "oidc/at/"
)

// requestTTL bounds an authorization request, from /authorize to the code's
// exchange.
const requestTTL = 10 * time.Minute

// Person is what the provider tells clients about a user.
type Person struct {
	ID, Username, Name, Email string
	EmailVerified             bool
	// Stamp changes when the user's password does: a grant made before a
	// password change ends with it.
	Stamp string
}

// ErrEnded means a session (or its user) is over.
var ErrEnded = errors.New("sso: session ended")

// SignIn is the Portal session a request comes with.
type SignIn struct {
	UserID, SessionID string
	// AuthTime is when the user signed in; AMR how (pwd, otp, hwk).
	AuthTime time.Time
	AMR      []string
}

// Accounts are the user service's sessions, as the provider needs them.
type Accounts interface {
	// Live returns the user of a session that is still live, or ErrEnded.
	Live(ctx context.Context, userID, sessionID string) (Person, error)
	// Identify returns the live Portal session of the caller's token in
	// ctx (the RPC metadata), or ErrEnded when there is none.
	Identify(ctx context.Context) (SignIn, error)
	// EndSession ends a Portal session of the user (RP-initiated logout).
	EndSession(ctx context.Context, userID, sessionID string) error
	// Holds reports whether the user's roles grant permission now.
	Holds(ctx context.Context, userID, permission string) (bool, error)
}

// Storage is the op.Storage of Portal's provider: its records in the user
// service's store, its keys in a KeyRing, and every token checked against
// the Portal session it was issued in.
type Storage struct {
	st       store.Store
	kv       kv.Store
	keys     *KeyRing
	accounts Accounts
	opts     Options
	now      func() time.Time
	// p audits and counts what the storage does.
	p *Provider
}

var _ op.Storage = (*Storage)(nil)

type notFound struct{ error }

func (notFound) IsNotFound() {}

func (s *Storage) get(key string, v any) error {
	recs, err := s.st.Read(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return notFound{fmt.Errorf("sso: %s not found", strings.SplitN(key, "/", 3)[1])}
	} else if err != nil {
		return fmt.Errorf("sso: read: %w", err)
	}
	return json.Unmarshal(recs[0].Value, v)
}

func (s *Storage) put(key string, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := s.st.Write(&store.Record{Key: key, Value: b, Expiry: ttl}); err != nil {
		return fmt.Errorf("sso: write: %w", err)
	}
	return nil
}

// Client returns a registered client.
func (s *Storage) Client(ctx context.Context, id string) (*Client, error) {
	var c Client
	if err := s.get(prefixClient+id, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// CreateAuthRequest implements op.Storage. Public clients must use PKCE
// with S256; scopes are cut to those the client was registered with.
func (s *Storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, err := s.Client(ctx, r.ClientID)
	if err != nil || c.Disabled {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown or disabled client")
	}
	if !c.Confidential && (r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("public clients must send a PKCE code_challenge with method S256")
	}
	if r.CodeChallenge != "" && r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	var scopes []string
	for _, sc := range r.Scopes {
		if c.allows(sc) && !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	a := &authRequest{
		ID: randomID(24), ClientID: c.ID, RedirectURI: r.RedirectURI, State: r.State, Nonce: r.Nonce,
		ResponseType: string(r.ResponseType), ResponseMode: string(r.ResponseMode), Scopes: scopes,
		Challenge: r.CodeChallenge, ChallengeMethod: string(r.CodeChallengeMethod),
		Prompt: r.Prompt, MaxAge: r.MaxAge, Created: s.now().UTC(),
	}
	return a, s.put(prefixRequest+a.ID, a, requestTTL)
}

// AuthRequestByID implements op.Storage.
func (s *Storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.authRequest(id)
}

func (s *Storage) authRequest(id string) (*authRequest, error) {
	var a authRequest
	if err := s.get(prefixRequest+id, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// AuthRequestByCode implements op.Storage.
func (s *Storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	var id string
	if err := s.get(prefixCode+hashSecret(code), &id); err != nil {
		return nil, err
	}
	return s.authRequest(id)
}

// SaveAuthCode implements op.Storage; the code is kept hashed.
func (s *Storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.put(prefixCode+hashSecret(code), id, requestTTL)
}

// DeleteAuthRequest implements op.Storage: a code is used once.
func (s *Storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.st.Delete(prefixRequest + id)
}

// CreateAccessToken implements op.Storage.
func (s *Storage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	g, err := s.grantFor(ctx, r)
	if err != nil {
		return "", time.Time{}, err
	}
	return s.issueAccess(g, r.GetScopes())
}

func (s *Storage) issueAccess(g *grant, scopes []string) (string, time.Time, error) {
	exp := s.now().Add(s.opts.AccessTokenTTL).UTC()
	at := accessToken{ID: randomID(24), GrantID: g.ID, UserID: g.UserID, ClientID: g.ClientID, Scopes: scopes, Expires: exp}
	return at.ID, exp, s.put(prefixAccess+at.ID, at, s.opts.AccessTokenTTL)
}

// grantFor returns the grant a token request continues: the refresh
// token's, or a new one for a signed-in authorization request.
func (s *Storage) grantFor(ctx context.Context, r op.TokenRequest) (*grant, error) {
	switch r := r.(type) {
	case *refreshRequest:
		return r.g, nil
	case *authRequest:
		if !r.Completed || r.SessionID == "" {
			return nil, oidc.ErrInvalidGrant().WithDescription("the request was not signed in")
		}
		p, err := s.accounts.Live(ctx, r.UserID, r.SessionID)
		if err != nil {
			return nil, oidc.ErrInvalidGrant().WithDescription("the session has ended")
		}
		g := &grant{ID: randomID(18), UserID: r.UserID, ClientID: r.ClientID, SessionID: r.SessionID,
			Scopes: r.Scopes, AuthTime: r.AuthTime, AMR: r.AMR, Stamp: p.Stamp, Created: s.now().UTC()}
		if err := s.put(prefixSession+g.SessionID+"/"+g.ID, g.UserID, s.opts.GrantTTL); err != nil {
			return nil, err
		}
		if err := s.putGrant(g); err != nil {
			return nil, err
		}
		s.p.audit(ctx, audit.KindOIDCGrant, g.UserID, g.ClientID, "scopes: "+strings.Join(g.Scopes, " "))
		return g, nil
	default:
		return nil, oidc.ErrUnsupportedGrantType()
	}
}

func (s *Storage) putGrant(g *grant) error {
	return s.put(prefixGrant+g.ID, g, s.opts.GrantTTL)
}

// CreateAccessAndRefreshTokens implements op.Storage: the refresh token is
// rotated on every use (currentRefreshToken's hash stops being the grant's).
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	g, err := s.grantFor(ctx, r)
	if err != nil {
		return "", "", time.Time{}, err
	}
	refresh := g.ID + "." + randomID(32)
	g.Refresh = hashSecret(refresh)
	if err := s.put(prefixRefresh+g.Refresh, g.ID, s.opts.GrantTTL); err != nil {
		return "", "", time.Time{}, err
	}
	if err := s.putGrant(g); err != nil {
		return "", "", time.Time{}, err
	}
	id, exp, err := s.issueAccess(g, r.GetScopes())
	if err != nil {
		return "", "", time.Time{}, err
	}
	event := "issued"
	if current != "" {
		event = "refreshed"
	}
	s.p.metrics.inc(g.ClientID, event)
	s.p.audit(ctx, audit.KindOIDCToken, g.UserID, g.ClientID, event)
	return id, refresh, exp, nil
}

// TokenRequestByRefreshToken implements op.Storage. A refresh token is
// good once: presenting one that was already used (a copy, stolen or
// replayed) ends the whole grant, and with it every token issued from it. A
// grant whose session, user or client has ended refreshes nothing.
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	h := hashSecret(token)
	var gid string
	if err := s.get(prefixRefresh+h, &gid); err != nil {
		return nil, op.ErrInvalidRefreshToken
	}
	g, err := s.liveGrant(ctx, gid)
	if err != nil {
		return nil, op.ErrInvalidRefreshToken
	}
	first, err := s.useOnce(h)
	if err != nil {
		return nil, err
	}
	if !first || g.Refresh != h {
		s.endGrant(g.ID)
		s.p.metrics.inc(g.ClientID, "reuse")
		s.p.audit(ctx, audit.KindOIDCRevoke, g.UserID, g.ClientID, "a used refresh token was presented again: the grant is ended")
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{g: g, scopes: g.Scopes, token: h}, nil
}

// useOnce marks refresh token h used and reports whether this was its first
// use, atomically across every instance sharing the store.
func (s *Storage) useOnce(h string) (bool, error) {
	won, err := s.kv.Apply(kv.PutOp(prefixUsed+h, []byte{1}, s.opts.GrantTTL).When(kv.Absent))
	if err != nil {
		return false, fmt.Errorf("sso: claim refresh token: %w", err)
	}
	return won, nil
}

// liveGrant returns a grant whose session, user and client are all live.
func (s *Storage) liveGrant(ctx context.Context, id string) (*grant, error) {
	var g grant
	if err := s.get(prefixGrant+id, &g); err != nil {
		return nil, err
	}
	c, err := s.Client(ctx, g.ClientID)
	if err != nil || c.Disabled || g.Created.Before(c.GrantsAfter) {
		return nil, ErrEnded
	}
	p, err := s.accounts.Live(ctx, g.UserID, g.SessionID)
	if err != nil {
		return nil, err
	}
	if p.Stamp != g.Stamp {
		return nil, ErrEnded // the password changed since
	}
	if ok, err := s.allowed(ctx, c, g.UserID); err != nil || !ok {
		return nil, ErrEnded // the user no longer holds the client's permission
	}
	return &g, nil
}

// allowed reports whether the user may use client c: c's permission, if it
// names one, is held now.
func (s *Storage) allowed(ctx context.Context, c *Client, userID string) (bool, error) {
	if c.Permission == "" {
		return true, nil
	}
	return s.accounts.Holds(ctx, userID, c.Permission)
}

// endGrant ends a grant: its access and refresh tokens fail from now on.
func (s *Storage) endGrant(id string) { _ = s.st.Delete(prefixGrant + id) }

// liveAccess returns an access token's record and its user, if the token,
// its grant, session, user and client are all live.
func (s *Storage) liveAccess(ctx context.Context, id string) (*accessToken, Person, error) {
	var at accessToken
	if err := s.get(prefixAccess+id, &at); err != nil {
		return nil, Person{}, err
	}
	if !s.now().Before(at.Expires) {
		return nil, Person{}, ErrEnded
	}
	g, err := s.liveGrant(ctx, at.GrantID)
	if err != nil {
		return nil, Person{}, err
	}
	p, err := s.accounts.Live(ctx, g.UserID, g.SessionID)
	return &at, p, err
}

// TerminateSession implements op.Storage: ends the user's grants to the
// client (RP-initiated logout without a session hint).
func (s *Storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	keys, err := s.st.List(store.ListPrefix(prefixGrant))
	if err != nil {
		return err
	}
	for _, k := range keys {
		var g grant
		if s.get(k, &g) == nil && g.UserID == userID && g.ClientID == clientID {
			s.endGrant(g.ID)
		}
	}
	return nil
}

// RevokeToken implements op.Storage (RFC 7009): a refresh token ends its
// grant; an access token ends itself. Another client's token is left alone.
func (s *Storage) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	var at accessToken
	if s.get(prefixAccess+token, &at) == nil {
		if at.ClientID == clientID {
			_ = s.st.Delete(prefixAccess + token)
			s.p.metrics.inc(clientID, "revoked")
			s.p.audit(ctx, audit.KindOIDCRevoke, at.UserID, clientID, "access token revoked by the application")
		}
		return nil
	}
	// The op package hands over a refresh token as GetRefreshTokenInfo's
	// token id (already its hash) or as itself.
	var gid string
	if s.get(prefixRefresh+token, &gid) == nil || s.get(prefixRefresh+hashSecret(token), &gid) == nil {
		var g grant
		if s.get(prefixGrant+gid, &g) == nil && g.ClientID == clientID {
			s.endGrant(gid)
			s.p.metrics.inc(clientID, "revoked")
			s.p.audit(ctx, audit.KindOIDCRevoke, g.UserID, clientID, "refresh token revoked by the application: the grant is ended")
		}
	}
	return nil
}

// GetRefreshTokenInfo implements op.Storage.
func (s *Storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	var gid string
	if err := s.get(prefixRefresh+hashSecret(token), &gid); err != nil {
		return "", "", op.ErrInvalidRefreshToken
	}
	var g grant
	if err := s.get(prefixGrant+gid, &g); err != nil || g.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return g.UserID, hashSecret(token), nil
}

// SigningKey implements op.Storage.
func (s *Storage) SigningKey(ctx context.Context) (op.SigningKey, error) { return s.keys.Current(ctx) }

// SignatureAlgorithms implements op.Storage.
func (s *Storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet implements op.Storage: the JWKS.
func (s *Storage) KeySet(ctx context.Context) ([]op.Key, error) { return s.keys.Published(ctx) }

// GetClientByClientID implements op.Storage; a disabled client is unknown.
func (s *Storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, notFound{errors.New("sso: client disabled")}
	}
	return opClient{c: c, idTokenTTL: s.opts.IDTokenTTL, allowInsecure: s.opts.Insecure}, nil
}

// AuthorizeClientIDSecret implements op.Storage.
func (s *Storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.Client(ctx, id)
	if err != nil || c.Disabled || c.SecretHash == "" ||
		subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(hashSecret(secret))) != 1 {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	return nil
}

// SetUserinfoFromScopes implements op.Storage: the claims the scopes allow.
func (s *Storage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	return nil // SetUserinfoFromRequest fills them, from the request's session.
}

// SetUserinfoFromRequest implements op.CanSetUserinfoFromRequest: the ID
// token's claims, for the request's live session.
func (s *Storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	var uid, sid string
	switch r := r.(type) {
	case *authRequest:
		uid, sid = r.UserID, r.SessionID
	case *refreshRequest:
		uid, sid = r.g.UserID, r.g.SessionID
		// The op package takes acr only from an authorization request.
		info.AppendClaims("acr", acrFor(r.g.AMR))
	default:
		return oidc.ErrServerError()
	}
	p, err := s.accounts.Live(ctx, uid, sid)
	if err != nil {
		return oidc.ErrInvalidGrant().WithDescription("the session has ended")
	}
	fill(info, p, scopes)
	info.AppendClaims("sid", sid)
	return nil
}

// fill sets the claims of p that scopes allow.
func fill(info *oidc.UserInfo, p Person, scopes []string) {
	info.Subject = p.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.Name = p.Name
			if info.Name == "" {
				info.Name = p.Username
			}
			info.PreferredUsername = p.Username
		case oidc.ScopeEmail:
			if p.Email != "" { // no address, no email claims
				info.Email = p.Email
				info.EmailVerified = oidc.Bool(p.EmailVerified)
				if !p.EmailVerified {
					// The field's omitempty drops false: say it.
					info.AppendClaims("email_verified", false)
				}
			}
		}
	}
}

// SetUserinfoFromToken implements op.Storage: the userinfo endpoint, for a
// live access token only.
func (s *Storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	at, p, err := s.liveAccess(ctx, tokenID)
	if err != nil || at.UserID != subject {
		return oidc.ErrAccessDenied().WithDescription("the token is not active")
	}
	fill(info, p, at.Scopes)
	return nil
}

// SetIntrospectionFromToken implements op.Storage (RFC 7662): active only
// while the token, its grant, session, user and client all are.
func (s *Storage) SetIntrospectionFromToken(ctx context.Context, r *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	at, p, err := s.liveAccess(ctx, tokenID)
	if err != nil || at.UserID != subject {
		return oidc.ErrInvalidRequest().WithDescription("the token is not active")
	}
	info := new(oidc.UserInfo)
	fill(info, p, at.Scopes)
	r.SetUserInfo(info)
	r.Scope = at.Scopes
	r.ClientID = at.ClientID
	r.Audience = []string{at.ClientID}
	r.Expiration = oidc.FromTime(at.Expires)
	r.Active = true
	return nil
}

// GetPrivateClaimsFromScopes implements op.Storage: none.
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest implements op.CanGetPrivateClaimsFromRequest:
// the Portal session as sid.
func (s *Storage) GetPrivateClaimsFromRequest(ctx context.Context, r op.TokenRequest, _ []string) (map[string]any, error) {
	switch r := r.(type) {
	case *authRequest:
		return map[string]any{"sid": r.SessionID}, nil
	case *refreshRequest:
		return map[string]any{"sid": r.g.SessionID}, nil
	}
	return nil, nil
}

// GetKeyByIDAndClientID implements op.Storage: JWT client assertions are
// not supported.
func (s *Storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrUnauthorizedClient()
}

// ValidateJWTProfileScopes implements op.Storage: JWT profile grants are
// not supported.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

// Health implements op.Storage.
func (s *Storage) Health(ctx context.Context) error {
	if _, err := s.st.Read("ping"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}
