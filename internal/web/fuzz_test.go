package web

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// FuzzAuthenticate sends arbitrary tokens, through each of the three ways in,
// to a protected API route and a protected page: the middleware must never
// panic (a recovered panic is a 500) and never let anything but the one valid
// token through.
func FuzzAuthenticate(f *testing.F) {
	var (
		once  sync.Once
		g     *Gateway
		valid string
	)
	setup := func(t *testing.T) {
		once.Do(func() {
			g = newGateway(t, settings(), newFakeUsers())
			valid = validToken(t, "s-fuzz")
		})
	}
	parts := []string{"eyJhbGciOiJub25lIn0", "eyJzdWIiOiJ1LTEifQ", "sig"}
	for _, seed := range []string{
		"", "garbage", "a.b", "a.b.c", "a.b.c.d", strings.Join(parts, "."),
		strings.Repeat("A", 9000), "Bearer x", "\x00\xff", "%00", "a b\tc\r\nd",
	} {
		for where := uint8(0); where < 3; where++ {
			f.Add(seed, where)
		}
	}
	f.Fuzz(func(t *testing.T, tok string, where uint8) {
		setup(t)
		track(t, g)
		for _, target := range []string{"/api/v1/me", "/account"} {
			r, err := http.NewRequest(http.MethodGet, "http://portal.test"+target, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch where % 3 {
			case 0:
				r.Header.Set("Authorization", "Bearer "+tok)
			case 1:
				r.URL.RawQuery = "token=" + url.QueryEscape(tok)
			case 2:
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: tok})
			}
			w := serve(g, r)
			if w.Code >= 500 {
				t.Fatalf("%s with token %q via %d: status %d", target, tok, where%3, w.Code)
			}
			if w.Code == http.StatusOK && tok != valid {
				t.Fatalf("%s accepted token %q via %d", target, tok, where%3)
			}
		}
	})
}

// FuzzClientOf sends arbitrary forwarding headers from a trusted and from an
// untrusted peer: clientOf must never panic, always answer an address, and
// never take one from the headers of an untrusted peer.
func FuzzClientOf(f *testing.F) {
	for _, seed := range []string{"", "203.0.113.7", "1.1.1.1, 203.0.113.7, 10.0.0.5", "unknown", "[2001:db8::1]:443",
		"::ffff:10.0.0.1", ",,,", "fe80::1%eth0", "10.0.0.1/8", strings.Repeat("1.2.3.4,", 500)} {
		f.Add(seed, "https")
	}
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, xff, xfp string) {
		for _, peer := range []string{"10.0.0.2:1", "198.51.100.9:1"} {
			r, err := http.NewRequest(http.MethodGet, "http://portal.test/", nil)
			if err != nil {
				t.Skip()
			}
			r.RemoteAddr = peer
			r.Header["X-Forwarded-For"] = []string{xff}
			r.Header["X-Forwarded-Proto"] = []string{xfp}
			addr, https := clientOf(r, proxies)
			a, err := netip.ParseAddr(addr)
			if err != nil || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("peer %s, XFF %q: address %q is not a plain IP", peer, xff, addr)
			}
			if peer == "198.51.100.9:1" && (addr != "198.51.100.9" || https) {
				t.Fatalf("untrusted peer, XFF %q, XFP %q: %q https %v", xff, xfp, addr, https)
			}
		}
	})
}
