package sso

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client is a registered relying party.
type Client struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// SecretHash is the SHA-256 of the secret (a 256-bit random value, so a
	// fast hash is enough); empty for public clients.
	SecretHash   string   `json:"secret_hash,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	// PostLogoutRedirectURIs are where RP-initiated logout may return.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// BackchannelLogoutURI receives logout tokens when a session ends.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	Confidential         bool   `json:"confidential"`
	// FirstParty clients are not asked for consent.
	FirstParty bool     `json:"first_party"`
	Scopes     []string `json:"scopes"`
	// Permission, when set, limits the client to users holding it.
	Permission string    `json:"permission,omitempty"`
	Disabled   bool      `json:"disabled,omitempty"`
	Created    time.Time `json:"created"`
	// GrantsAfter is when the client was last disabled: grants made
	// before it stay ended when the client is enabled again.
	GrantsAfter time.Time `json:"grants_after,omitempty"`
}

// opClient is a Client as the op package sees it.
type opClient struct {
	c             *Client
	idTokenTTL    time.Duration
	allowInsecure bool
}

func (o opClient) GetID() string                    { return o.c.ID }
func (o opClient) RedirectURIs() []string           { return o.c.RedirectURIs }
func (o opClient) PostLogoutRedirectURIs() []string { return o.c.PostLogoutRedirectURIs }
func (o opClient) ApplicationType() op.ApplicationType {
	if o.c.Confidential {
		return op.ApplicationTypeWeb
	}
	return op.ApplicationTypeUserAgent
}
func (o opClient) AuthMethod() oidc.AuthMethod {
	if o.c.Confidential {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodNone
}
func (o opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (o opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

// LoginURL is Portal's step that signs the user in, or finds the browser's
// session, and then asks consent.
func (o opClient) LoginURL(id string) string           { return LoginPath + "?id=" + id }
func (o opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (o opClient) IDTokenLifetime() time.Duration      { return o.idTokenTTL }

// DevMode lets http:// redirect URIs through, only where the issuer itself
// is plain http (a local embedded Portal).
func (o opClient) DevMode() bool { return o.allowInsecure }
func (o opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (o opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows no scope beyond the standard ones.
func (o opClient) IsScopeAllowed(string) bool { return false }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims into the
// ID token itself.
func (o opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (o opClient) ClockSkew() time.Duration             { return 0 }

// allows reports whether the client may be given scope.
func (c *Client) allows(scope string) bool {
	return scope == oidc.ScopeOpenID || slices.Contains(c.Scopes, scope)
}

// authRequest is one authorization request, from /authorize to the code's
// exchange.
type authRequest struct {
	ID              string    `json:"id"`
	ClientID        string    `json:"client_id"`
	RedirectURI     string    `json:"redirect_uri"`
	State           string    `json:"state,omitempty"`
	Nonce           string    `json:"nonce,omitempty"`
	ResponseType    string    `json:"response_type"`
	ResponseMode    string    `json:"response_mode,omitempty"`
	Scopes          []string  `json:"scopes"`
	Challenge       string    `json:"challenge,omitempty"`
	ChallengeMethod string    `json:"challenge_method,omitempty"`
	Prompt          []string  `json:"prompt,omitempty"`
	MaxAge          *uint     `json:"max_age,omitempty"`
	Created         time.Time `json:"created"`
	// Set when the user has signed in and consented.
	UserID    string    `json:"user_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	AuthTime  time.Time `json:"auth_time,omitempty"`
	AMR       []string  `json:"amr,omitempty"`
	Completed bool      `json:"done,omitempty"`
}

func (a *authRequest) GetID() string          { return a.ID }
func (a *authRequest) GetACR() string         { return acrFor(a.AMR) }
func (a *authRequest) GetAMR() []string       { return a.AMR }
func (a *authRequest) GetAudience() []string  { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a *authRequest) GetClientID() string    { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.Challenge, Method: oidc.CodeChallengeMethod(a.ChallengeMethod)}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.ResponseType) }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.UserID }
func (a *authRequest) Done() bool                         { return a.Completed }

// acrFor names the assurance of a sign-in: "1" for one factor, "2" for two.
func acrFor(amr []string) string {
	if len(amr) > 1 || slices.Contains(amr, "hwk") {
		return "2"
	}
	return "1"
}

// grant is what a user gave a client in one Portal session: every token
// issued from it dies with it, and it dies with the session.
type grant struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	SessionID string    `json:"session_id"`
	Scopes    []string  `json:"scopes"`
	AuthTime  time.Time `json:"auth_time"`
	AMR       []string  `json:"amr,omitempty"`
	// Stamp is the user's Person.Stamp when the grant began.
	Stamp string `json:"stamp"`
	// Refresh is the hash of the one refresh token that may be used next.
	Refresh string    `json:"refresh,omitempty"`
	Created time.Time `json:"created"`
}

// refreshRequest is a grant as a refresh token presents it.
type refreshRequest struct {
	g      *grant
	scopes []string
	// token is the hash of the refresh token presented.
	token string
}

func (r *refreshRequest) GetAMR() []string            { return r.g.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.g.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.g.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.g.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.g.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

// accessToken is an issued access token's record; the token the client
// holds is its ID sealed by the op package.
type accessToken struct {
	ID       string    `json:"id"`
	GrantID  string    `json:"grant_id"`
	UserID   string    `json:"user_id"`
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Expires  time.Time `json:"expires"`
}

// randomID returns n random bytes, base64url.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is the stored form of a secret, code or refresh token.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
