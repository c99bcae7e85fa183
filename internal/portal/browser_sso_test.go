package portal_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// testApp is a small web application that signs its users in with Portal
// (go-oidc and x/oauth2, PKCE S256): /login starts the flow (/login?prompt=login
// asks Portal for a fresh sign-in), /callback finishes it and greets the
// user by the ID token's preferred_username, showing its amr.
type testApp struct {
	URL string
	rp  *relyingParty
	mu  sync.Mutex
	// verifiers are the PKCE verifiers of flows under way, by state.
	verifiers map[string]string
}

func newTestApp(t *testing.T) *testApp {
	t.Helper()
	app := &testApp{verifiers: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		state, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
		app.mu.Lock()
		app.verifiers[state] = verifier
		app.mu.Unlock()
		opts := []oauth2.AuthCodeOption{oidc.Nonce("n-" + state), oauth2.S256ChallengeOption(verifier)}
		if r.URL.Query().Get("prompt") == "login" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
		http.Redirect(w, r, app.rp.config.AuthCodeURL(state, opts...), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		state := r.URL.Query().Get("state")
		app.mu.Lock()
		verifier, ok := app.verifiers[state]
		delete(app.verifiers, state)
		app.mu.Unlock()
		if !ok {
			http.Error(w, "unknown state", http.StatusBadRequest)
			return
		}
		tok, err := app.rp.config.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		id, err := app.rp.verifier.Verify(r.Context(), raw)
		var claims struct {
			Username string   `json:"preferred_username"`
			AMR      []string `json:"amr"`
		}
		if err != nil || id.Nonce != "n-"+state || id.Claims(&claims) != nil {
			http.Error(w, "bad ID token", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Wiki</title><h1 id="hello">Hello ` + html.EscapeString(claims.Username) +
			`</h1><p id="amr">` + html.EscapeString(strings.Join(claims.AMR, " ")) + `</p>`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	app.URL = srv.URL
	return app
}

// TestBrowserSSO: a person signs into a small application through Portal's
// own pages in a real browser: the application sends them to Portal, Portal
// asks them to sign in (password, then a TOTP code) and to allow the
// application (it is not first-party), and the application greets them by
// name, told the sign-in used a password and a one-time code. Signing in to
// the application again goes straight through; with prompt=login Portal asks
// again (a recovery code this time). Screenshots of each page are saved
// beside TestBrowserFlow's.
func TestBrowserSSO(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	p := portaltest.Start(t, portaltest.Options{Config: testenv.RelaxedRates})
	out := outputDir(t)
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("carol", "carol-password-1")
	carol, _ := c.login("carol", "carol-password-1")
	secret, recovery := enrolTOTP(t, c, carol)
	app := newTestApp(t)
	app.rp = newRelyingParty(t, c, admin, p.URL, map[string]any{
		"name": "Team wiki", "first_party": false, "redirect_uris": []string{app.URL + "/callback"},
	})
	app.rp.config.RedirectURL = app.URL + "/callback"

	browserSlot(t)
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	bctx, stop := startBrowser(t, ctx, chrome)
	defer stop()
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var png []byte
			if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(out, name), png, 0o644)
		})
	}
	// startBrowser has started the browser for bctx's whole life; each step
	// below has a deadline of its own.
	var loc, consent, hello, amr string
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 20*time.Second)
		defer scancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			var body string
			_ = chromedp.Run(bctx, chromedp.Location(&loc), chromedp.Text("body", &body, byQuery))
			t.Fatalf("%s: %v (at %s: %q)", step, err, loc, body)
		}
	}
	greeted := func(step string) {
		t.Helper()
		hello, amr = "", ""
		run(step, chromedp.WaitVisible("#hello", byQuery),
			chromedp.Text("#hello", &hello, byQuery), chromedp.Text("#amr", &amr, byQuery), chromedp.Location(&loc))
		if hello != "Hello carol" || amr != "pwd otp" || !strings.HasPrefix(loc, app.URL+"/callback") {
			t.Fatalf("%s: the application shows %q (amr %q) at %s", step, hello, amr, loc)
		}
	}

	run("the application sends the browser to Portal's login",
		chromedp.Navigate(app.URL+"/login"),
		chromedp.WaitVisible("#username", byQuery),
		chromedp.Location(&loc), shot("sso-1-login.png"))
	if !strings.HasPrefix(loc, p.URL+"/login?next=") {
		t.Fatalf("the application's sign-in went to %s", loc)
	}
	run("sign in with a password: Portal asks for the code",
		chromedp.SendKeys("#username", "carol", byQuery),
		chromedp.SendKeys("#password", "carol-password-1", byQuery),
		chromedp.Click("#submit", byQuery),
		chromedp.WaitVisible("#otp", byQuery), shot("sso-2-code.png"))
	// The next time step's code, made when it is typed (the wait for a
	// browser slot can outlast a code made at the enrolment, which spent
	// the enrolment's step).
	code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	run("the TOTP code (and the password again)",
		chromedp.SendKeys("#password", "carol-password-1", byQuery),
		chromedp.SendKeys("#otp", code, byQuery),
		chromedp.Click("#submit", byQuery),
		chromedp.WaitVisible("#allow", byQuery),
		chromedp.Text("h1", &consent, byQuery), shot("sso-3-consent.png"))
	if !strings.Contains(consent, "Team wiki") {
		t.Fatalf("the consent page asks %q", consent)
	}
	run("allow the application", chromedp.Click("#allow", byQuery))
	greeted("after consent")
	run("the application's page", shot("sso-4-app.png"))

	run("a second sign-in to the application asks nothing", chromedp.Navigate(app.URL+"/login"))
	greeted("a second sign-in")

	run("prompt=login: Portal asks again though the browser is signed in",
		chromedp.Navigate(app.URL+"/login?prompt=login"),
		chromedp.WaitVisible("#username", byQuery), chromedp.Location(&loc))
	if !strings.HasPrefix(loc, p.URL+"/login?next=") {
		t.Fatalf("prompt=login went to %s, want Portal's login", loc)
	}
	run("sign in again, with a recovery code",
		chromedp.SendKeys("#username", "carol", byQuery),
		chromedp.SendKeys("#password", "carol-password-1", byQuery),
		chromedp.Click("#submit", byQuery),
		chromedp.WaitVisible("#otp", byQuery),
		chromedp.SendKeys("#password", "carol-password-1", byQuery),
		chromedp.SendKeys("#otp", recovery[0], byQuery),
		chromedp.Click("#submit", byQuery))
	greeted("after prompt=login")
}
