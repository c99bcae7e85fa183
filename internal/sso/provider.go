// Package sso is Portal's OpenID Connect provider, built on the
// OpenID-certified github.com/zitadel/oidc/v3/pkg/op. It runs in the user
// service, beside the store and the keys it needs; gateways forward the
// provider's HTTP requests to it over RPC (Handler), so any number of
// gateways serve it and none holds a private key.
package sso

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go-micro.dev/v4/store"
	"golang.org/x/text/language"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/outbox"
	oidcpb "github.com/portal-go/portal/proto/oidc"
)

// Paths the provider serves; the gateway forwards these to it.
const (
	// DiscoveryPath is the OpenID discovery document.
	DiscoveryPath = "/.well-known/openid-configuration"
	// Prefix is where every other endpoint of the provider lives.
	Prefix = "/oauth/"
	// LoginPath is Portal's sign-in step of an authorization request.
	LoginPath = "/oauth/login"
	// KeysPath is the JWKS.
	KeysPath = "/oauth/keys"
)

// Options configure the provider.
type Options struct {
	// Issuer is the public URL of Portal (PORTAL_ISSUER).
	Issuer string
	// AccessTokenTTL is how long an application's access token lives (5 min).
	AccessTokenTTL time.Duration
	// IDTokenTTL is how long an ID token lives (1 h).
	IDTokenTTL time.Duration
	// GrantTTL bounds a grant and its refresh tokens (it ends sooner with
	// its Portal session).
	GrantTTL time.Duration
	// RotateEvery is the signing key's period; the previous key stays
	// published one more period. It must exceed every token's lifetime.
	RotateEvery time.Duration
	// Insecure allows a plain-http issuer and redirect URIs (local use);
	// New sets it from the issuer's scheme.
	Insecure bool
	// Log receives what cannot be told to a caller (nil: discarded).
	Log *slog.Logger
	// Audit records grants, consents, token issues and revocations (nil:
	// none).
	Audit *audit.Publisher
	// Metrics registers the per-client counters (nil: not exported).
	Metrics prometheus.Registerer
	// LogoutRetry is how back-channel logouts an application refuses are
	// tried again (zero fields: 12 attempts, 1 s doubling to 10 min: about
	// an hour in all); GiveUp is the provider's.
	LogoutRetry outbox.Retry
}

// Defaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = 5 * time.Minute
	}
	if o.IDTokenTTL == 0 {
		o.IDTokenTTL = time.Hour
	}
	if o.GrantTTL == 0 {
		o.GrantTTL = 30 * 24 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RotateEvery == 0 {
		o.RotateEvery = 24 * time.Hour
	}
	if o.LogoutRetry.MaxAttempts == 0 {
		o.LogoutRetry.MaxAttempts = 12
	}
	if o.LogoutRetry.Backoff == 0 {
		o.LogoutRetry.Backoff = time.Second
	}
	if o.LogoutRetry.MaxBackoff == 0 {
		o.LogoutRetry.MaxBackoff = 10 * time.Minute
	}
	return o
}

// DefaultIssuer derives an issuer from the gateway's listen address
// (":8080" -> "http://localhost:8080"), for the embedded mode.
func DefaultIssuer(httpAddress string) string {
	if httpAddress == "" {
		httpAddress = ":8080" // the gateway's default
	}
	host, port, err := net.SplitHostPort(httpAddress)
	if err != nil {
		return "http://" + httpAddress
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Provider is the OpenID provider.
type Provider struct {
	op      *op.Provider
	storage *Storage
	opts    Options
	log     *slog.Logger
	metrics *metrics
	// http delivers back-channel logout tokens; logouts is their queue.
	http    *http.Client
	logouts *outbox.Outbox
}

// New builds the provider on st (the user service's store); k, over the
// same records, makes key creation and refresh-token use atomic across
// instances; secret (32 bytes, the same on every user instance) seals the
// signing keys and the access tokens.
func New(st store.Store, k kv.Store, secret []byte, accounts Accounts, opts Options) (*Provider, error) {
	opts = opts.withDefaults()
	u, err := url.Parse(opts.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("sso: the issuer %q is not an http(s) URL", opts.Issuer)
	}
	opts.Insecure = u.Scheme == "http"
	for _, ttl := range []time.Duration{opts.AccessTokenTTL, opts.IDTokenTTL} {
		if ttl >= opts.RotateEvery {
			return nil, errors.New("sso: the key rotation period must exceed every token's lifetime")
		}
	}
	if len(secret) != 32 {
		return nil, errors.New("sso: the secret must be 32 bytes")
	}
	keys, err := NewKeyRing(st, k, secret, opts.RotateEvery)
	if err != nil {
		return nil, err
	}
	pr := &Provider{opts: opts, log: opts.Log, metrics: newMetrics(opts.Metrics), http: &http.Client{Timeout: backchannelTimeout,
		// One POST now and then to each application: no connection is kept.
		Transport: &http.Transport{DisableKeepAlives: true}}}
	s := &Storage{st: st, kv: k, keys: keys, accounts: accounts, opts: opts, now: time.Now, p: pr}
	pr.storage = s
	retry := opts.LogoutRetry
	retry.GiveUp = pr.gaveUp
	pr.logouts = outbox.NewQueue(k, logoutQueue, pr.deliver, retry, opts.Log)
	var key [32]byte
	copy(key[:], secret)
	// The access tokens are sealed with a key of their own, not the key ring's.
	for i := range key {
		key[i] ^= 0x5c
	}
	cfg := &op.Config{
		CryptoKey:                         key,
		CodeMethodS256:                    true,
		AuthMethodPost:                    true,
		GrantTypeRefreshToken:             true,
		SupportedUILocales:                []language.Tag{language.English},
		SupportedScopes:                   []string{"openid", "profile", "email", "offline_access"},
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		DefaultLogoutRedirectURI:          "/login",
	}
	popts := []op.Option{op.WithCustomEndpoints(
		op.NewEndpoint("/oauth/authorize"), op.NewEndpoint(TokenPath), op.NewEndpoint(UserinfoPath),
		op.NewEndpoint(RevokePath), op.NewEndpoint("/oauth/end_session"), op.NewEndpoint(KeysPath)),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint("/oauth/introspect")),
		// The op package's CORS allows every origin, with credentials:
		// Provider.cors answers instead, for registered origins only.
		op.WithCORSOptions(nil),
	}
	if opts.Insecure {
		popts = append(popts, op.WithAllowInsecure())
	}
	p, err := op.NewProvider(cfg, s, op.StaticIssuer(opts.Issuer), popts...)
	if err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}
	pr.op = p
	return pr, nil
}

// Storage returns the provider's storage (clients, grants, keys).
func (p *Provider) Storage() *Storage { return p.storage }

// ServeHTTP answers a request to the provider's endpoints.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.cors(w, r) {
		return
	}
	if r.URL.Path == LoginPath {
		p.login(w, r)
		return
	}
	p.op.ServeHTTP(w, r)
}

// Handler is the OIDC RPC handler: it answers the HTTP requests gateways
// forward.
type Handler struct{ p *Provider }

// NewHandler returns the RPC handler of p.
func NewHandler(p *Provider) *Handler { return &Handler{p: p} }

// maxBody bounds a forwarded request's body.
const maxBody = 64 << 10

// Serve implements oidcpb.OIDCHandler.
func (h *Handler) Serve(ctx context.Context, req *oidcpb.HTTPRequest, rsp *oidcpb.HTTPResponse) error {
	if len(req.Body) > maxBody {
		rsp.Status = http.StatusRequestEntityTooLarge
		return nil
	}
	u, err := url.Parse(req.Url)
	if err != nil || !Public(u.Path) {
		rsp.Status = http.StatusNotFound
		return nil
	}
	iss, _ := url.Parse(h.p.opts.Issuer)
	r, err := http.NewRequestWithContext(ctx, req.Method, iss.Scheme+"://"+iss.Host+u.RequestURI(), bytes.NewReader(req.Body))
	if err != nil {
		rsp.Status = http.StatusBadRequest
		return nil
	}
	for _, hd := range req.Headers {
		for _, v := range hd.Values {
			r.Header.Add(hd.Name, v)
		}
	}
	w := httptest.NewRecorder()
	h.p.ServeHTTP(w, r)
	rsp.Status = int32(w.Code)
	rsp.Body = w.Body.Bytes()
	for name, vs := range w.Header() {
		rsp.Headers = append(rsp.Headers, &oidcpb.Header{Name: name, Values: vs})
	}
	return nil
}

// Public reports whether path is one of the provider's: such requests need
// no Portal session at the gateway (the provider authenticates clients and
// users itself), though a browser's session goes along when it has one.
func Public(path string) bool {
	return path == DiscoveryPath || strings.HasPrefix(path, Prefix)
}
