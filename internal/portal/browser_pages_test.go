package portal_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// axeSHA256 pins the vendored axe-core (testdata/axe-core/README.md).
const axeSHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"

// axeSource is the vendored axe-core, checked against its pinned hash.
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != axeSHA256 {
		t.Fatalf("testdata/axe-core/axe.min.js has SHA-256 %x, want %s: not the pinned release", sum, axeSHA256)
	}
	return string(b)
}

// viewport is a screen a page must fit.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

// viewports are the screens every page must fit: a phone and a laptop.
var viewports = []viewport{{"phone", 390, 844, true}, {"laptop", 1280, 900, false}}

// TestBrowserPages opens every page, signed out and as the admin, at a
// phone's and a laptop's size, in English and in Chinese. On each it checks
// that nothing is wider than the viewport, that the page is in the language
// chosen, and that axe-core finds no serious or critical accessibility
// violation. It checks that each destructive action asks first, and (with
// PORTAL_SCREENSHOTS=dir) saves the README's screenshots.
func TestBrowserPages(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	p := portaltest.Start(t, portaltest.Options{})
	axe := axeSource(t)
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("pages_bob", "bob-password-12")
	c.login("pages_bob", "bob-password-12") // a session, and an audit entry
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "pages_bob", "password": "wrong-password-1"}), http.StatusUnauthorized)
	var found struct {
		Users []struct {
			ID string `json:"id"`
		} `json:"users"`
	}
	if err := json.Unmarshal(c.expect(c.do("GET", "/api/v1/admin/users?q=pages_bob", admin, nil), http.StatusOK).body, &found); err != nil || len(found.Users) != 1 {
		t.Fatalf("find bob: %v %+v", err, found)
	}
	bob := found.Users[0].ID
	// A second config version, so that the history offers a rollback.
	c.expect(c.do("PUT", "/api/v1/admin/config", admin, map[string]any{"login": map[string]any{"maxFailures": 6}}), http.StatusOK)

	signedOut := []string{"/login", "/register", "/api/docs", "/password/forgot", "/password/reset?token=not-a-token", "/email/verify?token=not-a-token"}
	signedIn := []string{"/", "/account", "/admin", "/admin/users", "/admin/users/" + bob, "/admin/config",
		"/admin/services", "/admin/audit", "/admin/lockouts", "/admin/roles", "/admin/mail", "/admin/oidc", "/no-such-page",
		// The lists' filtered and sorted states, an empty one among them.
		"/admin/users?sort=last_login&order=desc&status=active&login=30d", "/admin/users?status=locked&created_from=2026-01-01",
		"/admin/audit?kind=login&from=2026-01-01&to=2099-12-31"}
	shots := os.Getenv("PORTAL_SCREENSHOTS")
	// Each language in its own browser, at once (as many as browserSlots
	// allows): every action below only reads, or is cancelled at its
	// confirm page. Each page is loaded once and checked at both screen
	// sizes, the viewport switched in place: the layout follows the
	// viewport's width (the stylesheet's media queries are all widths;
	// no script reads the size), so a page need not be loaded again for
	// each size (it was a browser per size and language, twice the page
	// loads).
	t.Run("languages", func(t *testing.T) {
		// Each in a goroutine, not a parallel subtest: those would wait
		// for the package's parallel slots behind every queued test; the
		// browser slots are the limit that matters.
		var wg sync.WaitGroup
		defer wg.Wait()
		for _, lang := range []string{"en", "zh-CN"} {
			wg.Go(func() {
				t.Run(lang, func(t *testing.T) {
					browserSlot(t)
					ctx, cancel := context.WithTimeout(t.Context(), 6*browserTimeout)
					defer cancel()
					bctx, stop := startBrowser(t, ctx, chrome)
					defer stop()
					run := func(step string, actions ...chromedp.Action) {
						t.Helper()
						if err := chromedp.Run(bctx, actions...); err != nil {
							t.Fatalf("%s: %v", step, err)
						}
					}
					open := func(path string) {
						t.Helper()
						run("open "+path, chromedp.Navigate(p.URL+path), chromedp.WaitReady("main", byQuery))
					}
					// screen switches the viewport to vp's size, and gives the
					// page up to a second to take it. A page too wide for a
					// phone never does (the phone zooms out to show it); check
					// reports that.
					screen := func(vp viewport) {
						t.Helper()
						opts := []chromedp.EmulateViewportOption{}
						if vp.mobile {
							opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
						}
						run("viewport "+vp.name, chromedp.EmulateViewport(vp.width, vp.height, opts...))
						_ = chromedp.Run(bctx, chromedp.Poll(fmt.Sprintf("window.innerWidth === %d", vp.width), nil,
							chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(time.Second)))
					}
					// axe-core checks each page at one size per language: on a
					// phone in English and on a laptop in Chinese, so that every
					// page is checked at both sizes and in both languages (what
					// axe finds depends on the layout or on the lang attribute,
					// not on both at once); it was half of this test's time.
					axeAt := func(vp viewport) bool { return vp.mobile == (lang == "en") }

					// check runs the per-page assertions on the page now shown,
					// at each screen size, and leaves it at the laptop's.
					check := func(where string) {
						t.Helper()
						for _, vp := range viewports {
							screen(vp)
							where := lang + " " + vp.name + " " + where
							var got struct {
								Lang        string   `json:"lang"`
								ScrollWidth float64  `json:"scrollWidth"`
								Inner       float64  `json:"inner"`
								Wide        []string `json:"wide"`
							}
							run(where+": measure", chromedp.Evaluate(`(() => {
						const inner = window.innerWidth, wide = [];
						for (const el of document.querySelectorAll('body *')) {
							if (el.closest('.scroll, pre, .skip, .sr-only, thead')) continue;
							const r = el.getBoundingClientRect();
							if (r.width > 0 && r.right > inner + 1) wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + Math.round(r.right));
						}
						return {lang: document.documentElement.lang, scrollWidth: document.documentElement.scrollWidth, inner, wide: wide.slice(0, 5)};
					})()`, &got))
							if got.Lang != lang {
								t.Errorf("%s: html lang %q, want %q", where, got.Lang, lang)
							}
							if got.Inner != float64(vp.width) {
								t.Errorf("%s: viewport %v wide, want %d", where, got.Inner, vp.width)
							}
							if got.ScrollWidth > got.Inner || len(got.Wide) > 0 {
								t.Errorf("%s: page %v px wide in a %v px viewport; too wide: %v", where, got.ScrollWidth, got.Inner, got.Wide)
							}
							if !axeAt(vp) {
								continue
							}
							var violations []string
							run(where+": axe", chromedp.Evaluate(`axe.run(document, {resultTypes: ['violations']}).then(r =>
						r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
							.map(v => v.impact + ' ' + v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))`, &violations,
								func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
							for _, v := range violations {
								t.Errorf("%s: axe: %s", where, v)
							}
						}
					}

					// Chromium loads axe into every page itself.
					run("load axe-core into every page", chromedp.ActionFunc(func(ctx context.Context) error {
						_, err := page.AddScriptToEvaluateOnNewDocument(axe).Do(ctx)
						return err
					}))
					run("forget the session", network.ClearBrowserCookies())
					open("/lang?to=" + lang + "&next=/login")
					for _, path := range signedOut {
						open(path)
						check(path)
					}
					if shots != "" && lang == "en" {
						open("/login")
						saveShot(t, bctx, filepath.Join(shots, "1-sign-in.png"))
					}
					open("/login")
					run("sign in", chromedp.SendKeys("#username", "admin", byQuery),
						chromedp.SendKeys("#password", testenv.AdminPassword, byQuery),
						chromedp.Click("#submit", byQuery), chromedp.WaitVisible("#logout", byQuery))
					for _, path := range signedIn {
						open(path)
						check(path)
					}
					// Sorting needs no script: on a laptop a column header is a
					// link (the other way round when clicked again); on a phone,
					// where the header is for screen readers, the filter form's
					// order.
					for _, vp := range viewports {
						screen(vp)
						open("/admin/users")
						if vp.mobile {
							run("sort by created", chromedp.SetValue("#sort", "created", byQuery), chromedp.SetValue("#order", "desc", byQuery),
								chromedp.Click("#filter", byQuery), chromedp.WaitReady(`th[aria-sort="descending"] #sort-created`, byQuery))
						} else {
							// Followed as a browser follows a link (a click can land
							// on the page being left).
							for _, want := range []string{"descending", "ascending"} {
								var href string
								run("read the header's link", chromedp.AttributeValue("#sort-created", "href", &href, nil, byQuery))
								open(href)
								run("sorted "+want, chromedp.WaitReady(`th[aria-sort="`+want+`"] #sort-created`, byQuery))
							}
						}
						var sorted string
						run("read aria-sort", chromedp.AttributeValue(`th:first-child`, "aria-sort", &sorted, nil, byQuery))
						if sorted != "none" {
							t.Errorf("%s %s: the name column says aria-sort=%q while sorted by creation", lang, vp.name, sorted)
						}
						if vp.mobile {
							// The admin tabs are folded into a menu that opens.
							open("/admin/users")
							var shown bool
							run("menu", chromedp.Click("details.menu summary", byQuery),
								chromedp.Evaluate(`document.querySelector('details.menu nav a[aria-current="page"]').getBoundingClientRect().height > 0`, &shown))
							if !shown {
								t.Errorf("%s %s: the admin menu does not open", lang, vp.name)
							}
						}
					}
					if shots != "" && lang == "en" {
						open("/")
						saveShot(t, bctx, filepath.Join(shots, "2-home.png"))
						open("/admin/users")
						saveShot(t, bctx, filepath.Join(shots, "3-admin-users.png"))
					}

					// Every destructive action asks first, naming what it will do;
					// the confirm pages pass the same checks. The buttons are
					// pressed at both sizes in turn.
					for i, btn := range []string{"#delete", "#disable", "#save-roles"} {
						screen(viewports[i%len(viewports)])
						open("/admin/users/" + bob)
						run("click "+btn, chromedp.Click(btn, byQuery), chromedp.WaitVisible("#do-confirm", byQuery))
						var what string
						run("read confirm", chromedp.Text("#confirm-what", &what, byQuery))
						if !strings.Contains(what, "pages_bob") {
							t.Errorf("%s: confirm page for %s says %q, without the user's name", lang, btn, what)
						}
						check("confirm " + btn)
						run("cancel", chromedp.Click("#cancel", byQuery), chromedp.WaitVisible("#subject", byQuery))
					}
					open("/account")
					run("end others", chromedp.Click("#end-others", byQuery), chromedp.WaitVisible("#do-confirm", byQuery))
					open("/admin/users/" + bob)
					run("end bob's session", chromedp.Click("#sessions button", byQuery), chromedp.WaitVisible("#do-confirm", byQuery))
					// The config form: its diff page, every problem beside its
					// field, and a rollback's confirm page.
					open("/admin/config")
					run("review config", chromedp.Click("#review-form", byQuery), chromedp.WaitVisible("#do-confirm", byQuery))
					check("config diff")
					open("/admin/config")
					run("bad config", chromedp.SetValue("#login-maxFailures", "0", byQuery), chromedp.SetValue("#auth-whiteList", "relative", byQuery),
						chromedp.Click("#review-form", byQuery), chromedp.WaitVisible("#login-maxFailures-error", byQuery),
						chromedp.WaitVisible("#auth-whiteList-error", byQuery))
					check("config problems")
					open("/admin/config")
					run("rollback", chromedp.Click("#rollback-1", byQuery), chromedp.WaitVisible("#do-confirm", byQuery))
					check("config rollback")
				})
			})
		}
	})
	// Nothing was deleted, disabled or promoted: every action above was
	// cancelled at its confirm page.
	var u struct {
		User struct {
			Disabled bool     `json:"disabled"`
			Roles    []string `json:"roles"`
		} `json:"user"`
	}
	r := c.expect(c.do("GET", "/api/v1/admin/users/"+bob, admin, nil), http.StatusOK)
	if err := json.Unmarshal(r.body, &u); err != nil || u.User.Disabled || len(u.User.Roles) != 1 {
		t.Errorf("after cancelled actions bob is %+v (%v)", u.User, err)
	}
}

// saveShot saves the page as a PNG, the viewport's width and the page's
// whole height.
func saveShot(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
