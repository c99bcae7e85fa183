package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// What the gateway learns of a request at its edge: who the client is and
// whether it came over https, believing forwarding headers only from the
// proxies it is told to trust.

// DefaultHSTSMaxAge is the Strict-Transport-Security max-age, in seconds,
// sent on https responses unless configured: one year, what OWASP and the
// HSTS preload list ask for.
const DefaultHSTSMaxAge = 31536000

// clientHeader is a request header that the edge middleware always sets to
// the client's address, whatever the client sent: gin's ClientIP reads it
// (TrustedPlatform), so every use of ClientIP agrees with clientOf.
const clientHeader = "X-Portal-Client-Ip"

// ctxHTTPS is the gin context key of whether the request came over https.
const ctxHTTPS = "portal.https"

// ParseTrustedProxies parses a comma-separated list of CIDRs (a bare address
// is one host) naming the proxies whose X-Forwarded-For and
// X-Forwarded-Proto are believed. Empty: none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("trusted proxies: %q is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an address", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// trusted reports whether a is in one of the prefixes.
func trusted(a netip.Addr, proxies []netip.Prefix) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one address of a forwarding chain: an IP, maybe with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711"), IPv4-mapped IPv6 unmapped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// clientOf decides a request's client address and scheme. The direct peer
// is the client unless it is a trusted proxy; then X-Forwarded-For (every
// header line, in order) is walked from the right, the way nginx's
// real_ip_recursive and Envoy's xff_num_trusted_hops do: the client is the
// first address that is not itself a trusted proxy, or the last one reached
// when the chain ends or holds something that is not an address (what lies
// left of it cannot be believed). The scheme is https when the connection
// is TLS or, from a trusted peer, when the rightmost X-Forwarded-Proto value
// (the one the nearest proxy set) is https; an unknown value changes
// nothing.
func clientOf(r *http.Request, proxies []netip.Prefix) (addr string, https bool) {
	https = r.TLS != nil
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	// The connection's own address may carry a zone (fe80::1%eth0): the
	// address without it is still the peer's.
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return "", https
	}
	peer = peer.WithZone("").Unmap()
	if !trusted(peer, proxies) {
		return peer.String(), https
	}
	if protos := headerList(r, "X-Forwarded-Proto"); len(protos) > 0 {
		switch strings.ToLower(protos[len(protos)-1]) {
		case "https":
			https = true
		case "http":
			https = r.TLS != nil
		}
	}
	client := peer
	hops := headerList(r, "X-Forwarded-For")
	for i := len(hops) - 1; i >= 0 && trusted(client, proxies); i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
	}
	return client.String(), https
}

// headerList is every comma-separated value of every line of header name,
// trimmed, in order (a proxy may append a line rather than a value).
func headerList(r *http.Request, name string) []string {
	var out []string
	for _, line := range r.Header.Values(name) {
		for _, v := range strings.Split(line, ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// edge is the first middleware: it settles the client's address (which
// gin's ClientIP then reports) and scheme, and on https sends
// Strict-Transport-Security.
func (g *Gateway) edge(c *gin.Context) {
	addr, https := clientOf(c.Request, g.TrustedProxies)
	c.Request.Header.Del(clientHeader)
	if addr != "" {
		c.Request.Header.Set(clientHeader, addr)
	}
	c.Set(ctxHTTPS, https)
	if https && g.HSTSMaxAge > 0 {
		c.Header("Strict-Transport-Security", "max-age="+strconv.Itoa(g.HSTSMaxAge))
	}
	c.Next()
}

// isHTTPS reports whether the request came over https (edge): cookies are
// Secure then.
func isHTTPS(c *gin.Context) bool { return c.GetBool(ctxHTTPS) }

// metrics serves Prometheus' scrape on the public port to a caller with the
// metrics token (Authorization: Bearer, compared in constant time); without
// a token configured, or with a wrong one, there is no such page.
func (g *Gateway) metrics(c *gin.Context) {
	if !g.metricsAllowed(c.GetHeader("Authorization")) {
		g.fail(c, http.StatusNotFound, codeNotFound, "no such page")
		return
	}
	g.Metrics.Handler().ServeHTTP(c.Writer, c.Request)
}

// metricsAllowed checks an Authorization header against the metrics token.
// Both sides are hashed first, so the comparison takes the same time
// whatever the lengths.
func (g *Gateway) metricsAllowed(header string) bool {
	if g.MetricsToken == "" {
		return false
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	want, got := sha256.Sum256([]byte(g.MetricsToken)), sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}
