package web

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"

	userpb "github.com/portal-go/portal/proto/user"
)

func mustProxies(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(s)
	if err != nil {
		t.Fatalf("ParseTrustedProxies(%q): %v", s, err)
	}
	return p
}

func TestParseTrustedProxies(t *testing.T) {
	got := mustProxies(t, " 10.0.0.0/8, 192.0.2.7 ,fd00::/8,, ::ffff:198.51.100.0/120, 172.16.5.9/12")
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "198.51.100.0/24", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if p := mustProxies(t, ""); len(p) != 0 {
		t.Errorf("empty list gave %v", p)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.1/8x", "fe80::1%eth0", "10.0.0.0/8, *", "300.1.1.1"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted it", bad)
		}
	}
}

// The client's address and scheme: forwarding headers count only from a
// trusted peer, walked from the right, and garbage stops the walk.
func TestClientOf(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name    string
		peer    string
		tls     bool
		xff     []string // header lines
		xfp     []string
		proxies []netip.Prefix
		addr    string
		https   bool
	}{
		{name: "no proxies configured: spoofed XFF ignored", peer: "10.0.0.2:1", xff: []string{"203.0.113.7"}, xfp: []string{"https"}, addr: "10.0.0.2"},
		{name: "untrusted peer: spoofed XFF and XFP ignored", peer: "198.51.100.9:1", xff: []string{"203.0.113.7"}, xfp: []string{"https"}, proxies: proxies, addr: "198.51.100.9"},
		{name: "trusted peer, one hop", peer: "10.0.0.2:1", xff: []string{"203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "client's own XFF entry left of the real one", peer: "10.0.0.2:1", xff: []string{"1.1.1.1, 203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "chain of trusted proxies", peer: "10.0.0.2:1", xff: []string{"203.0.113.7, 10.0.0.5, 10.9.9.9"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "spoof left of a chain", peer: "10.0.0.2:1", xff: []string{"1.1.1.1, 203.0.113.7, 10.0.0.5"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "a proxy that appends a header line", peer: "10.0.0.2:1", xff: []string{"1.1.1.1", "203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "garbage rightmost: the peer", peer: "10.0.0.2:1", xff: []string{"203.0.113.7, unknown"}, proxies: proxies, addr: "10.0.0.2"},
		{name: "empty rightmost: the peer", peer: "10.0.0.2:1", xff: []string{"203.0.113.7,"}, proxies: proxies, addr: "10.0.0.2"},
		{name: "garbage left of the client", peer: "10.0.0.2:1", xff: []string{"<script>, 203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "garbage behind a trusted hop: that hop", peer: "10.0.0.2:1", xff: []string{"999.1.1.1, 10.0.0.5"}, proxies: proxies, addr: "10.0.0.5"},
		{name: "every hop trusted: the leftmost", peer: "10.0.0.2:1", xff: []string{"10.0.0.9, 10.0.0.5"}, proxies: proxies, addr: "10.0.0.9"},
		{name: "trusted peer, no XFF", peer: "10.0.0.2:1", proxies: proxies, addr: "10.0.0.2"},
		{name: "hop with a port", peer: "10.0.0.2:1", xff: []string{"203.0.113.7:5555"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "IPv6 hop with a port", peer: "10.0.0.2:1", xff: []string{"[2001:db8::7]:443"}, proxies: proxies, addr: "2001:db8::7"},
		{name: "IPv4-mapped hop", peer: "10.0.0.2:1", xff: []string{"::ffff:203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "IPv4-mapped trusted hop is trusted", peer: "10.0.0.2:1", xff: []string{"203.0.113.7, ::ffff:10.0.0.5"}, proxies: proxies, addr: "203.0.113.7"},
		{name: "IPv6 trusted peer", peer: "[fd00::2]:1", xff: []string{"2001:db8::7"}, proxies: proxies, addr: "2001:db8::7"},
		{name: "zone in a hop is garbage", peer: "10.0.0.2:1", xff: []string{"fe80::1%eth0"}, proxies: proxies, addr: "10.0.0.2"},
		{name: "XFP https from a trusted peer", peer: "10.0.0.2:1", xfp: []string{"https"}, proxies: proxies, addr: "10.0.0.2", https: true},
		{name: "XFP case and spaces", peer: "10.0.0.2:1", xfp: []string{" HTTPS "}, proxies: proxies, addr: "10.0.0.2", https: true},
		{name: "XFP: the rightmost value counts", peer: "10.0.0.2:1", xfp: []string{"https, http"}, proxies: proxies, addr: "10.0.0.2"},
		{name: "XFP: the rightmost line counts", peer: "10.0.0.2:1", xfp: []string{"http", "https"}, proxies: proxies, addr: "10.0.0.2", https: true},
		{name: "XFP garbage", peer: "10.0.0.2:1", xfp: []string{"ftp"}, proxies: proxies, addr: "10.0.0.2"},
		{name: "TLS connection", peer: "198.51.100.9:1", tls: true, addr: "198.51.100.9", https: true},
		{name: "XFP http does not undo TLS", peer: "10.0.0.2:1", tls: true, xfp: []string{"http"}, proxies: proxies, addr: "10.0.0.2", https: true},
		{name: "unparsable peer", peer: "nonsense", xff: []string{"203.0.113.7"}, proxies: proxies, addr: ""},
		{name: "link-local peer with a zone", peer: "[fe80::1%eth0]:1", xff: []string{"203.0.113.7"}, proxies: proxies, addr: "fe80::1"},
		{name: "IPv4-mapped peer", peer: "[::ffff:10.0.0.2]:1", xff: []string{"203.0.113.7"}, proxies: proxies, addr: "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.xfp {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			addr, https := clientOf(r, tc.proxies)
			if addr != tc.addr || https != tc.https {
				t.Errorf("clientOf = %q, https %v; want %q, https %v", addr, https, tc.addr, tc.https)
			}
		})
	}
}

// behind returns request modifiers for a request from peer carrying
// X-Forwarded-For xff and X-Forwarded-Proto proto.
func behind(peer, xff, proto string) func(*http.Request) {
	return func(r *http.Request) {
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		r.Header.Set("X-Forwarded-Proto", proto)
	}
}

// The address the gateway settles on is what services are told (signed
// into the RPC by the platform) and what the request log shows; a client's
// own X-Portal-Client-Ip is never believed.
func TestClientAddressReachesServices(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	g.TrustedProxies = mustProxies(t, "10.0.0.0/8")
	login := func(mods ...func(*http.Request)) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/login", strings.NewReader(`{"username":"alice","password":"secret-password"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "test-agent/1")
		for _, m := range mods {
			m(r)
		}
		if w := serve(g, r); w.Code != http.StatusOK {
			t.Fatalf("login: %d %s", w.Code, w.Body)
		}
	}
	login(behind("10.0.0.2:5000", "1.1.1.1, 203.0.113.7", "https"))
	login(behind("198.51.100.9:5000", "203.0.113.7", "https"))
	login(func(r *http.Request) { r.RemoteAddr = "198.51.100.9:5000"; r.Header.Set(clientHeader, "203.0.113.7") })
	got := users.clientsOf("Login")
	want := []string{"203.0.113.7", "198.51.100.9", "198.51.100.9"}
	if len(got) != len(want) {
		t.Fatalf("Login saw clients %v", got)
	}
	for i, w := range want {
		if got[i].Addr != w || got[i].UserAgent != "test-agent/1" {
			t.Errorf("login %d: the service was told %+v, want address %s and the user agent", i, got[i], w)
		}
	}
}

// Session, device and CSRF cookies are Secure, and HSTS is sent, exactly
// when the request came over https: TLS, or a trusted proxy's
// X-Forwarded-Proto.
func TestSecureCookiesAndHSTS(t *testing.T) {
	users := newFakeUsers()
	users.login = &userpb.LoginResponse{Token: "login-token", SessionId: "s-new", DeviceToken: "device-token", DeviceExpiresAt: time.Now().Add(time.Hour).Unix()}
	g := newGateway(t, settings(), users)
	g.TrustedProxies = mustProxies(t, "10.0.0.0/8")
	g.HSTSMaxAge = DefaultHSTSMaxAge
	loginForm := func(mod func(*http.Request)) *httptest.ResponseRecorder {
		r := csrfPost(t, "/login", url.Values{"username": {"alice"}, "password": {"secret-password"}}, strings.Repeat("a", 43), strings.Repeat("a", 43))
		mod(r)
		w := serve(g, r)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("login form: %d %s", w.Code, w.Body)
		}
		return w
	}
	for _, tc := range []struct {
		name   string
		mod    func(*http.Request)
		secure bool
	}{
		{"trusted proxy, https", behind("10.0.0.2:5000", "203.0.113.7", "https"), true},
		{"trusted proxy, http", behind("10.0.0.2:5000", "203.0.113.7", "http"), false},
		{"untrusted peer claiming https", behind("198.51.100.9:5000", "203.0.113.7", "https"), false},
		{"direct TLS", func(r *http.Request) { r.TLS = &tls.ConnectionState{} }, true},
		{"plain http", func(*http.Request) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := loginForm(tc.mod)
			for _, name := range []string{sessionCookie, deviceCookie} {
				if ck := cookieNamed(w, name); ck == nil || ck.Secure != tc.secure {
					t.Errorf("%s cookie %q, want Secure=%v", name, setCookieLine(w, name), tc.secure)
				}
			}
			page := serve(g, get("/login", tc.mod))
			if ck := cookieNamed(page, csrfCookie); ck == nil || ck.Secure != tc.secure {
				t.Errorf("CSRF cookie %q, want Secure=%v", setCookieLine(page, csrfCookie), tc.secure)
			}
			for _, resp := range []*httptest.ResponseRecorder{w, page} {
				hsts := resp.Header().Get("Strict-Transport-Security")
				if tc.secure && hsts != "max-age=31536000" {
					t.Errorf("https response: Strict-Transport-Security %q, want max-age=31536000", hsts)
				}
				if !tc.secure && hsts != "" {
					t.Errorf("http response carries Strict-Transport-Security %q", hsts)
				}
			}
		})
	}
	g.HSTSMaxAge = 0
	if h := serve(g, get("/login", behind("10.0.0.2:5000", "203.0.113.7", "https"))).Header().Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTSMaxAge 0 still sends %q", h)
	}
}

// The public /readyz names the failing check, never its error (which can
// name internal addresses).
func TestReadyzPublicNamesOnly(t *testing.T) {
	users := newFakeUsers()
	g := newGateway(t, settings(), users)
	if w := serve(g, get("/readyz")); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"ready"`) {
		t.Fatalf("ready: %d %s", w.Code, w.Body)
	}
	users.healthErr = merrors.InternalServerError("user.store", "redis 10.1.2.3:6379: connection refused")
	w := serve(g, get("/readyz"))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("not ready: %d %s", w.Code, w.Body)
	}
	var body struct {
		Status  string            `json:"status"`
		Checks  map[string]string `json:"checks"`
		Failing []string          `json:"failing"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "unavailable" || body.Checks["user"] != "failing" || body.Checks["system"] != "ok" || len(body.Failing) != 1 || body.Failing[0] != "user" {
		t.Errorf("body %s, want user failing and system ok", w.Body)
	}
	for _, leak := range []string{"10.1.2.3", "refused", "redis", "user.store"} {
		if strings.Contains(w.Body.String(), leak) {
			t.Errorf("public /readyz shows %q: %s", leak, w.Body)
		}
	}
}
