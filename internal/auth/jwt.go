// Package auth provides Portal's tokens: a go-micro auth.Auth that signs RS256
// JWTs bound to a session, the keys behind it, and the rules that say which
// RPC endpoints need which role. It knows nothing of gin or handlers.
package auth

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go-micro.dev/v4/auth"
)

// Metadata keys of an Account returned by Generate and Inspect.
const (
	MetaUsername  = "username"
	MetaSession   = "session"    // session id
	MetaSessionEx = "sessionExp" // session's absolute end, unix seconds
	MetaIssuedAt  = "issuedAt"   // unix seconds (Inspect only)
	MetaExpiresAt = "expireAt"   // unix seconds (Inspect only), the article's name
)

const (
	issuer     = "portal"
	typeAccess = "access"
	typeSecret = "secret"
	// secretLife bounds an account secret: it only carries an account from
	// Generate to Token, moments later.
	secretLife = time.Minute
)

// Sentinel errors. Inspect returns ErrExpired for a well-signed token past its
// expiry and auth.ErrInvalidToken for everything else.
var (
	ErrExpired    = errors.New("auth: token expired")
	ErrNoKey      = errors.New("auth: no private key: this process cannot mint tokens")
	ErrNoRefresh  = errors.New("auth: refresh tokens are not issued; renew through the session")
	ErrNoSession  = errors.New("auth: account has no session")
	ErrBadAccount = errors.New("auth: credentials do not match")
)

// claims is the token payload.
type claims struct {
	jwt.RegisteredClaims
	Type       string   `json:"typ"`
	Username   string   `json:"name,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Session    string   `json:"sid"`
	SessionExp int64    `json:"sxp"`
}

// JWT is a go-micro auth.Auth on RS256 JSON web tokens. A process holding only
// the public key can Inspect; Generate and Token need the private key.
//
// Unlike the go-micro jwt plugin it issues no refresh tokens (an access token
// can never renew itself), every token names a session whose absolute end it
// can never outlive, and tokens carry iat and a unique id.
type JWT struct {
	opts auth.Options
	priv *rsa.PrivateKey
	pub  *rsa.PublicKey
	now  func() time.Time
	// seen remembers the access tokens whose signature Inspect verified.
	seen verified
	// secretKey signs account secrets (HS256). A secret only carries an
	// account from Generate to Token in this process, so it needs no RSA
	// signature: one RSA signature per login (the access token's), not two.
	secretKey []byte
}

// NewJWT builds the auth from go-micro options; auth.PublicKey and
// auth.PrivateKey take base64-encoded PEM, as the go-micro jwt plugin does.
func NewJWT(opts ...auth.Option) (*JWT, error) {
	j := &JWT{now: time.Now, secretKey: make([]byte, 32)}
	if _, err := rand.Read(j.secretKey); err != nil {
		return nil, fmt.Errorf("auth: secret key: %w", err)
	}
	j.opts = auth.NewOptions(opts...)
	if err := j.loadKeys(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *JWT) loadKeys() error {
	if j.opts.PublicKey == "" {
		return errors.New("auth: a public key is required")
	}
	pub, err := ParsePublicKey(j.opts.PublicKey)
	if err != nil {
		return err
	}
	j.pub = pub
	j.priv = nil
	if j.opts.PrivateKey != "" {
		priv, err := ParsePrivateKey(j.opts.PrivateKey)
		if err != nil {
			return err
		}
		if !priv.PublicKey.Equal(pub) {
			return errors.New("auth: the private key does not match the public key")
		}
		j.priv = priv
	}
	return nil
}

// Init applies options. go-micro's Init has no error: a bad key keeps the old
// keys, and NewJWT is the place to catch it.
func (j *JWT) Init(opts ...auth.Option) {
	for _, o := range opts {
		o(&j.opts)
	}
	_ = j.loadKeys()
	j.seen.reset() // verified with keys that may be gone
}

// Options returns the options.
func (j *JWT) Options() auth.Options { return j.opts }

// String names the implementation.
func (j *JWT) String() string { return "portal-jwt" }

// CanMint reports whether this process holds the private key.
func (j *JWT) CanMint() bool { return j.priv != nil }

// Generate creates an account for a user's session. Its Secret is a short-lived
// signed credential for Token, good in this process only (each JWT draws its
// own secret key). Metadata must carry MetaSession and MetaSessionEx;
// auth.WithScopes gives the roles.
func (j *JWT) Generate(id string, opts ...auth.GenerateOption) (*auth.Account, error) {
	if j.priv == nil {
		return nil, ErrNoKey
	}
	o := auth.NewGenerateOptions(opts...)
	sid := o.Metadata[MetaSession]
	sxp, err := strconv.ParseInt(o.Metadata[MetaSessionEx], 10, 64)
	if sid == "" || err != nil {
		return nil, ErrNoSession
	}
	now := j.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: id, ID: uuid.NewString(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(secretLife)),
		},
		Type: typeSecret, Username: o.Metadata[MetaUsername], Roles: o.Scopes,
		Session: sid, SessionExp: sxp,
	}
	secret, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(j.secretKey)
	if err != nil {
		return nil, fmt.Errorf("auth: sign: %w", err)
	}
	return &auth.Account{
		ID: id, Type: o.Type, Issuer: issuer, Scopes: o.Scopes, Secret: secret,
		Metadata: map[string]string{MetaUsername: c.Username, MetaSession: sid, MetaSessionEx: o.Metadata[MetaSessionEx]},
	}, nil
}

// Token mints an access token from an account's credentials
// (auth.WithCredentials(acc.ID, acc.Secret)), living auth.WithExpiry but never
// past the session's end. There are no refresh tokens: auth.WithToken fails.
func (j *JWT) Token(opts ...auth.TokenOption) (*auth.Token, error) {
	if j.priv == nil {
		return nil, ErrNoKey
	}
	o := auth.NewTokenOptions(opts...)
	if o.RefreshToken != "" {
		return nil, ErrNoRefresh
	}
	cred, err := j.parse(o.Secret, typeSecret)
	if err != nil {
		return nil, err
	}
	if cred.Subject != o.ID {
		return nil, ErrBadAccount
	}
	now := j.now()
	exp := now.Add(o.Expiry)
	if end := time.Unix(cred.SessionExp, 0); exp.After(end) {
		exp = end
	}
	if !exp.After(now) {
		return nil, ErrExpired
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: cred.Subject, ID: uuid.NewString(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Type: typeAccess, Username: cred.Username, Roles: cred.Roles,
		Session: cred.Session, SessionExp: cred.SessionExp,
	}
	tok, err := j.sign(c)
	if err != nil {
		return nil, err
	}
	return &auth.Token{AccessToken: tok, Created: now, Expiry: exp}, nil
}

// Inspect verifies an access token and returns its account: ID the user id,
// Scopes the roles, Metadata the username, session, and times.
//
// A token's signature is verified once: the gateway and every service inspect
// the caller's token on each request, and an RSA verification and the claims'
// JSON decoding were most of what a request cost them. Tokens whose signature
// checked out are remembered (up to verifiedMax of them); each use still
// checks the times (expiry, issue), against the clock of that use.
func (j *JWT) Inspect(token string) (*auth.Account, error) {
	c, err := j.access(token)
	if err != nil {
		return nil, err
	}
	return &auth.Account{
		ID: c.Subject, Type: "user", Issuer: c.Issuer, Scopes: slices.Clone(c.Roles),
		Metadata: map[string]string{
			MetaUsername:  c.Username,
			MetaSession:   c.Session,
			MetaSessionEx: strconv.FormatInt(c.SessionExp, 10),
			MetaIssuedAt:  strconv.FormatInt(c.IssuedAt.Unix(), 10),
			MetaExpiresAt: strconv.FormatInt(c.ExpiresAt.Unix(), 10),
		},
	}, nil
}

// access returns the claims of a valid access token: remembered when its
// signature was verified before, else parsed and verified, and remembered.
// The times are checked as jwt's validator does (no leeway): expired from
// exp on, not valid before iat (or nbf).
func (j *JWT) access(token string) (*claims, error) {
	c, ok := j.seen.get(token)
	if !ok {
		c, err := j.parse(token, typeAccess)
		if err == nil {
			j.seen.put(token, c)
		}
		return c, err
	}
	now := j.now()
	switch {
	case !now.Before(c.ExpiresAt.Time):
		j.seen.drop(token)
		return nil, ErrExpired
	case now.Before(c.IssuedAt.Time), c.NotBefore != nil && now.Before(c.NotBefore.Time):
		return nil, auth.ErrInvalidToken
	}
	return c, nil
}

// verifiedMax bounds how many verified tokens a JWT remembers: about 1 KiB
// each. A full memo forgets an arbitrary one for each new one.
const verifiedMax = 4096

// verified maps access tokens whose signature checked out to their claims.
// The claims are never changed once stored.
type verified struct {
	mu sync.RWMutex
	m  map[string]*claims
}

func (v *verified) get(token string) (*claims, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c, ok := v.m[token]
	return c, ok
}

func (v *verified) put(token string, c *claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]*claims)
	}
	for k := range v.m {
		if len(v.m) < verifiedMax {
			break
		}
		delete(v.m, k)
	}
	// A copy: token may be part of a larger string (a header) that the
	// memo would otherwise keep alive.
	v.m[strings.Clone(token)] = c
}

func (v *verified) drop(token string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, token)
}

func (v *verified) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m = nil
}

func (v *verified) len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.m)
}

// maxTokenLen refuses absurd inputs before any parsing work.
const maxTokenLen = 8 << 10

// parse verifies a token of type typ: an access token's RS256 signature by
// the public key, a secret's HS256 one by this process's secret key.
func (j *JWT) parse(token, typ string) (*claims, error) {
	if token == "" || len(token) > maxTokenLen || !canonicalChars(token) {
		return nil, auth.ErrInvalidToken
	}
	method, key := jwt.SigningMethod(jwt.SigningMethodRS256), any(j.pub)
	if typ == typeSecret {
		method, key = jwt.SigningMethodHS256, j.secretKey
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil },
		// One token, one encoding: lax base64 would also accept the
		// signature with other unused trailing bits (and, below, with line
		// breaks), so a token could be altered and still pass.
		jwt.WithStrictDecoding(),
		jwt.WithValidMethods([]string{method.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(j.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired) && c.Type == typ:
		return nil, ErrExpired
	case err != nil:
		return nil, auth.ErrInvalidToken
	case c.Type != typ || c.Subject == "" || c.Session == "" || c.IssuedAt == nil:
		return nil, auth.ErrInvalidToken
	}
	return &c, nil
}

// canonicalChars reports whether s holds only the base64url alphabet and the
// dots between segments: Go's base64 decoders skip '\r' and '\n' even when
// strict.
func canonicalChars(s string) bool {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_', b == '.':
		default:
			return false
		}
	}
	return true
}

func (j *JWT) sign(c claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(j.priv)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// DeriveKey returns a 32-byte key for purpose, derived (HKDF-SHA256) from the
// private key: every process holding that key derives the same one, no
// other process can, and a change of keys changes it. Nil without the
// private key.
func (j *JWT) DeriveKey(purpose string) []byte {
	if j.priv == nil {
		return nil
	}
	k, err := hkdf.Key(sha256.New, x509.MarshalPKCS1PrivateKey(j.priv), nil, "portal "+purpose, 32)
	if err != nil {
		return nil // only for lengths HKDF cannot give; 32 it can
	}
	return k
}
