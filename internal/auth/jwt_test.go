package auth

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go-micro.dev/v4/auth"
)

// RSA key generation is slow (and slower under -race): two pairs per test
// binary, shared by every test.
var (
	keysOnce  sync.Once
	keysErr   error
	testPair  pemPair // the pair the JWT under test uses
	otherPair pemPair // an unrelated pair
)

type pemPair struct{ priv, pub []byte }

func (p pemPair) b64() (priv, pub string) {
	return base64.StdEncoding.EncodeToString(p.priv), base64.StdEncoding.EncodeToString(p.pub)
}

func (p pemPair) rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := ParsePrivateKey(string(p.priv))
	if err != nil {
		t.Fatalf("parse test key: %v", err)
	}
	return k
}

func keyPairs(t testing.TB) (pemPair, pemPair) {
	t.Helper()
	keysOnce.Do(func() {
		var a, b pemPair
		if a.priv, a.pub, keysErr = GenerateKeyPair(); keysErr != nil {
			return
		}
		if b.priv, b.pub, keysErr = GenerateKeyPair(); keysErr != nil {
			return
		}
		testPair, otherPair = a, b
	})
	if keysErr != nil {
		t.Fatalf("GenerateKeyPair: %v", keysErr)
	}
	return testPair, otherPair
}

// baseTime is a whole second: JWT times have one-second precision.
var baseTime = time.Unix(1_700_000_000, 0)

// clock is a settable time source for JWT.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// newTestJWT returns a minting JWT on the shared test keys, whose clock starts
// at baseTime.
func newTestJWT(t testing.TB) (*JWT, *clock) {
	t.Helper()
	pair, _ := keyPairs(t)
	return newJWTOn(t, pair)
}

func newJWTOn(t testing.TB, pair pemPair) (*JWT, *clock) {
	t.Helper()
	priv, pub := pair.b64()
	j, err := NewJWT(auth.PublicKey(pub), auth.PrivateKey(priv))
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	c := &clock{t: baseTime}
	j.now = c.Now
	return j, c
}

type mintOpts struct {
	id         string
	username   string
	roles      []string
	session    string
	sessionEnd time.Time
	expiry     time.Duration
}

func defaultMint() mintOpts {
	return mintOpts{
		id: "user-1", username: "alice", roles: []string{RoleUser}, session: "sess-1",
		sessionEnd: baseTime.Add(24 * time.Hour), expiry: 15 * time.Minute,
	}
}

func generate(t testing.TB, j *JWT, o mintOpts) *auth.Account {
	t.Helper()
	acc, err := j.Generate(o.id, auth.WithType("user"), auth.WithScopes(o.roles...), auth.WithMetadata(map[string]string{
		MetaUsername:  o.username,
		MetaSession:   o.session,
		MetaSessionEx: strconv.FormatInt(o.sessionEnd.Unix(), 10),
	}))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return acc
}

// mint returns the account secret and an access token for o.
func mint(t testing.TB, j *JWT, o mintOpts) (*auth.Account, *auth.Token) {
	t.Helper()
	acc := generate(t, j, o)
	tok, err := j.Token(auth.WithCredentials(acc.ID, acc.Secret), auth.WithExpiry(o.expiry))
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return acc, tok
}

// accessClaims are the claims of a valid access token at baseTime, for tests
// that sign hand-made tokens.
func accessClaims() claims {
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: "user-1", ID: "jti-1",
			IssuedAt:  jwt.NewNumericDate(baseTime),
			ExpiresAt: jwt.NewNumericDate(baseTime.Add(15 * time.Minute)),
		},
		Type: typeAccess, Username: "alice", Roles: []string{RoleUser},
		Session: "sess-1", SessionExp: baseTime.Add(24 * time.Hour).Unix(),
	}
}

func signWith(t testing.TB, m jwt.SigningMethod, key any, c claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

func TestGenerateTokenInspectRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		roles []string
	}{
		{"user", []string{RoleUser}},
		{"admin", []string{RoleAdmin, RoleUser}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := newTestJWT(t)
			o := defaultMint()
			o.roles = tc.roles
			acc := generate(t, j, o)
			if acc.ID != o.id || acc.Secret == "" || !reflect.DeepEqual(acc.Scopes, tc.roles) {
				t.Fatalf("Generate account = %+v", acc)
			}
			if acc.Metadata[MetaSession] != o.session || acc.Metadata[MetaUsername] != o.username {
				t.Errorf("Generate metadata = %v", acc.Metadata)
			}
			tok, err := j.Token(auth.WithCredentials(acc.ID, acc.Secret), auth.WithExpiry(o.expiry))
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if !tok.Created.Equal(baseTime) || !tok.Expiry.Equal(baseTime.Add(o.expiry)) {
				t.Errorf("token created %v expiry %v, want %v and %v", tok.Created, tok.Expiry, baseTime, baseTime.Add(o.expiry))
			}
			got, err := j.Inspect(tok.AccessToken)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if got.ID != o.id || got.Issuer != issuer || got.Type != "user" || !reflect.DeepEqual(got.Scopes, tc.roles) {
				t.Errorf("Inspect account = %+v", got)
			}
			want := map[string]string{
				MetaUsername:  o.username,
				MetaSession:   o.session,
				MetaSessionEx: strconv.FormatInt(o.sessionEnd.Unix(), 10),
				MetaIssuedAt:  strconv.FormatInt(baseTime.Unix(), 10),
				MetaExpiresAt: strconv.FormatInt(baseTime.Add(o.expiry).Unix(), 10),
			}
			if !reflect.DeepEqual(got.Metadata, want) {
				t.Errorf("Inspect metadata = %v, want %v", got.Metadata, want)
			}
			// Two tokens for the same account are distinct (unique jti).
			tok2, err := j.Token(auth.WithCredentials(acc.ID, acc.Secret), auth.WithExpiry(o.expiry))
			if err != nil {
				t.Fatalf("second Token: %v", err)
			}
			if tok2.AccessToken == tok.AccessToken {
				t.Errorf("two tokens are identical")
			}
		})
	}
}

func TestTokenNeverOutlivesSession(t *testing.T) {
	tests := []struct {
		name       string
		sessionEnd time.Duration // from baseTime
		expiry     time.Duration
		wantExpiry time.Duration // from baseTime
	}{
		{"expiry well inside the session", 24 * time.Hour, 15 * time.Minute, 15 * time.Minute},
		{"long expiry cut at the session end", 10 * time.Minute, 365 * 24 * time.Hour, 10 * time.Minute},
		{"expiry exactly at the session end", 10 * time.Minute, 10 * time.Minute, 10 * time.Minute},
		{"session ends one second from now", time.Second, time.Hour, time.Second},
		{"default expiry (a minute) is kept", time.Hour, 0, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := newTestJWT(t)
			o := defaultMint()
			o.sessionEnd = baseTime.Add(tc.sessionEnd)
			o.expiry = tc.expiry
			_, tok := mint(t, j, o)
			want := baseTime.Add(tc.wantExpiry)
			if !tok.Expiry.Equal(want) {
				t.Errorf("token expiry = %v, want %v", tok.Expiry, want)
			}
			acc, err := j.Inspect(tok.AccessToken)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if got := acc.Metadata[MetaExpiresAt]; got != strconv.FormatInt(want.Unix(), 10) {
				t.Errorf("expireAt = %s, want %d", got, want.Unix())
			}
		})
	}
}

func TestTokenRefused(t *testing.T) {
	tests := []struct {
		name    string
		mint    func(o *mintOpts)
		advance time.Duration // clock moves between Generate and Token
		opts    func(t *testing.T, acc *auth.Account, j *JWT) []auth.TokenOption
		want    error
	}{
		{
			name: "session already ended",
			mint: func(o *mintOpts) { o.sessionEnd = baseTime.Add(-time.Second) },
			want: ErrExpired,
		},
		{
			name: "session ends right now",
			mint: func(o *mintOpts) { o.sessionEnd = baseTime },
			want: ErrExpired,
		},
		{
			name: "refresh token",
			opts: func(_ *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithCredentials(acc.ID, acc.Secret), auth.WithToken("some-refresh-token")}
			},
			want: ErrNoRefresh,
		},
		{
			name: "refresh token without credentials",
			opts: func(*testing.T, *auth.Account, *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithToken("some-refresh-token")}
			},
			want: ErrNoRefresh,
		},
		{
			name: "wrong id for the secret",
			opts: func(_ *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithCredentials("user-2", acc.Secret)}
			},
			want: ErrBadAccount,
		},
		{
			name: "empty id",
			opts: func(_ *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithCredentials("", acc.Secret)}
			},
			want: ErrBadAccount,
		},
		{
			name: "access token as the secret",
			opts: func(t *testing.T, acc *auth.Account, j *JWT) []auth.TokenOption {
				t.Helper()
				tok, err := j.Token(auth.WithCredentials(acc.ID, acc.Secret))
				if err != nil {
					t.Fatalf("Token: %v", err)
				}
				return []auth.TokenOption{auth.WithCredentials(acc.ID, tok.AccessToken)}
			},
			want: auth.ErrInvalidToken,
		},
		{
			name: "secret of another process with the same keys",
			opts: func(t *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				t.Helper()
				other, _ := newTestJWT(t)
				return []auth.TokenOption{auth.WithCredentials(acc.ID, generate(t, other, defaultMint()).Secret)}
			},
			want: auth.ErrInvalidToken,
		},
		{
			name: "no secret",
			opts: func(_ *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithCredentials(acc.ID, "")}
			},
			want: auth.ErrInvalidToken,
		},
		{
			name: "garbage secret",
			opts: func(_ *testing.T, acc *auth.Account, _ *JWT) []auth.TokenOption {
				return []auth.TokenOption{auth.WithCredentials(acc.ID, "not.a.secret")}
			},
			want: auth.ErrInvalidToken,
		},
		{
			name:    "secret past its minute",
			advance: secretLife,
			want:    ErrExpired,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, clk := newTestJWT(t)
			o := defaultMint()
			if tc.mint != nil {
				tc.mint(&o)
			}
			acc := generate(t, j, o)
			clk.Set(baseTime.Add(tc.advance))
			opts := []auth.TokenOption{auth.WithCredentials(acc.ID, acc.Secret), auth.WithExpiry(time.Hour)}
			if tc.opts != nil {
				opts = tc.opts(t, acc, j)
			}
			tok, err := j.Token(opts...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Token error = %v, want %v", err, tc.want)
			}
			if tok != nil {
				t.Errorf("Token returned a token with an error: %+v", tok)
			}
		})
	}
}

func TestGenerateNeedsSession(t *testing.T) {
	tests := []struct {
		name string
		meta map[string]string
	}{
		{"no metadata", nil},
		{"no session id", map[string]string{MetaSessionEx: "1700000000"}},
		{"no session end", map[string]string{MetaSession: "s"}},
		{"session end not a number", map[string]string{MetaSession: "s", MetaSessionEx: "tomorrow"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, _ := newTestJWT(t)
			acc, err := j.Generate("user-1", auth.WithMetadata(tc.meta))
			if !errors.Is(err, ErrNoSession) || acc != nil {
				t.Fatalf("Generate = %v, %v; want ErrNoSession", acc, err)
			}
		})
	}
}

// tamper returns tok with its payload replaced by edit(payload), the header
// and signature kept.
func tamper(t testing.TB, tok string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("unmarshal payload: %v", err)
	}
	edit(m)
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal payload: %v", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}

// badTokens are inputs Inspect must refuse with auth.ErrInvalidToken. They
// are built from a JWT on the test keys with its clock at baseTime.
// pair is j's key pair, other an unrelated one.
func badTokens(t testing.TB, j *JWT, pair, other pemPair) map[string]string {
	t.Helper()
	acc, tok := mint(t, j, defaultMint())
	good := tok.AccessToken
	parts := strings.Split(good, ".")
	sig := parts[2]

	o2 := defaultMint()
	o2.roles = []string{RoleAdmin}
	_, tok2 := mint(t, j, o2)

	signed := func(edit func(*claims)) string {
		c := accessClaims()
		edit(&c)
		s, err := j.sign(c)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		return s
	}
	// The last character of a 256-byte signature carries 2 bits and 4
	// unused ones: the same bits with other unused bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	sibling := alphabet[last^0x1] // flips an unused low bit
	if len(sig) != 342 {
		t.Fatalf("signature is %d characters, the test expects 342", len(sig))
	}

	return map[string]string{
		"tampered payload (roles)": tamper(t, good, func(m map[string]any) { m["roles"] = []string{RoleAdmin} }),
		"tampered payload (exp)": tamper(t, good, func(m map[string]any) {
			m["exp"] = baseTime.Add(100 * 24 * time.Hour).Unix()
		}),
		"signature of another token":         parts[0] + "." + parts[1] + "." + strings.Split(tok2.AccessToken, ".")[2],
		"signature with a flipped character": parts[0] + "." + parts[1] + "." + flip(sig, len(sig)/2),
		"signature non-canonical base64":     parts[0] + "." + parts[1] + "." + sig[:len(sig)-1] + string(sibling),
		"signature with a newline":           parts[0] + "." + parts[1] + "." + sig[:100] + "\n" + sig[100:],
		"signature with padding":             good + "==",
		"no signature":                       parts[0] + "." + parts[1] + ".",
		"alg none":                           signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, accessClaims()),
		"alg none, hand-made": base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
			parts[1] + ".",
		"HS256 keyed with the public key PEM": signWith(t, jwt.SigningMethodHS256, pair.pub, accessClaims()),
		"HS256 keyed with the base64 public key": signWith(t, jwt.SigningMethodHS256,
			[]byte(base64.StdEncoding.EncodeToString(pair.pub)), accessClaims()),
		"RS512 with our key":      signWith(t, jwt.SigningMethodRS512, pair.rsaKey(t), accessClaims()),
		"PS256 with our key":      signWith(t, jwt.SigningMethodPS256, pair.rsaKey(t), accessClaims()),
		"RS256 with another key":  signWith(t, jwt.SigningMethodRS256, other.rsaKey(t), accessClaims()),
		"garbage":                 "this is not a token",
		"two parts":               "a.b",
		"three junk parts":        "a.b.c",
		"four parts":              "a.b.c.d",
		"valid token plus a part": good + ".x",
		"empty":                   "",
		"dots":                    "..",
		"over 8 KiB of junk":      strings.Repeat("a", maxTokenLen+1),
		"validly signed but over 8 KiB": signed(func(c *claims) {
			c.Username = strings.Repeat("x", maxTokenLen)
		}),
		"missing sid":             signed(func(c *claims) { c.Session = "" }),
		"missing sub":             signed(func(c *claims) { c.Subject = "" }),
		"missing exp":             signed(func(c *claims) { c.ExpiresAt = nil }),
		"missing iat":             signed(func(c *claims) { c.IssuedAt = nil }),
		"iat in the future":       signed(func(c *claims) { c.IssuedAt = jwt.NewNumericDate(baseTime.Add(time.Minute)) }),
		"wrong issuer":            signed(func(c *claims) { c.Issuer = "someone-else" }),
		"no issuer":               signed(func(c *claims) { c.Issuer = "" }),
		"no type":                 signed(func(c *claims) { c.Type = "" }),
		"unknown type":            signed(func(c *claims) { c.Type = "refresh" }),
		"secret given to Inspect": acc.Secret,
		"bearer prefix kept":      "Bearer " + good,
		"leading space":           " " + good,
	}
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestInspectRefusesInvalidTokens(t *testing.T) {
	j, _ := newTestJWT(t)
	pair, other := keyPairs(t)
	for name, tok := range badTokens(t, j, pair, other) {
		t.Run(name, func(t *testing.T) {
			acc, err := j.Inspect(tok)
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Inspect error = %v, want auth.ErrInvalidToken", err)
			}
			if acc != nil {
				t.Errorf("Inspect returned an account with an error: %+v", acc)
			}
		})
	}
}

func TestInspectExpiry(t *testing.T) {
	tests := []struct {
		name string
		at   time.Duration // clock at Inspect, from baseTime; tokens live 15 min
		want error
	}{
		{"fresh", 0, nil},
		{"a second before expiry", 15*time.Minute - time.Second, nil},
		{"at expiry", 15 * time.Minute, ErrExpired},
		{"long after expiry", 48 * time.Hour, ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, clk := newTestJWT(t)
			_, tok := mint(t, j, defaultMint())
			clk.Set(baseTime.Add(tc.at))
			acc, err := j.Inspect(tok.AccessToken)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Inspect error = %v, want %v", err, tc.want)
			}
			if (err == nil) != (acc != nil) {
				t.Errorf("Inspect = %v, %v", acc, err)
			}
		})
	}
}

func TestPublicKeyOnly(t *testing.T) {
	minter, _ := newTestJWT(t)
	acc, tok := mint(t, minter, defaultMint())

	pair, _ := keyPairs(t)
	_, pub := pair.b64()
	j, err := NewJWT(auth.PublicKey(pub))
	if err != nil {
		t.Fatalf("NewJWT(public only): %v", err)
	}
	j.now = func() time.Time { return baseTime }
	if j.CanMint() {
		t.Errorf("CanMint() = true without a private key")
	}
	if !minter.CanMint() {
		t.Errorf("CanMint() = false with a private key")
	}
	got, err := j.Inspect(tok.AccessToken)
	if err != nil || got.ID != acc.ID {
		t.Fatalf("Inspect = %+v, %v", got, err)
	}
	o := defaultMint()
	if a, err := j.Generate(o.id, auth.WithMetadata(map[string]string{MetaSession: "s", MetaSessionEx: "1800000000"})); !errors.Is(err, ErrNoKey) || a != nil {
		t.Errorf("Generate = %v, %v; want ErrNoKey", a, err)
	}
	if tk, err := j.Token(auth.WithCredentials(acc.ID, acc.Secret)); !errors.Is(err, ErrNoKey) || tk != nil {
		t.Errorf("Token = %v, %v; want ErrNoKey", tk, err)
	}
}

func TestNewJWTRefusesBadKeys(t *testing.T) {
	pair, other := keyPairs(t)
	priv, pub := pair.b64()
	otherPriv, otherPub := other.b64()
	tests := []struct {
		name string
		opts []auth.Option
	}{
		{"no keys", nil},
		{"private key only", []auth.Option{auth.PrivateKey(priv)}},
		{"private key of another pair", []auth.Option{auth.PublicKey(pub), auth.PrivateKey(otherPriv)}},
		{"public key of another pair", []auth.Option{auth.PublicKey(otherPub), auth.PrivateKey(priv)}},
		{"garbage public key", []auth.Option{auth.PublicKey("bm90IGEga2V5")}},
		{"garbage private key", []auth.Option{auth.PublicKey(pub), auth.PrivateKey("bm90IGEga2V5")}},
		{"public key given as private", []auth.Option{auth.PublicKey(pub), auth.PrivateKey(pub)}},
		{"private key given as public", []auth.Option{auth.PublicKey(priv), auth.PrivateKey(priv)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if j, err := NewJWT(tc.opts...); err == nil {
				t.Fatalf("NewJWT succeeded: %v", j)
			}
		})
	}
	if _, err := NewJWT(auth.PublicKey(pub), auth.PrivateKey(priv)); err != nil {
		t.Fatalf("NewJWT with a matching pair: %v", err)
	}
}

func TestInitKeepsKeysOnBadKey(t *testing.T) {
	j, _ := newTestJWT(t)
	_, tok := mint(t, j, defaultMint())
	j.Init(auth.PublicKey("bm90IGEga2V5"))
	if !j.CanMint() {
		t.Errorf("a bad key in Init dropped the private key")
	}
	if _, err := j.Inspect(tok.AccessToken); err != nil {
		t.Errorf("Inspect after a bad Init: %v", err)
	}
}

// fuzzKeyEnv carries FuzzInspect's key to the fuzz workers: they are other
// processes that rebuild the JWT and need the key the seed tokens were signed
// with. The coordinator generates it and sets the variable before the workers
// start; they inherit it. No key lives in the repository.
const fuzzKeyEnv = "PORTAL_FUZZ_KEY"

func fuzzPair(t testing.TB) pemPair {
	t.Helper()
	privPEM, err := base64.StdEncoding.DecodeString(os.Getenv(fuzzKeyEnv))
	if err != nil || len(privPEM) == 0 {
		if privPEM, _, err = GenerateKeyPair(); err != nil {
			t.Fatalf("generate fuzz key: %v", err)
		}
		if err := os.Setenv(fuzzKeyEnv, base64.StdEncoding.EncodeToString(privPEM)); err != nil {
			t.Fatalf("setenv: %v", err)
		}
	}
	k, err := ParsePrivateKey(string(privPEM))
	if err != nil {
		t.Fatalf("parse fuzz key: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatalf("encode fuzz public key: %v", err)
	}
	return pemPair{priv: privPEM, pub: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
}

// FuzzInspect: Inspect never panics, fails only with ErrInvalidToken or
// ErrExpired, and accepts nothing but the exact bytes of a token we minted.
//
// Fuzz workers are other processes: they rebuild the JWT (same fixed key,
// same fixed clock) but mint tokens with other random ids than the seeds they
// are handed, so "we minted it" is checked as: re-signing the token's own
// claims gives back the very same bytes. RS256 signing is deterministic and
// nobody but us holds the key, so any other accepted string is a second
// encoding of one of our tokens: the test's finding.
func FuzzInspect(f *testing.F) {
	pair := fuzzPair(f)
	_, other := keyPairs(f)
	j, _ := newJWTOn(f, pair)
	j.now = func() time.Time { return baseTime } // fixed: the seed tokens stay valid
	minted := map[string]bool{}
	for _, roles := range [][]string{{RoleUser}, {RoleAdmin, RoleUser}, nil} {
		o := defaultMint()
		o.roles = roles
		acc, tok := mint(f, j, o)
		minted[tok.AccessToken] = true
		f.Add(tok.AccessToken)
		f.Add(acc.Secret)
	}
	for _, bad := range badTokens(f, j, pair, other) {
		f.Add(bad)
	}
	f.Fuzz(func(t *testing.T, s string) {
		acc, err := j.Inspect(s)
		if err != nil {
			if acc != nil {
				t.Fatalf("Inspect returned an account and %v", err)
			}
			if !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Inspect error %v is neither ErrInvalidToken nor ErrExpired", err)
			}
			return
		}
		if !minted[s] && !isOurEncoding(t, j, s) {
			t.Fatalf("Inspect accepted %q, which is not a token we minted", s)
		}
		if acc == nil || acc.ID == "" || acc.Metadata[MetaSession] == "" {
			t.Fatalf("Inspect accepted %q with account %+v", s, acc)
		}
	})
}

// isOurEncoding reports whether s is exactly what j.sign makes of the claims
// in s.
func isOurEncoding(t *testing.T, j *JWT, s string) bool {
	t.Helper()
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c claims
	if json.Unmarshal(raw, &c) != nil {
		return false
	}
	want, err := j.sign(c)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return want == s
}

// TestDeriveKey: two processes on one private key derive the same key for a
// purpose; another purpose, or another key pair, gives another; without the
// private key there is none.
func TestDeriveKey(t *testing.T) {
	pairA, pairB := keyPairs(t)
	a1, _ := newJWTOn(t, pairA)
	a2, _ := newJWTOn(t, pairA)
	b, _ := newJWTOn(t, pairB)
	k := a1.DeriveKey("device token v1")
	if len(k) != 32 || !bytes.Equal(k, a2.DeriveKey("device token v1")) {
		t.Fatalf("keys of one private key differ or are not 32 bytes: %x", k)
	}
	if bytes.Equal(k, a1.DeriveKey("other")) || bytes.Equal(k, b.DeriveKey("device token v1")) {
		t.Fatal("another purpose or another key derives the same key")
	}
	_, pub := pairA.b64()
	pubOnly, err := NewJWT(auth.PublicKey(pub))
	if err != nil {
		t.Fatal(err)
	}
	if pubOnly.DeriveKey("device token v1") != nil {
		t.Fatal("a key derived without the private key")
	}
}
