package web

import (
	"net/http"
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
