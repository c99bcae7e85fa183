package portal_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// browserTimeout bounds the whole browser test, Chromium's start included.
const browserTimeout = 90 * time.Second

// browserSlots bounds how many Chromiums the package's tests run at once.
// The browser tests are parallel to every other test (most of which wait
// on processes and timeouts), but Chromium is heavy on two cores: two at
// once (three or more made each slower by more than they gained). A
// browser test takes a browser slot and no test slot (testSlots): the
// browser tests are the package's longest chain, and start at once.
var browserSlots = make(chan struct{}, 2)

// browserSlot waits for a browser slot and holds it until t ends. Take it
// before starting a deadline that the browser's work must meet.
func browserSlot(t *testing.T) {
	t.Helper()
	portal.TakeSlot(t, browserSlots, "browser")
}

// TestBrowserFlow drives a headless Chromium through what a person does:
// the login redirect, registering, signing in, seeing the home page, a
// rejected login whose username must come back as text, and logging out.
// It saves a full-page PNG of every page it checks.
func TestBrowserFlow(t *testing.T) {
	t.Parallel()
	chrome := findChromium(t)
	p := portaltest.Start(t, portaltest.Options{})
	out := outputDir(t)
	browserSlot(t)

	// Everything below shares one deadline; the browser dies with it.
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()

	bctx, stop := startBrowser(t, ctx, chrome)
	defer stop()

	// What the pages say in the console (CSP violations, failed loads, script
	// errors) goes to the test log; a JavaScript dialog means a script ran.
	var mu sync.Mutex
	var dialogs []string
	chromedp.ListenTarget(bctx, func(ev any) {
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			mu.Lock()
			dialogs = append(dialogs, fmt.Sprintf("%s: %q", ev.Type, ev.Message))
			mu.Unlock()
			go func() { _ = chromedp.Run(bctx, page.HandleJavaScriptDialog(false)) }()
		case *cdplog.EventEntryAdded:
			t.Logf("browser %s %s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL)
		case *runtime.EventExceptionThrown:
			t.Logf("browser exception: %s", ev.ExceptionDetails.Error())
		}
	})
	start := time.Now()
	if err := chromedp.Run(bctx, cdplog.Enable()); err != nil {
		t.Fatalf("start chromium %s: %v", chrome, err)
	}
	t.Logf("chromium %s started in %v", chrome, time.Since(start).Round(time.Millisecond))

	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// navigate runs actions that load a page (Navigate, or a Click that
	// submits a form) and returns the final response, after redirects.
	navigate := func(step string, actions ...chromedp.Action) *network.Response {
		t.Helper()
		rsp, err := chromedp.RunResponse(bctx, actions...)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if rsp == nil {
			t.Fatalf("%s: no document response", step)
		}
		return rsp
	}
	location := func(want string) {
		t.Helper()
		var got string
		run("read location", chromedp.Location(&got))
		if got != p.URL+want {
			t.Fatalf("location = %s, want %s", got, p.URL+want)
		}
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Text(sel, &s, byQuery, chromedp.NodeVisible))
		return strings.TrimSpace(s)
	}
	shot := func(name string) {
		t.Helper()
		var png []byte
		run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
		f := filepath.Join(out, name+".png")
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatalf("save screenshot: %v", err)
		}
	}
	visible := func(sels ...string) chromedp.Action {
		var tasks chromedp.Tasks
		for _, s := range sels {
			tasks = append(tasks, chromedp.WaitVisible(s, byQuery))
		}
		return tasks
	}
	wantStatus := func(step string, rsp *network.Response, want int64) {
		t.Helper()
		if rsp.Status != want {
			t.Fatalf("%s: status %d, want %d (%s)", step, rsp.Status, want, rsp.URL)
		}
	}

	const (
		user     = "browser_user"
		password = "browser-password-1234"
	)

	// 1. Home without a session: sent to the login page, which returns to /.
	rsp := navigate("open /", chromedp.Navigate(p.URL+"/"))
	wantStatus("open /", rsp, 200)
	run("login page", visible("#username", "#password", "#submit"))
	location("/login?next=%2F")
	shot("01-login")

	// 2. Register through the form.
	navigate("open /register", chromedp.Navigate(p.URL+"/register"))
	run("register page", visible("#username", "#password", "#confirm", "#submit"))
	if h := text("h1"); h != "Create an account" {
		t.Errorf("register heading = %q", h)
	}
	shot("02-register")
	run("fill register form",
		chromedp.SendKeys("#username", user, byQuery),
		chromedp.SendKeys("#password", password, byQuery),
		chromedp.SendKeys("#confirm", password, byQuery),
	)
	rsp = navigate("submit register form", chromedp.Click("#submit", byQuery))
	wantStatus("register", rsp, 200)
	run("login page after register", visible(".notice", "#username", "#password", "#submit"))
	if loc := pageURL(t, bctx); loc.Path != "/login" || loc.Query().Get("registered") != "1" {
		t.Fatalf("after register: location %s, want /login?registered=1", loc)
	}
	if n := text(".notice"); !strings.Contains(n, "Account created") {
		t.Fatalf("after register: notice %q, want it to say Account created", n)
	}
	shot("03-register-done")

	// 3. Sign in through the form: back to /, the name shown as text.
	run("fill login form",
		chromedp.SendKeys("#username", user, byQuery),
		chromedp.SendKeys("#password", password, byQuery),
	)
	rsp = navigate("submit login form", chromedp.Click("#submit", byQuery))
	wantStatus("login", rsp, 200)
	run("home page", visible("#who", "#username", "#logout"))
	location("/")
	if got := text("#username"); got != user {
		t.Errorf("home #username = %q, want %q", got, user)
	}
	if got := text("#who"); got != user {
		t.Errorf("header #who = %q, want %q", got, user)
	}
	shot("04-home")

	// 4. A rejected login re-renders the username it was given, as text: the
	// input holds the literal characters and no script element appears.
	const evil = "<script>alert(1)</script>"
	navigate("open /login", chromedp.Navigate(p.URL+"/login"))
	run("fill login form with markup",
		visible("#username", "#password", "#submit"),
		chromedp.SendKeys("#username", evil, byQuery),
		chromedp.SendKeys("#password", "not-the-password-1", byQuery),
	)
	rsp = navigate("submit login form with markup", chromedp.Click("#submit", byQuery))
	wantStatus("rejected login", rsp, 401)
	run("login error page", visible(".error", "#username", "#submit"))
	location("/login")
	if e := text(".error"); e != "Wrong username or password." {
		t.Errorf("login error = %q", e)
	}
	var value string
	var noScript bool
	run("inspect rejected login page",
		chromedp.Value("#username", &value, byQuery),
		// Only our static files: the time zone, and the passkey ceremony.
		chromedp.Evaluate(`[...document.scripts].every(s => s.src === location.origin + '/static/portal.js' || s.src === location.origin + '/static/passkeys.js')`, &noScript),
	)
	if value != evil {
		t.Errorf("username field holds %q, want the literal %q", value, evil)
	}
	if !noScript {
		t.Errorf("a script element was injected into the login page")
	}
	shot("05-escaped-error")

	// 5. Log out from the header: back to the login page, and / is closed.
	navigate("open / again", chromedp.Navigate(p.URL+"/"))
	run("home page again", visible("#who", "#logout"))
	location("/")
	rsp = navigate("log out", chromedp.Click("#logout", byQuery))
	wantStatus("logout", rsp, 200)
	run("login page after logout", visible("#username", "#password", "#submit"))
	location("/login")
	var who int
	run("header after logout", chromedp.Evaluate(`document.querySelectorAll('#who, #logout').length`, &who))
	if who != 0 {
		t.Errorf("after logout the header still shows the user (%d elements)", who)
	}
	shot("06-after-logout")

	navigate("open / after logout", chromedp.Navigate(p.URL+"/"))
	run("login page", visible("#username", "#submit"))
	location("/login?next=%2F")

	// 6. The admin signs in and finds the overview.
	run("fill admin login",
		chromedp.SendKeys("#username", "admin", byQuery),
		chromedp.SendKeys("#password", testenv.AdminPassword, byQuery),
	)
	wantStatus("admin login", navigate("submit admin login", chromedp.Click("#submit", byQuery)), 200)
	run("admin link", visible("#nav-admin"))
	wantStatus("overview", navigate("open /admin", chromedp.Click("#nav-admin", byQuery)), 200)
	run("overview", visible("#count-users", "#chart"))
	if n := text("#count-users"); n != "2" {
		t.Errorf("overview: %s users, want 2", n)
	}
	shot("07-admin-overview")

	// 7. Account sessions on /account: the admin's own, marked current.
	navigate("open /account", chromedp.Navigate(p.URL+"/account"))
	run("sessions table", visible("#sessions tr.current"))
	shot("08-account-sessions")

	// 8. Disable the browser user from its page.
	navigate("search users", chromedp.Navigate(p.URL+"/admin/users?q="+user))
	run("users table", visible("#users .user-link"))
	shot("09-admin-users")
	wantStatus("user page", navigate("open user", chromedp.Click("#users .user-link", byQuery)), 200)
	if got := text("#subject"); got != user {
		t.Fatalf("user page for %q, want %q", got, user)
	}
	wantStatus("disable", navigate("disable", chromedp.Click("#disable", byQuery)), 200)
	run("disable asks first", visible("#do-confirm", "#cancel"))
	wantStatus("confirm disable", navigate("confirm disable", chromedp.Click("#do-confirm", byQuery)), 200)
	run("disabled", visible("#enable", ".notice"))
	if got := text("#user-status"); got != "disabled" {
		t.Errorf("status after disable = %q", got)
	}
	shot("10-admin-user-disabled")

	// 9. Change the whitelist: the new entry is saved and shown.
	navigate("open config", chromedp.Navigate(p.URL+"/admin/config"))
	run("config page", visible("#yaml", "#review-yaml"))
	var doc string
	run("read config", chromedp.Value("#yaml", &doc, byQuery))
	if !strings.Contains(doc, "- /login") {
		t.Fatalf("config page shows %q", doc)
	}
	doc = strings.Replace(doc, "- /login\n", "- /login\n  - /status/*\n", 1)
	run("edit config", chromedp.SetValue("#yaml", doc, byQuery))
	wantStatus("save config", navigate("save config", chromedp.Click("#review-yaml", byQuery)), 200)
	run("config diff", visible("#confirm-lines", "#do-confirm"))
	if d := text("#confirm-lines"); !strings.Contains(d, "/status/*") {
		t.Errorf("config diff %q lacks the new entry", d)
	}
	wantStatus("confirm config", navigate("confirm config", chromedp.Click("#do-confirm", byQuery)), 200)
	run("config saved", visible(".notice", "#yaml"))
	run("read config again", chromedp.Value("#yaml", &doc, byQuery))
	if !strings.Contains(doc, "/status/*") {
		t.Errorf("saved config lacks the new whitelist entry: %q", doc)
	}
	shot("11-admin-config")

	// 10. The audit log shows both actions, newest first.
	navigate("open audit", chromedp.Navigate(p.URL+"/admin/audit"))
	run("audit entries", visible("#audit tr.kind-config_change", "#audit tr.kind-disable"))
	var kinds []string
	run("audit order", chromedp.Evaluate(`[...document.querySelectorAll('#audit tbody tr')].map(r => r.cells[1].textContent)`, &kinds))
	if len(kinds) < 2 || kinds[0] != "config_change" || kinds[1] != "disable" {
		t.Errorf("audit kinds %v, want config_change then disable first", kinds)
	}
	shot("12-admin-audit")

	mu.Lock()
	if len(dialogs) > 0 {
		t.Errorf("pages opened JavaScript dialogs: %v", dialogs)
	}
	mu.Unlock()
	t.Logf("browser flow took %v", time.Since(start).Round(time.Millisecond))
}

// startBrowser starts a headless Chromium at chrome that lives until ctx
// ends or stop is called, and returns its tab's context. stop waits for
// Chromium to exit (call it before t.TempDir's cleanup removes the
// profile: defer it, as t.Context ends before cleanups run) and puts its
// output in the test log when the test failed.
//
// A Chromium that dies before it listens for DevTools (chromedp's "chrome
// failed to start") is started once more, its output logged: single-process
// Chromium crashed so at start once in a CI run under load, before it
// loaded any page, so before Portal had any part in it.
func startBrowser(t *testing.T, ctx context.Context, chrome string) (bctx context.Context, stop func()) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		bctx, stop, output, err := launchBrowser(t, ctx, chrome)
		if err == nil {
			return bctx, stop
		}
		stop()
		if attempt == 2 || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("start chromium (attempt %d): %v\n%s", attempt, err, output())
		}
		t.Logf("chromium died as it started, starting it again: %v\n%s", err, output())
	}
}

// launchBrowser starts one Chromium for startBrowser and opens its tab;
// output is what Chromium has printed.
func launchBrowser(t *testing.T, ctx context.Context, chrome string) (bctx context.Context, stop func(), output func() string, err error) {
	t.Helper()
	var browserLog testenv.SyncBuffer
	// Not t.TempDir: Chromium's helper processes can outlive it for a
	// moment and write to the profile while a single RemoveAll runs
	// ("directory not empty"); removal is tried until it holds.
	profile, err := os.MkdirTemp("", "portal-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		poll.Wait(t, 30*time.Second, "Chromium's profile to be removed", func() bool { return os.RemoveAll(profile) == nil })
	})
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	opts = append(opts,
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		// Renderer, GPU and network service as threads of one process, not
		// processes talking over IPC: the browser tests' Chromium CPU went
		// from 151 s to 125 s, their time from 93 s to 80 s (all TestBrowser*
		// at once). The pages render in the same Blink; the process model
		// is what a test does not exercise.
		chromedp.Flag("single-process", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("no-proxy-server", true), // talk to 127.0.0.1 directly, whatever *_proxy says
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(&browserLog),
		// Chromium in a process group of its own, killed whole when the
		// browser's context ends: chromedp kills only the process it
		// started, and a script that runs Chromium without exec (Debian's
		// /usr/bin/chromium-headless-shell is one) left Chromium running,
		// busy, after the test. Pdeathsig is chromedp's own default.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		}),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	stop = func() {
		bcancel()
		// Cancelling the allocator waits for Chromium to exit.
		allocCancel()
		if t.Failed() {
			t.Logf("chromium output:\n%s", browserLog.String())
		}
	}
	// The first Run starts the browser, for bctx's whole life.
	return bctx, stop, browserLog.String, chromedp.Run(bctx)
}

// startScriptedBrowser starts a browser through a "chromium" shell script
// in dir whose body is script ($CHROME in it is the real browser), with
// startBrowser. Take a browser slot first.
func startScriptedBrowser(t *testing.T, dir, script string) (bctx context.Context, stop func()) {
	t.Helper()
	path := filepath.Join(dir, "chromium")
	body := "#!/bin/sh\nCHROME='" + findChromium(t) + "'\n" + script
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	bctx, stopBrowser := startBrowser(t, ctx, path)
	return bctx, func() { stopBrowser(); cancel() }
}

// TestStartBrowserAgainAfterACrash: a Chromium that dies as it starts is
// started once more (startBrowser). The first start of this "chromium"
// exits at once, as the crashed one did; the second is the real one.
func TestStartBrowserAgainAfterACrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	browserSlot(t)
	bctx, stop := startScriptedBrowser(t, dir, `echo start >> '`+starts+`'
if [ "$(wc -l < '`+starts+`')" -eq 1 ]; then echo "crashed as it started" >&2; exit 1; fi
exec "$CHROME" "$@"
`)
	defer stop()
	var title string
	if err := chromedp.Run(bctx, chromedp.Navigate("data:text/html,<title>up</title>"), chromedp.Title(&title)); err != nil || title != "up" {
		t.Fatalf("the second browser: title %q, %v", title, err)
	}
	b, err := os.ReadFile(starts)
	if n := strings.Count(string(b), "start"); err != nil || n != 2 {
		t.Errorf("chromium started %d times (%v), want 2", n, err)
	}
}

// TestStopKillsABrowserAScriptStarted: a Chromium run by a script that does
// not exec it is gone once the browser is stopped (its process group is
// killed).
func TestStopKillsABrowserAScriptStarted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	browserSlot(t)
	_, stop := startScriptedBrowser(t, dir, `"$CHROME" "$@" &
echo $! > '`+pidFile+`'
wait
`)
	stop()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %q: %v", b, err)
	}
	// Killed, then reaped by init once its parent script is gone.
	poll.Wait(t, 10*time.Second, "Chromium to exit", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || bytes.Contains(st, []byte(") Z "))
	})
}

// pageURL is the current page's URL.
func pageURL(t *testing.T, ctx context.Context) *url.URL {
	t.Helper()
	var s string
	if err := chromedp.Run(ctx, chromedp.Location(&s)); err != nil {
		t.Fatalf("read location: %v", err)
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("location %q: %v", s, err)
	}
	return u
}

// headlessShell is Debian's chromium-headless-shell binary (the package's
// /usr/bin/chromium-headless-shell is a script that runs it without exec).
// The headless shell is Chromium's own Blink, V8 and network stack without
// the desktop browser around them, what Puppeteer and Playwright drive for
// headless runs: the browser tests took 86 s of its CPU against 122 s of
// the full chromium's, 57 s against 74 s (all of them at once, alone).
const headlessShell = "/usr/lib/chromium/chromium-headless-shell"

// findChromium returns the browser to drive: $PORTAL_CHROMIUM, else
// Debian's headless shell, else Debian's /usr/bin/chromium, else one on
// $PATH. Without one the test is skipped, or fails when
// PORTAL_REQUIRE_BROWSER=1.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PORTAL_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PORTAL_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, p := range []string{headlessShell, "/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "no Chromium found: install Debian's chromium-headless-shell (make test does) to run the browser test"
	if os.Getenv("PORTAL_REQUIRE_BROWSER") == "1" {
		t.Fatalf("%s (PORTAL_REQUIRE_BROWSER=1)", why)
	}
	t.Skip("SKIPPED: " + why + "; set PORTAL_CHROMIUM to use another browser")
	return ""
}

// outputDir is where the test saves screenshots: t.ArtifactDir(), kept when
// go test runs with -artifacts (under -outputdir) and removed after the test
// otherwise. If -artifacts would put them inside the source tree (-outputdir
// defaults to where go test runs), they go to $PORTAL_TEST_OUTPUT or
// $TMPDIR/portal-test-output/<test> instead.
func outputDir(t *testing.T) string {
	t.Helper()
	if !artifactsInSourceTree(t) {
		dir := t.ArtifactDir()
		kept := "removed after the test; run go test with -artifacts -outputdir DIR to keep them"
		if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
			kept = "kept"
		}
		t.Logf("screenshots: %s (%s)", dir, kept)
		return dir
	}
	dir := os.Getenv("PORTAL_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "portal-test-output", t.Name())
	} else {
		dir = filepath.Join(dir, t.Name())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("output dir: %v", err)
	}
	t.Logf("screenshots: %s (-artifacts would have written into the source tree; pass -outputdir outside it)", dir)
	return dir
}

// artifactsInSourceTree reports whether -artifacts is on with an -outputdir
// inside this module's source tree.
func artifactsInSourceTree(t *testing.T) bool {
	t.Helper()
	a, o := flag.Lookup("test.artifacts"), flag.Lookup("test.outputdir")
	if a == nil || a.Value.String() != "true" {
		return false
	}
	outDir := ""
	if o != nil {
		outDir = o.Value.String()
	}
	wd, err := os.Getwd()
	if err != nil {
		return true // cannot tell: stay out of the tree
	}
	if outDir == "" {
		outDir = wd
	}
	if !filepath.IsAbs(outDir) {
		outDir = filepath.Join(wd, outDir)
	}
	// The module root: the first directory above the package with a go.mod.
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(root)
		if up == root {
			return false
		}
		root = up
	}
	rel, err := filepath.Rel(root, outDir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// byQuery selects by CSS selector, as chromedp.ByQuery, and retries a
// selector that does not match yet every 50 ms instead of chromedp's 5 ms:
// each retry is a round trip through Chromium's browser and renderer
// processes (TestBrowserPages alone: Chromium's CPU 114 s at 5 ms, 104 s at
// 50 ms).
func byQuery(s *chromedp.Selector) {
	chromedp.ByQuery(s)
	chromedp.RetryInterval(50 * time.Millisecond)(s)
}
