package sso

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Endpoints a browser application (a public client, an SPA) calls from its
// own origin.
const (
	TokenPath    = "/oauth/token"
	UserinfoPath = "/oauth/userinfo"
	RevokePath   = "/oauth/revoke"
)

// clientPaths are the endpoints that act for one client: CORS answers
// only that client's origins there. The discovery document and the JWKS
// (public, no client named) answer the origins of every enabled client.
var clientPaths = map[string]bool{TokenPath: true, UserinfoPath: true, RevokePath: true}

// CORS reports whether path answers cross-origin requests (CORS): the
// gateway lets browsers' cross-origin POSTs to these through, since they
// carry a client's credentials or token, never the Portal session.
func CORS(path string) bool {
	return clientPaths[path] || path == DiscoveryPath || path == KeysPath
}

// cors answers CORS for r: an origin is allowed only where a client's
// registered redirect URI has it (no wildcard, no credentials): at the
// token, userinfo and revocation endpoints the client's own, named by the
// request (client_id, Basic auth, or the access token's client); in a
// preflight, which names none, and at discovery and the JWKS, any enabled
// client's. It reports whether it answered r (a preflight) itself.
func (p *Provider) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !CORS(r.URL.Path) {
		return false
	}
	w.Header().Add("Vary", "Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	client := ""
	if !preflight && clientPaths[r.URL.Path] {
		client = p.clientOf(r)
	}
	if !p.originAllowed(r.Context(), normalOrigin(origin), client, preflight || !clientPaths[r.URL.Path]) {
		if preflight {
			w.WriteHeader(http.StatusForbidden)
		}
		return preflight
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	if !preflight {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// originAllowed reports whether origin is a redirect URI's origin of the
// enabled client id or, when anyClient, of any enabled client.
func (p *Provider) originAllowed(ctx context.Context, origin, id string, anyClient bool) bool {
	var cs []*Client
	switch {
	case id != "":
		c, err := p.storage.Client(ctx, id)
		if err != nil {
			return false
		}
		cs = []*Client{c}
	case anyClient:
		var err error
		if cs, err = p.storage.Clients(ctx); err != nil {
			return false
		}
	}
	for _, c := range cs {
		if c.Disabled {
			continue
		}
		for _, u := range c.RedirectURIs {
			if normalOrigin(u) == origin {
				return true
			}
		}
	}
	return false
}

// clientOf names the client a request to the token, revocation or userinfo
// endpoint is for: its Basic auth, its form's client_id, or its bearer
// access token's client. r's body stays readable.
func (p *Provider) clientOf(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		return id
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		plain, err := p.op.Crypto().Decrypt(strings.TrimSpace(tok))
		if err != nil {
			return ""
		}
		id, _, _ := strings.Cut(plain, ":")
		var at accessToken
		if p.storage.get(prefixAccess+id, &at) != nil {
			return ""
		}
		return at.ClientID
	}
	if r.Body == nil {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return ""
	}
	form, _ := url.ParseQuery(string(body))
	return form.Get("client_id")
}

// normalOrigin is the origin of a URL (or an Origin header) as a browser
// sends it: scheme and host in lower case, the scheme's default port left
// out.
func normalOrigin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndex(host, ":")]
	}
	return scheme + "://" + host
}
