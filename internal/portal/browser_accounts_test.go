package portal_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/portal-go/portal/internal/mail/mailtest"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// TestBrowserAccountRecovery walks what a person does with the mail Portal
// sends, in headless Chromium: register with an address, open the link read
// from the SMTP server, confirm, set a display name, sign out, forget the
// password, reset it from the mailed link in a second browser window whose
// session the reset ends, and sign in with the new password. No page needs
// JavaScript: it runs with scripts off.
func TestBrowserAccountRecovery(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	srv := mailtest.Start(t, mailtest.Options{})
	p := portaltest.Start(t, portaltest.Options{
		Config: "accounts:\n  publicURL: https://portal.example\n  requireVerifiedEmail: true\n",
		Env:    map[string]string{"PORTAL_SMTP_ADDRESS": srv.Addr, "PORTAL_SMTP_FROM": "portal@example.com"},
	})
	const base = "https://portal.example"

	browserSlot(t)
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	bctx, stop := startBrowser(t, ctx, chrome)
	defer stop()
	// JavaScript off: every step is a plain form.
	run := func(ctx context.Context, step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	run(bctx, "scripts off", chromedp.ActionFunc(emulationScriptsOff))
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
	const (
		user  = "mail_user"
		email = "mail.user@example.com"
		pw1   = "first-password-123"
		pw2   = "second-password-456"
	)

	// Register with an address.
	submit(bctx, "open /register", 200, chromedp.Navigate(p.URL+"/register"))
	run(bctx, "fill register form",
		chromedp.SendKeys("#username", user, byQuery),
		chromedp.SendKeys("#email", email, byQuery),
		chromedp.SendKeys("#password", pw1, byQuery),
		chromedp.SendKeys("#confirm", pw1, byQuery),
	)
	submit(bctx, "register", 200, chromedp.Click("#submit", byQuery))

	// Signing in before confirming is refused.
	run(bctx, "fill login form",
		chromedp.SendKeys("#username", user, byQuery),
		chromedp.SendKeys("#password", pw1, byQuery),
	)
	submit(bctx, "unverified login", 403, chromedp.Click("#submit", byQuery))
	if e := text(bctx, ".error"); !strings.Contains(strings.ToLower(e), "confirm your email") {
		t.Fatalf("unverified login says %q", e)
	}

	// The verification mail, read from the SMTP server: its link, opened
	// here (the public URL is the test's name for this Portal).
	token := mailedLink(t, srv, email, base, "/email/verify", 0)
	submit(bctx, "open the verification link", 200, chromedp.Navigate(p.URL+"/email/verify?token="+token))
	submit(bctx, "confirm", 200, chromedp.Click("#submit", byQuery))
	if d := text(bctx, "#done"); !strings.Contains(d, email) {
		t.Fatalf("verification page says %q", d)
	}
	// The same link again: refused.
	submit(bctx, "open the link again", 200, chromedp.Navigate(p.URL+"/email/verify?token="+token))
	submit(bctx, "confirm again", 400, chromedp.Click("#submit", byQuery))

	// Sign in; the account page shows the confirmed address; set a name.
	signIn := func(ctx context.Context, pw string, want int64) {
		t.Helper()
		submit(ctx, "open /login", 200, chromedp.Navigate(p.URL+"/login"))
		run(ctx, "fill login form",
			chromedp.SendKeys("#username", user, byQuery),
			chromedp.SendKeys("#password", pw, byQuery),
		)
		submit(ctx, "login", want, chromedp.Click("#submit", byQuery))
	}
	signIn(bctx, pw1, 200)
	submit(bctx, "open /account", 200, chromedp.Navigate(p.URL+"/account"))
	if s := text(bctx, "#email_state"); s != "Confirmed." {
		t.Fatalf("account page: address %q", s)
	}
	run(bctx, "set a display name", chromedp.SendKeys("#display_name", "Mail User", byQuery))
	submit(bctx, "save profile", 200, chromedp.Click("#save_profile", byQuery))
	var name string
	run(bctx, "read display name", chromedp.Value("#display_name", &name, byQuery))
	if name != "Mail User" {
		t.Fatalf("display name %q after saving", name)
	}

	// Two factors: set up from the account page, the QR code served as an
	// image, the key read from the page, the first code computed here.
	submit(bctx, "open /account", 200, chromedp.Navigate(p.URL+"/account"))
	submit(bctx, "set up TOTP", 200, chromedp.Click("#totp-setup", byQuery))
	secret := text(bctx, "#totp-secret")
	var qrLoaded bool
	run(bctx, "QR image", chromedp.Evaluate(`document.querySelector('#qr').naturalWidth === 256`, &qrLoaded))
	if !qrLoaded {
		t.Fatal("the QR code image did not load")
	}
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

	// Sign out, sign in with password and code: the second step asks for
	// the code and the password again; the page never holds the password.
	submit(bctx, "log out", 200, chromedp.Click("#logout", byQuery))
	signIn(bctx, pw1, 401)
	var html string
	run(bctx, "second step", chromedp.WaitVisible("#otp", byQuery), chromedp.OuterHTML("html", &html, byQuery))
	if strings.Contains(html, pw1) {
		t.Fatal("the second step's page holds the password")
	}
	next, _ := totp.GenerateCode(secret, enrolled.Add(30*time.Second))
	run(bctx, "fill password and code",
		chromedp.SendKeys("#password", pw1, byQuery),
		chromedp.SendKeys("#otp", next, byQuery),
	)
	submit(bctx, "sign in with the code", 200, chromedp.Click("#submit", byQuery))
	if loc := pageURL(t, bctx); loc.Path != "/" {
		t.Fatalf("after the code: at %s", loc)
	}

	// The browser's session token, kept to try after the reset, and a
	// second session opened through the API: the reset must end both.
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
	api := newClient(t, p)
	m := api.expect(api.do("POST", "/api/v1/login", "", map[string]string{"username": user, "password": pw1, "otp": recovery[1]}), 200).json(t)
	second, _ := m["token"].(string)
	api.expect(api.do("GET", "/api/v1/me", old, nil), 200)

	// Forgot the password (the link is on the login page).
	seen := len(srv.To(email))
	submit(bctx, "open /login", 200, chromedp.Navigate(p.URL+"/login"))
	submit(bctx, "open forgot", 200, chromedp.Click("#forgot", byQuery))
	run(bctx, "fill forgot form", chromedp.SendKeys("#login", email, byQuery))
	submit(bctx, "ask for a link", 202, chromedp.Click("#submit", byQuery))
	run(bctx, "sent notice", chromedp.WaitVisible("#sent", byQuery))

	// Reset from the mailed link.
	token = mailedLink(t, srv, email, base, "/password/reset", seen)
	submit(bctx, "open the reset link", 200, chromedp.Navigate(p.URL+"/password/reset?token="+token))
	run(bctx, "fill reset form",
		chromedp.SendKeys("#new_password", pw2, byQuery),
		chromedp.SendKeys("#confirm", pw2, byQuery),
	)
	submit(bctx, "reset", 200, chromedp.Click("#submit", byQuery))
	if d := text(bctx, "#done"); !strings.Contains(d, user) {
		t.Fatalf("reset page says %q", d)
	}

	// Every old session is gone: the browser's and the API's.
	for _, tok := range []string{old, second} {
		api.expect(api.do("GET", "/api/v1/me", tok, nil), 401)
	}
	submit(bctx, "account page after the reset", 200, chromedp.Navigate(p.URL+"/account"))
	if loc := pageURL(t, bctx); loc.Path != "/login" {
		t.Fatalf("after the reset the browser is still signed in: at %s", loc)
	}
	// The old password is refused; the new one, with a recovery code, works.
	signIn(bctx, pw1, 401)
	if n := countOf(t, bctx, "#otp"); n != 0 {
		t.Fatal("a wrong password was asked for a code")
	}
	signIn(bctx, pw2, 401)
	run(bctx, "fill password and recovery code",
		chromedp.WaitVisible("#otp", byQuery),
		chromedp.SendKeys("#password", pw2, byQuery),
		chromedp.SendKeys("#otp", recovery[0], byQuery),
	)
	submit(bctx, "sign in with a recovery code", 200, chromedp.Click("#submit", byQuery))
	if loc := pageURL(t, bctx); loc.Path != "/" {
		t.Fatalf("after signing in: at %s", loc)
	}
}

// countOf counts the elements sel matches on the page.
func countOf(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	var n int
	if err := chromedp.Run(ctx, chromedp.Evaluate(`document.querySelectorAll(`+strconv.Quote(sel)+`).length`, &n)); err != nil {
		t.Fatal(err)
	}
	return n
}

func statusOf(r *network.Response) any {
	if r == nil {
		return nil
	}
	return r.Status
}

// emulationScriptsOff turns JavaScript off in the tab.
func emulationScriptsOff(ctx context.Context) error {
	return emulation.SetScriptExecutionDisabled(true).Do(ctx)
}
