package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/portal-go/portal/internal/mail/mailtest"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// TestBrowserPasskeys walks the "done when" in headless Chromium
// with JavaScript on: register with an address, confirm it from the mail
// read off the SMTP server, enrol TOTP (the code computed here), sign out,
// sign in with password and code, add a passkey (Chromium's virtual
// authenticator, through the DevTools WebAuthn domain), sign out, sign in
// with the passkey alone, then with password and "Use a passkey" as the
// second factor, forget the password, reset it from the mailed link, and
// find every old session gone. WebAuthn needs a secure context and a
// domain as RP ID: Portal is reached as http://localhost:<port>, its
// accounts.publicURL.
func TestBrowserPasskeys(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	srv := mailtest.Start(t, mailtest.Options{})
	p := portaltest.Start(t, portaltest.Options{
		Config: "accounts:\n  requireVerifiedEmail: true\n",
		Env:    map[string]string{"PORTAL_SMTP_ADDRESS": srv.Addr, "PORTAL_SMTP_FROM": "portal@example.com"},
	})
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + u.Port()
	// The public URL is known once the port is: set it live. /api/docs
	// leaves the whitelist in the same change, to tell when it applied.
	doc := "accounts:\n  requireVerifiedEmail: true\n  publicURL: " + base + "\nauth:\n  whiteList: [" + strings.Join([]string{
		`"/login"`, `"/register"`, `"/healthz"`, `"/readyz"`, `"/static/*"`, `"/api/v1/login"`, `"/api/v1/register"`,
		`"/email/verify"`, `"/password/forgot"`, `"/password/reset"`, `"/api/v1/email/verify"`, `"/api/v1/password/forgot"`,
		`"/api/v1/password/reset"`, `"/api/openapi.json"`, `"/login/passkey"`, `"/api/v1/login/passkey/begin"`, `"/api/v1/login/passkey/finish"`}, ", ") + "]\n"
	tmp := filepath.Join(filepath.Dir(p.ConfigFile), "portal.yaml.new")
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.ConfigFile); err != nil {
		t.Fatal(err)
	}
	api := newClient(t, p)
	poll.Wait(t, 10*time.Second, "the public URL "+base+" to apply", func() bool {
		return api.do("GET", "/api/docs", "", nil).StatusCode == http.StatusUnauthorized
	})

	browserSlot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*browserTimeout)
	defer cancel()
	bctx, stop := startBrowser(t, ctx, chrome)
	defer stop()
	// Script errors (a CSP refusal among them) go to the log.
	chromedp.ListenTarget(bctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			t.Logf("page exception: %s", e.ExceptionDetails.Error())
		}
	})
	run := func(ctx context.Context, step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	submit := func(ctx context.Context, step string, want int64, actions ...chromedp.Action) {
		t.Helper()
		rsp, err := chromedp.RunResponse(ctx, actions...)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if rsp == nil || rsp.Status != want {
			t.Fatalf("%s: response %+v, want status %d", step, statusOf(rsp), want)
		}
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		var s string
		run(ctx, "read "+sel, chromedp.Text(sel, &s, byQuery, chromedp.NodeVisible))
		return strings.TrimSpace(s)
	}
	// at waits until the page (after a script's navigation) is path.
	at := func(ctx context.Context, step, path string) {
		t.Helper()
		poll.Wait(t, browserTimeout, step, func() bool {
			// A read while the page navigates fails: try again.
			var ok bool
			err := chromedp.Run(ctx, chromedp.Evaluate(`location.pathname === `+jsString(path)+` && document.readyState === "complete"`, &ok))
			return err == nil && ok
		})
	}
	const (
		user  = "key_user"
		email = "key.user@example.com"
		pw1   = "first-password-123"
		pw2   = "second-password-456"
	)

	// Register, confirm the address from the mail.
	submit(bctx, "open /register", 200, chromedp.Navigate(base+"/register"))
	run(bctx, "fill register form",
		chromedp.SendKeys("#username", user, byQuery),
		chromedp.SendKeys("#email", email, byQuery),
		chromedp.SendKeys("#password", pw1, byQuery),
		chromedp.SendKeys("#confirm", pw1, byQuery),
	)
	submit(bctx, "register", 200, chromedp.Click("#submit", byQuery))
	token := mailedLink(t, srv, email, base, "/email/verify", 0)
	submit(bctx, "open the verification link", 200, chromedp.Navigate(base+"/email/verify?token="+token))
	submit(bctx, "confirm", 200, chromedp.Click("#submit", byQuery))

	signIn := func(ctx context.Context, pw string, want int64) {
		t.Helper()
		submit(ctx, "open /login", 200, chromedp.Navigate(base+"/login"))
		run(ctx, "fill login form",
			chromedp.SendKeys("#username", user, byQuery),
			chromedp.SendKeys("#password", pw, byQuery),
		)
		submit(ctx, "login", want, chromedp.Click("#submit", byQuery))
	}
	signOut := func(ctx context.Context) {
		t.Helper()
		submit(ctx, "open /account", 200, chromedp.Navigate(base+"/account"))
		submit(ctx, "log out", 200, chromedp.Click("#logout", byQuery))
	}
	signIn(bctx, pw1, 200)

	// TOTP, the first code computed here.
	submit(bctx, "open /account", 200, chromedp.Navigate(base+"/account"))
	submit(bctx, "set up TOTP", 200, chromedp.Click("#totp-setup", byQuery))
	secret := text(bctx, "#totp-secret")
	enrolled := time.Now()
	code, err := totp.GenerateCode(secret, enrolled)
	if err != nil {
		t.Fatal(err)
	}
	run(bctx, "fill the code", chromedp.SendKeys("#code", code, byQuery))
	submit(bctx, "turn TOTP on", 200, chromedp.Click("#confirm", byQuery))
	var recovery []string
	run(bctx, "read recovery codes", chromedp.Evaluate(`[...document.querySelectorAll('#recovery-codes code')].map(e => e.textContent)`, &recovery))
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes shown", len(recovery))
	}

	// Sign out; sign in with password and the next code.
	signOut(bctx)
	signIn(bctx, pw1, 401)
	next, _ := totp.GenerateCode(secret, enrolled.Add(30*time.Second))
	run(bctx, "fill password and code",
		chromedp.WaitVisible("#otp", byQuery),
		chromedp.SendKeys("#password", pw1, byQuery),
		chromedp.SendKeys("#otp", next, byQuery),
	)
	submit(bctx, "sign in with the code", 200, chromedp.Click("#submit", byQuery))

	// A virtual platform authenticator: resident keys, user verification.
	run(bctx, "virtual authenticator", chromedp.ActionFunc(func(ctx context.Context) error {
		if err := webauthn.Enable().Do(ctx); err != nil {
			return err
		}
		_, err := webauthn.AddVirtualAuthenticator(&webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		}).Do(ctx)
		return err
	}))

	// Add a passkey on the account page.
	submit(bctx, "open /account", 200, chromedp.Navigate(base+"/account"))
	run(bctx, "name the passkey", chromedp.WaitVisible("#passkey-add", byQuery),
		chromedp.SetValue("#passkey-name", "Test laptop", byQuery))
	run(bctx, "add a passkey", chromedp.Click("#passkey-add", byQuery))
	run(bctx, "passkey added", chromedp.WaitVisible("#notice", byQuery))
	if got := text(bctx, "#notice"); !strings.Contains(got, "Passkey added") {
		t.Fatalf("after adding, the page says %q", got)
	}
	var names []string
	run(bctx, "read passkeys", chromedp.Evaluate(`[...document.querySelectorAll('#passkeys input[name=name]')].map(e => e.value)`, &names))
	if len(names) != 1 || names[0] != "Test laptop" {
		t.Fatalf("passkeys listed: %q", names)
	}

	// The section with a passkey in it fits a phone and a desktop.
	for _, vp := range []struct{ w, h int64 }{{390, 844}, {1280, 900}} {
		run(bctx, "viewport", chromedp.EmulateViewport(vp.w, vp.h))
		submit(bctx, "open /account", 200, chromedp.Navigate(base+"/account"))
		var wide []string
		run(bctx, "measure", chromedp.Evaluate(`(() => {
			const inner = window.innerWidth, wide = [];
			if (document.documentElement.scrollWidth > inner) wide.push('page ' + document.documentElement.scrollWidth);
			for (const el of document.querySelectorAll('#passkeys *, #passkey-add-form *')) {
				if (el.closest('thead, .sr-only')) continue;
				const r = el.getBoundingClientRect();
				if (r.width > 0 && r.right > inner + 1) wide.push(el.tagName.toLowerCase() + ' ' + Math.round(r.right));
			}
			return wide;
		})()`, &wide))
		if len(wide) > 0 {
			t.Errorf("/account at %dx%d: too wide: %v", vp.w, vp.h, wide)
		}
		if dir := os.Getenv("PORTAL_SCREENSHOTS"); dir != "" {
			var png []byte
			run(bctx, "screenshot", chromedp.FullScreenshot(&png, 100))
			_ = os.WriteFile(filepath.Join(dir, "passkeys-"+strconv.FormatInt(vp.w, 10)+".png"), png, 0o644)
		}
	}

	// Sign out; sign in with the passkey alone.
	signOut(bctx)
	submit(bctx, "open /login", 200, chromedp.Navigate(base+"/login"))
	run(bctx, "sign in with a passkey", chromedp.WaitVisible("#passkey-login", byQuery), chromedp.Click("#passkey-login", byQuery))
	at(bctx, "home after the passkey", "/")
	submit(bctx, "open /account", 200, chromedp.Navigate(base+"/account"))
	if got := text(bctx, "#passkeys"); strings.Contains(got, "Never") {
		t.Fatalf("the passkey's last use is not shown: %q", got)
	}

	// Sign out; password, then "Use a passkey" as the second factor.
	signOut(bctx)
	signIn(bctx, pw1, 401)
	run(bctx, "second step with a passkey",
		chromedp.WaitVisible("#use-passkey", byQuery),
		chromedp.SendKeys("#password", pw1, byQuery),
		chromedp.Click("#use-passkey", byQuery))
	at(bctx, "home after password and passkey", "/")

	// Sessions to end: the browser's, and one through the API.
	var cookies []*network.Cookie
	run(bctx, "read cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().Do(ctx)
		return err
	}))
	old := ""
	for _, ck := range cookies {
		if ck.Name == "portal_session" {
			old = ck.Value
		}
	}
	if old == "" {
		t.Fatal("no session cookie after signing in")
	}
	m := api.expect(api.do("POST", "/api/v1/login", "", map[string]string{"username": user, "password": pw1, "otp": recovery[0]}), 200).json(t)
	second, _ := m["token"].(string)
	api.expect(api.do("GET", "/api/v1/me", old, nil), 200)

	// Forgot the password; reset it from the mailed link.
	seen := len(srv.To(email))
	submit(bctx, "open /login", 200, chromedp.Navigate(base+"/login"))
	submit(bctx, "open forgot", 200, chromedp.Click("#forgot", byQuery))
	run(bctx, "fill forgot form", chromedp.SendKeys("#login", email, byQuery))
	submit(bctx, "ask for a link", 202, chromedp.Click("#submit", byQuery))
	token = mailedLink(t, srv, email, base, "/password/reset", seen)
	submit(bctx, "open the reset link", 200, chromedp.Navigate(base+"/password/reset?token="+token))
	run(bctx, "fill reset form",
		chromedp.SendKeys("#new_password", pw2, byQuery),
		chromedp.SendKeys("#confirm", pw2, byQuery),
	)
	submit(bctx, "reset", 200, chromedp.Click("#submit", byQuery))

	// Every old session is gone; the passkey still signs in.
	for _, tok := range []string{old, second} {
		api.expect(api.do("GET", "/api/v1/me", tok, nil), 401)
	}
	submit(bctx, "open /login", 200, chromedp.Navigate(base+"/login"))
	run(bctx, "passkey after the reset", chromedp.WaitVisible("#passkey-login", byQuery), chromedp.Click("#passkey-login", byQuery))
	at(bctx, "home after the reset", "/")
}

// jsString quotes s for a script.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
