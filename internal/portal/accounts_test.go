package portal_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portal-go/portal/internal/mail/mailtest"
	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
	"github.com/portal-go/portal/internal/testenv/portaltest"
)

// mailedLink waits for a message to addr whose text has a link under
// base+path, and returns the link's token. skip messages are passed over.
func mailedLink(t *testing.T, srv *mailtest.Server, addr, base, path string, skip int) string {
	t.Helper()
	var token string
	poll.Wait(t, 60*time.Second, "a "+path+" link mailed to "+addr, func() bool {
		msgs := srv.To(addr)
		for i := skip; i < len(msgs); i++ {
			_, parts := mailtest.Parse(t, msgs[i].Data)
			for _, f := range strings.Fields(parts["text/plain"]) {
				if strings.HasPrefix(f, base+path+"?") {
					u, err := url.Parse(f)
					if err != nil {
						t.Fatal(err)
					}
					token = u.Query().Get("token")
					return true
				}
			}
		}
		return false
	})
	return token
}

// accountsPortal starts Portal sending mail to a test SMTP server, its
// links under https://portal.example.
func accountsPortal(t *testing.T, extra string) (*portaltest.Portal, *mailtest.Server) {
	t.Helper()
	srv := mailtest.Start(t, mailtest.Options{})
	p := portaltest.Start(t, portaltest.Options{
		Config: "accounts:\n  publicURL: https://portal.example\n" + extra,
		Env:    map[string]string{"PORTAL_SMTP_ADDRESS": srv.Addr, "PORTAL_SMTP_FROM": "portal@example.com"},
	})
	return p, srv
}

func TestEmailVerificationAndPasswordReset(t *testing.T) {
	parallel(t)
	p, srv := accountsPortal(t, "  requireVerifiedEmail: true\n")
	c := newClient(t, p)
	const base = "https://portal.example"

	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}), http.StatusCreated)
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "bob", "password": "bob-password-1", "email": "ALICE@example.com"}), http.StatusConflict)); code != "user.email_taken" {
		t.Fatalf("code %q", code)
	}
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1"}), http.StatusForbidden)); code != "user.email_unverified" {
		t.Fatalf("unverified login: %q", code)
	}
	verify := mailedLink(t, srv, "alice@example.com", base, "/email/verify", 0)
	got := srv.To("alice@example.com")[0]
	if got.From != "portal@example.com" {
		t.Fatalf("envelope from %q", got.From)
	}
	for _, bad := range []string{"", "forged", strings.Repeat("A", 43), verify[:42] + "x"} {
		if code := errorCode(t, c.expect(c.do("POST", "/api/v1/email/verify", "", map[string]string{"token": bad}), http.StatusBadRequest)); code != "user.bad_link" {
			t.Fatalf("forged %q: %q", bad, code)
		}
	}
	r := c.expect(c.do("POST", "/api/v1/email/verify", "", map[string]string{"token": verify}), http.StatusOK).json(t)
	if r["username"] != "alice" {
		t.Fatalf("%v", r)
	}
	c.expect(c.do("POST", "/api/v1/email/verify", "", map[string]string{"token": verify}), http.StatusBadRequest)

	tok1, _ := c.login("alice", "alice-password-1")
	tok2, _ := c.login("alice", "alice-password-1")
	me := c.expect(c.do("GET", "/api/v1/me", tok1, nil), http.StatusOK).json(t)
	if me["email"] != "alice@example.com" || me["email_verified"] != true {
		t.Fatalf("/me %v", me)
	}
	c.expect(c.do("PATCH", "/api/v1/me", tok1, map[string]string{"display_name": "Alice A."}), http.StatusOK)
	if me := c.expect(c.do("GET", "/api/v1/me", tok1, nil), http.StatusOK).json(t); me["display_name"] != "Alice A." {
		t.Fatalf("/me after PATCH %v", me)
	}

	// Forgot: the same answer whether or not the account exists.
	seen := len(srv.To("alice@example.com"))
	for _, login := range []string{"nobody", "nobody@example.com", "alice"} {
		r := c.expect(c.do("POST", "/api/v1/password/forgot", "", map[string]string{"login": login}), http.StatusAccepted)
		if len(r.body) != 0 {
			t.Fatalf("forgot %q answered %q", login, r.body)
		}
	}
	reset := mailedLink(t, srv, "alice@example.com", base, "/password/reset", seen)
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/password/reset", "", map[string]string{"token": verify, "new_password": "alice-password-2"}), http.StatusBadRequest)); code != "user.bad_link" {
		t.Fatalf("a verification link reset a password: %q", code)
	}
	r = c.expect(c.do("POST", "/api/v1/password/reset", "", map[string]string{"token": reset, "new_password": "alice-password-2"}), http.StatusOK).json(t)
	if r["sessions_ended"] != float64(2) {
		t.Fatalf("reset: %v", r)
	}
	for _, tok := range []string{tok1, tok2} {
		c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusUnauthorized)
	}
	c.expect(c.do("POST", "/api/v1/password/reset", "", map[string]string{"token": reset, "new_password": "alice-password-3"}), http.StatusBadRequest)
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1"}), http.StatusUnauthorized)
	c.login("alice", "alice-password-2")
}

func TestAccountFormsNeedCSRF(t *testing.T) {
	parallel(t)
	p, _ := accountsPortal(t, "")
	c := newClient(t, p)
	c.register("alice", "alice-password-1")
	tok, _ := c.login("alice", "alice-password-1")
	form := url.Values{"login": {"alice"}, "token": {"x"}, "new_password": {"alice-password-2"}, "confirm": {"alice-password-2"}, "display_name": {"x"}, "email": {"a@example.com"}}
	admin, _ := c.login("admin", testenv.AdminPassword)
	for _, path := range []string{"/password/forgot", "/password/reset", "/email/verify", "/account/profile", "/account/email/verification", "/account/totp/disable", "/account/totp/recovery-codes"} {
		r := c.do("POST", path, "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", "portal_session="+tok+"; portal_csrf="+strings.Repeat("a", 43))
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a matching CSRF token: %d", path, r.StatusCode)
		}
	}
	// The admin's forms too (as the admin, so only the token is missing).
	me := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t)
	for _, path := range []string{"/admin/users", "/admin/users/" + me["id"].(string) + "/password/temporary", "/admin/users/" + me["id"].(string) + "/password/require"} {
		r := c.do("POST", path, "", form.Encode()+"&username=zed&password=zed-password-1", "Content-Type", "application/x-www-form-urlencoded", "Cookie", "portal_session="+admin+"; portal_csrf="+strings.Repeat("a", 43))
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a matching CSRF token: %d", path, r.StatusCode)
		}
	}
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "zed", "password": "zed-password-1"}), http.StatusUnauthorized)
	c.login("alice", "alice-password-1") // her password was not reset
}

func TestUndeliverableMailShownToAdmins(t *testing.T) {
	parallel(t)
	p, srv := accountsPortal(t, "")
	srv.RefuseRecipients(true)
	c := newClient(t, p)
	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}), http.StatusCreated)
	admin, _ := c.login("admin", testenv.AdminPassword)
	poll.Wait(t, 60*time.Second, "the mail to be given up", func() bool {
		r := c.expect(c.do("GET", "/api/v1/admin/mail/failed", admin, nil), http.StatusOK).json(t)
		msgs, _ := r["messages"].([]any)
		if len(msgs) != 1 {
			return false
		}
		m := msgs[0].(map[string]any)
		return m["to"] == "alice@example.com" && m["kind"] == "verify" && strings.Contains(m["last_error"].(string), "550")
	})
	user, _ := c.login("alice", "alice-password-1")
	c.expect(c.do("GET", "/api/v1/admin/mail/failed", user, nil), http.StatusForbidden)
	page := c.expect(c.do("GET", "/admin/mail", "", nil, "Cookie", "portal_session="+admin), http.StatusOK)
	if !strings.Contains(string(page.body), "alice@example.com") {
		t.Fatal("the admin page does not show the undelivered mail")
	}
}

func TestMailWithoutSMTPGoesToTheDataDir(t *testing.T) {
	parallel(t)
	var logs testenv.SyncBuffer
	p := portaltest.Start(t, portaltest.Options{Log: &logs, Env: map[string]string{"PORTAL_SMTP_ADDRESS": ""}})
	c := newClient(t, p)
	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}), http.StatusCreated)
	var files []string
	poll.Wait(t, 60*time.Second, "a mail file", func() bool {
		files, _ = filepath.Glob(filepath.Join(p.DataDir, "mail", "*.eml"))
		return len(files) == 1
	})
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	_, parts := mailtest.Parse(t, raw)
	if !strings.Contains(parts["text/plain"], "http://localhost:8080/email/verify?token=") {
		t.Fatalf("mail:\n%s", raw)
	}
	// The sender writes the file, then logs: the log line may come a moment
	// after the file is there.
	poll.Wait(t, 30*time.Second, "the link in the log", func() bool {
		return strings.Contains(logs.String(), "/email/verify?token=")
	})
}

func TestAdminManagedAccounts(t *testing.T) {
	parallel(t)
	p, srv := accountsPortal(t, "  selfRegistration: false\n")
	c := newClient(t, p)
	const base = "https://portal.example"

	// Registration is closed, by API and by form.
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "eve", "password": "eve-password-1"}), http.StatusForbidden)); code != "user.registration_closed" {
		t.Fatalf("register: %q", code)
	}
	admin, _ := c.login("admin", testenv.AdminPassword)

	// An invitation: the mailed link sets the password.
	r := c.expect(c.do("POST", "/api/v1/admin/users", admin, map[string]any{"username": "carol", "email": "carol@example.com", "roles": []string{"user"}}), http.StatusCreated).json(t)
	if r["invited"] != true {
		t.Fatalf("%v", r)
	}
	carolID := r["id"].(string)
	invite := mailedLink(t, srv, "carol@example.com", base, "/password/reset", 0)
	c.expect(c.do("POST", "/api/v1/password/reset", "", map[string]string{"token": invite, "new_password": "carol-password-1"}), http.StatusOK)
	carol, _ := c.login("carol", "carol-password-1")

	// Only admins manage accounts.
	c.expect(c.do("POST", "/api/v1/admin/users", carol, map[string]any{"username": "mallory", "password": "mallory-password"}), http.StatusForbidden)
	c.expect(c.do("POST", "/api/v1/admin/users/"+carolID+"/password", carol, map[string]any{"temporary": true}), http.StatusForbidden)

	// A temporary password: carol's session ends; her next sign-in must
	// change it.
	r = c.expect(c.do("POST", "/api/v1/admin/users/"+carolID+"/password", admin, map[string]any{"temporary": true}), http.StatusOK).json(t)
	temp, _ := r["temporary_password"].(string)
	if temp == "" || r["sessions_ended"] != float64(1) {
		t.Fatalf("%v", r)
	}
	c.expect(c.do("GET", "/api/v1/me", carol, nil), http.StatusUnauthorized)
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "carol", "password": temp}), http.StatusForbidden)); code != "user.password_change_required" {
		t.Fatalf("login with the temporary password: %q", code)
	}
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "carol", "password": temp, "new_password": "carol-password-2"}), http.StatusOK)
	c.login("carol", "carol-password-2")

	// Required change.
	c.expect(c.do("POST", "/api/v1/admin/users/"+carolID+"/require-password-change", admin, nil), http.StatusOK)
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "carol", "password": "carol-password-2"}), http.StatusForbidden)

	// A user made with a password signs in at once.
	c.expect(c.do("POST", "/api/v1/admin/users", admin, map[string]any{"username": "dave", "password": "dave-password-1"}), http.StatusCreated)
	c.login("dave", "dave-password-1")
}

// resetByCommand runs portal admin reset-password for name on dir and
// returns the temporary password it printed.
func resetByCommand(t *testing.T, dir, name string) string {
	t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := portal.ResetPassword(context.Background(), []string{"--data_dir", dir}, name, &out, log); err != nil {
		t.Fatalf("reset-password %s: %v", name, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || len(lines[1]) != 24 {
		t.Fatalf("output:\n%s", out.String())
	}
	return lines[1]
}

// mustChangeTo signs name in with the temporary password temp, which must
// be changed, and changes it to next.
func mustChangeTo(t *testing.T, c *client, name, temp, next string) {
	t.Helper()
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": temp}), http.StatusForbidden)); code != "user.password_change_required" {
		t.Fatalf("login with the temporary password: %q", code)
	}
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": name, "password": temp, "new_password": next}), http.StatusOK)
	c.login(name, next)
}

// hasCommandLineReset reports whether the audit log has the command line's
// reset of name.
func hasCommandLineReset(t *testing.T, c *client, admin, name string) bool {
	t.Helper()
	entries, _ := listAudit(t, c, admin, "kind=password_reset")
	for _, e := range entries {
		if e.SubjectName == name && e.ActorName == "command line" {
			return true
		}
	}
	return false
}

// TestAdminResetPasswordWhileRunning: portal admin reset-password reaches a
// running embedded Portal over its admin socket (it cannot open the store
// the process holds): the account's sessions end at once, the printed
// password must be changed at the next sign-in, the reset is audited as the
// command line's; the socket is 0600 and gone after the stop.
func TestAdminResetPasswordWhileRunning(t *testing.T) {
	dir := t.TempDir()
	p := portaltest.Start(t, portaltest.Options{DataDir: dir})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("alice", "alice-password-1")
	alice, _ := c.login("alice", "alice-password-1")
	sock := filepath.Join(dir, portal.AdminSocket)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v; want a socket of mode 0600", fi, err)
	}

	temp := resetByCommand(t, dir, "alice")
	c.expect(c.do("GET", "/api/v1/me", alice, nil), http.StatusUnauthorized) // at once: no cache lets it pass
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1"}), http.StatusUnauthorized)
	mustChangeTo(t, c, "alice", temp, "alice-password-2")
	if !hasCommandLineReset(t, c, admin, "alice") {
		t.Fatal("no password_reset entry by the command line for alice")
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := portal.ResetPassword(context.Background(), []string{"--data_dir", dir}, "nobody", &out, log); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("an unknown account: %v", err)
	}
	p.Stop(t)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("admin socket after the stop: %v", err)
	}
}

// TestAdminResetPasswordStopped: with no Portal running the command opens
// the store itself; the reset is audited when Portal next starts.
func TestAdminResetPasswordStopped(t *testing.T) {
	dir := t.TempDir()
	p := portaltest.Start(t, portaltest.Options{DataDir: dir})
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	p.Stop(t)

	temp := resetByCommand(t, dir, "admin")
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := portal.ResetPassword(context.Background(), []string{"--data_dir", dir}, "nobody", &out, log); err == nil {
		t.Fatal("an unknown account was reset")
	}

	p = portaltest.Start(t, portaltest.Options{DataDir: dir})
	c = newClient(t, p)
	c.expect(c.do("GET", "/api/v1/me", admin, nil), http.StatusUnauthorized) // its session is gone
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": testenv.AdminPassword}), http.StatusUnauthorized)
	mustChangeTo(t, c, "admin", temp, "the-admin-password-2")
	admin, _ = c.login("admin", "the-admin-password-2")
	poll.Wait(t, 30*time.Second, "the offline reset in the audit log", func() bool { return hasCommandLineReset(t, c, admin, "admin") })
}

// TestAdminSocketStale: a socket file left by a process that died (here
// mode 0644) does not stop the start; it is replaced by a 0600 one that
// serves.
func TestAdminSocketStale(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, portal.AdminSocket)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := os.Chmod(sock, 0o644); err != nil {
		t.Fatal(err)
	}
	p := portaltest.Start(t, portaltest.Options{DataDir: dir})
	c := newClient(t, p)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v; want mode 0600", fi, err)
	}
	mustChangeTo(t, c, "admin", resetByCommand(t, dir, "admin"), "the-admin-password-2")
}

func TestTOTPThroughTheAPI(t *testing.T) {
	parallel(t)
	p, _ := accountsPortal(t, "")
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.register("alice", "alice-password-1")
	tok, _ := c.login("alice", "alice-password-1")

	r := c.expect(c.do("POST", "/api/v1/me/totp", tok, nil), http.StatusOK).json(t)
	secret, _ := r["secret"].(string)
	if secret == "" || !strings.HasPrefix(r["url"].(string), "otpauth://totp/Portal:alice?") {
		t.Fatalf("%v", r)
	}
	png := c.expect(c.do("GET", "/api/v1/me/totp/qr.png", tok, nil), http.StatusOK)
	if png.Header.Get("Content-Type") != "image/png" || !bytes.HasPrefix(png.body, []byte("\x89PNG")) {
		t.Fatalf("QR: %s %q", png.Header.Get("Content-Type"), png.body[:8])
	}
	c.expect(c.do("POST", "/api/v1/me/totp/confirm", tok, map[string]string{"code": "000000"}), http.StatusUnauthorized)
	now := time.Now()
	code, err := totp.GenerateCode(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	r = c.expect(c.do("POST", "/api/v1/me/totp/confirm", tok, map[string]string{"code": code}), http.StatusOK).json(t)
	codes, _ := r["recovery_codes"].([]any)
	if len(codes) != 10 {
		t.Fatalf("%v", r)
	}
	if me := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t); me["totp_enabled"] != true {
		t.Fatalf("/me %v", me)
	}

	login := func(otp string) response {
		return c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1", "otp": otp})
	}
	if code := errorCode(t, c.expect(login(""), http.StatusUnauthorized)); code != "user.mfa_required" {
		t.Fatalf("%q", code)
	}
	if code := errorCode(t, c.expect(login(code), http.StatusUnauthorized)); code != "user.bad_code" {
		t.Fatalf("the confirming code again: %q", code)
	}
	next, _ := totp.GenerateCode(secret, now.Add(30*time.Second))
	c.expect(login(next), http.StatusOK)
	c.expect(login(next), http.StatusUnauthorized)
	c.expect(login(codes[0].(string)), http.StatusOK)
	c.expect(login(codes[0].(string)), http.StatusUnauthorized)

	// New recovery codes (with a code; a used one is no code), then TOTP
	// off by its owner (password and code), on the page as in the API.
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/me/totp/recovery-codes", tok, map[string]string{"code": codes[0].(string)}), http.StatusUnauthorized)); code != "user.bad_code" {
		t.Fatalf("a used recovery code: %q", code)
	}
	r = c.expect(c.do("POST", "/api/v1/me/totp/recovery-codes", tok, map[string]string{"code": codes[1].(string)}), http.StatusOK).json(t)
	fresh, _ := r["recovery_codes"].([]any)
	if len(fresh) != 10 {
		t.Fatalf("%v", r)
	}
	c.expect(login(codes[2].(string)), http.StatusUnauthorized) // the old ones are gone
	if page := c.expect(c.do("GET", "/account", tok, nil), http.StatusOK); !bytes.Contains(page.body, []byte(`action="/account/totp/disable"`)) {
		t.Fatal("the account page offers no way to turn TOTP off")
	}
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/me/totp/disable", tok, map[string]string{"password": "wrong-password", "code": fresh[0].(string)}), http.StatusForbidden)); code != "user.wrong_password" {
		t.Fatalf("turning off with a wrong password: %q", code)
	}
	c.expect(c.do("POST", "/api/v1/me/totp/disable", tok, map[string]string{"password": "alice-password-1", "code": fresh[0].(string)}), http.StatusNoContent)
	c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "alice", "password": "alice-password-1"}), http.StatusOK)
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/me/totp/disable", tok, map[string]string{"password": "alice-password-1", "code": fresh[1].(string)}), http.StatusConflict)); code != "user.totp_off" {
		t.Fatalf("turning off twice: %q", code)
	}

	// Only an admin resets another's factors.
	me := c.expect(c.do("GET", "/api/v1/me", tok, nil), http.StatusOK).json(t)
	c.expect(c.do("POST", "/api/v1/admin/users/"+me["id"].(string)+"/factors/reset", tok, nil), http.StatusForbidden)
	c.expect(c.do("POST", "/api/v1/admin/users/"+me["id"].(string)+"/factors/reset", admin, nil), http.StatusNoContent)
	c.login("alice", "alice-password-1")
}

func TestTwoFactorRequiredForARole(t *testing.T) {
	parallel(t)
	p, _ := accountsPortal(t, "  twoFactorRoles: [admin]\n")
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)
	c.expect(c.do("GET", "/api/v1/admin/users", admin, nil), http.StatusForbidden)
	if me := c.expect(c.do("GET", "/api/v1/me", admin, nil), http.StatusOK).json(t); me["two_factor_required"] != true {
		t.Fatalf("/me %v", me)
	}
	r := c.expect(c.do("POST", "/api/v1/me/totp", admin, nil), http.StatusOK).json(t)
	secret := r["secret"].(string)
	now := time.Now()
	code, _ := totp.GenerateCode(secret, now)
	c.expect(c.do("POST", "/api/v1/me/totp/confirm", admin, map[string]string{"code": code}), http.StatusOK)
	next, _ := totp.GenerateCode(secret, now.Add(30*time.Second))
	m := c.expect(c.do("POST", "/api/v1/login", "", map[string]string{"username": "admin", "password": testenv.AdminPassword, "otp": next}), http.StatusOK).json(t)
	c.expect(c.do("GET", "/api/v1/admin/users", m["token"].(string), nil), http.StatusOK)
	third, _ := totp.GenerateCode(secret, now.Add(60*time.Second))
	if code := errorCode(t, c.expect(c.do("POST", "/api/v1/me/totp/disable", m["token"].(string), map[string]string{"password": testenv.AdminPassword, "code": third}), http.StatusConflict)); code != "user.two_factor_needed" {
		t.Fatalf("an admin turning TOTP off: %q", code)
	}
}

// mailSubjects are the decoded subjects of the messages to addr.
func mailSubjects(t *testing.T, srv *mailtest.Server, addr string) []string {
	t.Helper()
	var out []string
	for _, m := range srv.To(addr) {
		msg, _ := mailtest.Parse(t, m.Data)
		s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// waitSubject waits for the n-th message to addr and returns its subject.
func waitSubject(t *testing.T, srv *mailtest.Server, addr string, n int) string {
	t.Helper()
	poll.Wait(t, 60*time.Second, fmt.Sprintf("message %d to %s", n+1, addr), func() bool { return len(srv.To(addr)) > n })
	return mailSubjects(t, srv, addr)[n]
}

// TestMailInTheUsersLanguage: mail is written in the account's language:
// the registering request's, changed by the language switch while signed
// in and on the profile; an account without one (made by an admin) gets
// the config's ui.language.
func TestMailInTheUsersLanguage(t *testing.T) {
	p, srv := accountsPortal(t, "ui:\n  language: zh-CN\n")
	c := newClient(t, p)
	admin, _ := c.login("admin", testenv.AdminPassword)

	// An invitation: no language yet, so ui.language.
	c.expect(c.do("POST", "/api/v1/admin/users", admin, map[string]any{"username": "carol", "email": "carol@example.com"}), http.StatusCreated)
	if s := waitSubject(t, srv, "carol@example.com", 0); s != "邀请您使用 Portal" {
		t.Fatalf("invitation subject %q: not zh-CN", s)
	}

	// Registered from an English page: English mail.
	c.expect(c.do("POST", "/api/v1/register", "", map[string]string{"username": "alice", "password": "alice-password-1", "email": "alice@example.com"}, "Accept-Language", "en"), http.StatusCreated)
	if s := waitSubject(t, srv, "alice@example.com", 0); s != "Confirm your email address for Portal" {
		t.Fatalf("verification subject %q", s)
	}
	alice, _ := c.login("alice", "alice-password-1")
	language := func() any { return c.expect(c.do("GET", "/api/v1/me", alice, nil), http.StatusOK).json(t)["language"] }
	if l := language(); l != "en" {
		t.Fatalf("language %v", l)
	}

	// The switch, signed in: the account's language follows; a reset asked
	// for from an English page is still written in it.
	c.expect(c.do("GET", "/lang?to=zh-CN&next=/", alice, nil), http.StatusSeeOther)
	if l := language(); l != "zh-CN" {
		t.Fatalf("language after the switch %v", l)
	}
	c.expect(c.do("POST", "/api/v1/password/forgot", "", map[string]string{"login": "alice"}, "Accept-Language", "en"), http.StatusAccepted)
	if s := waitSubject(t, srv, "alice@example.com", 1); s != "重置您的 Portal 密码" {
		t.Fatalf("reset subject %q", s)
	}

	// The profile: back to English; the old address is told in it.
	if code := errorCode(t, c.expect(c.do("PATCH", "/api/v1/me", alice, map[string]string{"language": "fr"}), http.StatusBadRequest)); code != "user.bad_language" {
		t.Fatalf("%q", code)
	}
	c.expect(c.do("PATCH", "/api/v1/me", alice, map[string]string{"language": "en"}), http.StatusOK)
	c.expect(c.do("PATCH", "/api/v1/me", alice, map[string]string{"email": "alice2@example.com"}, "Accept-Language", "zh-CN"), http.StatusOK)
	if s := waitSubject(t, srv, "alice@example.com", 2); s != "The email address of your Portal account changed" {
		t.Fatalf("email-changed subject %q: not English", s)
	}
	if s := waitSubject(t, srv, "alice2@example.com", 0); s != "Confirm your email address for Portal" {
		t.Fatalf("verification of the new address %q", s)
	}
}
