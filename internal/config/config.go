// Package config is Portal's config center: the live settings every service
// reads (whitelist, token lifetimes), loaded through go-micro's config
// component from a yaml source, validated, and swapped atomically when the
// source changes, so that readers never see a half-applied change.
package config

import (
	"errors"
	"net/url"
	pathpkg "path"
	"slices"
	"strings"
	"time"
)

// Settings is one complete, validated configuration. Field names follow the
// yaml keys (auth.whiteList, auth.expireTime, ...), the names of the article.
type Settings struct {
	Auth      AuthSettings     `json:"auth"`
	Login     LoginSettings    `json:"login"`
	RateLimit RateSettings     `json:"rateLimit"`
	Accounts  AccountsSettings `json:"accounts"`
	UI        UISettings       `json:"ui"`
}

// UISettings shape the pages.
type UISettings struct {
	// Language is the pages' language when the browser names none that
	// Portal speaks and the user chose none (ui.language: en or zh-CN).
	Language string `json:"language" choices:"en zh-CN"`
	// ExportMaxRows bounds a CSV export of users or audit entries
	// (ui.exportMaxRows, 1 to 1000000); a longer one ends with a line that
	// says it was cut.
	ExportMaxRows int `json:"exportMaxRows"`
}

// AccountsSettings are the rules of accounts' email and recovery.
type AccountsSettings struct {
	// RequireEmail makes registration need an email address
	// (accounts.requireEmail).
	RequireEmail bool `json:"requireEmail"`
	// RequireVerifiedEmail refuses sign-in (403 user.email_unverified)
	// until the account's address is verified (accounts.requireVerifiedEmail).
	RequireVerifiedEmail bool `json:"requireVerifiedEmail"`
	// SelfRegistration lets anyone register (accounts.selfRegistration);
	// off, /register answers 403 user.registration_closed.
	SelfRegistration bool `json:"selfRegistration"`
	// PublicURL is the gateway's address as users reach it
	// (accounts.publicURL): the links in mail start with it. It is never
	// taken from a request's Host header, which a client chooses.
	PublicURL string `json:"publicURL"`
	// TwoFactorRoles are roles that count only for an account with a
	// second factor (accounts.twoFactorRoles): without one, the account
	// signs in with its other roles' permissions until it enrols.
	TwoFactorRoles []string `json:"twoFactorRoles"`
}

// LoginSettings are the user service's brute-force defence (see
// internal/user/limits.go): failed logins from devices that have not signed
// in to the account before are counted per account and client address, per
// address, and per account; those of a trusted device per device. A counter
// that reaches its limit refuses the logins it covers (429 user.locked)
// until it expires, LockoutSeconds after the last failure it counted.
type LoginSettings struct {
	// MaxFailures is how many failed logins an account may have from one
	// address, or one trusted device, before those logins are refused
	// (login.maxFailures, 1 to 1000).
	MaxFailures int `json:"maxFailures"`
	// LockoutSeconds is how long a counter lives after its last failure, so
	// how long a lockout lasts (login.lockoutSeconds, 1 to 86400).
	LockoutSeconds int `json:"lockoutSeconds" unit:"s"`
	// AddressMaxFailures is how many failed logins one address may have,
	// over every account, before its untrusted logins are refused
	// (login.addressMaxFailures; 0: 4 x MaxFailures; else at least
	// MaxFailures).
	AddressMaxFailures int `json:"addressMaxFailures"`
	// AccountMaxFailures is how many failed logins an account may have from
	// untrusted devices, over every address, before it refuses every
	// untrusted device (login.accountMaxFailures; 0: 10 x MaxFailures; else
	// at least that, so that several addresses must reach it together).
	AccountMaxFailures int `json:"accountMaxFailures"`
}

// RateSettings bound the attempts to log in and to register, whatever their
// outcome, per window (429 user.rate_limited): what the audit log records
// and the password hash costs stays bounded per address and per account.
type RateSettings struct {
	// WindowSeconds is the length of a window (rateLimit.windowSeconds, 1 to
	// 3600).
	WindowSeconds int `json:"windowSeconds" unit:"s"`
	// LoginPerAddress bounds the logins of untrusted devices from one
	// address per window (rateLimit.loginPerAddress).
	LoginPerAddress int `json:"loginPerAddress"`
	// LoginPerAccount bounds the logins to one account from untrusted
	// devices per window, and those of each trusted device
	// (rateLimit.loginPerAccount).
	LoginPerAccount int `json:"loginPerAccount"`
	// RegisterPerAddress bounds registrations from one address per window
	// (rateLimit.registerPerAddress).
	RegisterPerAddress int `json:"registerPerAddress"`
	// RegisterPerAccount bounds the attempts to register one username per
	// window (rateLimit.registerPerAccount).
	RegisterPerAccount int `json:"registerPerAccount"`
}

// AuthSettings are the gateway's and the user service's token rules.
type AuthSettings struct {
	// WhiteList holds the paths that need no token. An entry ending in "/*"
	// matches every path under it.
	WhiteList []string `json:"whiteList"`
	// ExpireTime is an access token's lifetime, in seconds.
	ExpireTime int `json:"expireTime" unit:"s"`
	// RefreshTime: a token with fewer seconds than this left is renewed.
	RefreshTime int `json:"refreshTime" unit:"s"`
	// SessionMaxAge is a session's absolute lifetime, in seconds: no renewal
	// extends a token past it.
	SessionMaxAge int `json:"sessionMaxAge" unit:"s"`
}

// Defaults returns the built-in settings, used where the source says nothing.
func Defaults() Settings {
	return Settings{Auth: AuthSettings{
		WhiteList: []string{
			"/login", "/register", "/healthz", "/readyz", "/static/*",
			"/api/v1/login", "/api/v1/register", "/api/openapi.json", "/api/docs",
			// Email verification and password recovery: no session yet.
			"/email/verify", "/password/forgot", "/password/reset",
			"/api/v1/email/verify", "/api/v1/password/forgot", "/api/v1/password/reset",
			// Signing in with a passkey.
			"/login/passkey", "/api/v1/login/passkey/begin", "/api/v1/login/passkey/finish",
			// No session for Prometheus: the gateway answers /metrics only
			// to a bearer of the metrics token (PORTAL_METRICS_TOKEN), and
			// with none set not at all (404).
			"/metrics",
		},
		ExpireTime:    900,
		RefreshTime:   300,
		SessionMaxAge: 86400,
	}, Login: LoginSettings{
		MaxFailures:    5,
		LockoutSeconds: 300,
	}, RateLimit: RateSettings{
		WindowSeconds:      60,
		LoginPerAddress:    60,
		LoginPerAccount:    30,
		RegisterPerAddress: 20,
		RegisterPerAccount: 5,
	}, Accounts: AccountsSettings{
		SelfRegistration: true,
		PublicURL:        "http://localhost:8080",
		TwoFactorRoles:   []string{},
	}, UI: UISettings{Language: "en", ExportMaxRows: 10_000}}
}

// Bounds of the settings, checked by Validate.
const (
	minExpire     = 5
	maxSessionAge = 30 * 24 * 3600
	maxFailures   = 1000
	maxLockout    = 24 * 3600
	// accountFloor: the account-wide limit is at least this many times
	// maxFailures, so that no one address (nor a few) can reach it.
	accountFloor = 10
	maxCount     = 1_000_000
	maxWindow    = 3600
)

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("config: invalid")

// Validate reports every rule the settings break, one line each (joined
// with errors.Join, each wrapping ErrInvalid), so that an admin mends them
// all in one go.
func (s Settings) Validate() error {
	var errs []error
	bad := func(key, id string, args ...any) { errs = append(errs, problem(key, id, args...)) }
	a := s.Auth
	if a.ExpireTime < minExpire {
		bad("auth.expireTime", probMinSeconds, "Value", a.ExpireTime, "Min", minExpire)
	}
	if a.RefreshTime < 0 || a.RefreshTime >= a.ExpireTime {
		bad("auth.refreshTime", probRefresh, "Value", a.RefreshTime, "Expire", a.ExpireTime)
	}
	if a.SessionMaxAge < a.ExpireTime || a.SessionMaxAge > maxSessionAge {
		bad("auth.sessionMaxAge", probSessionMaxAge, "Value", a.SessionMaxAge, "Expire", a.ExpireTime, "Max", maxSessionAge)
	}
	for _, p := range a.WhiteList {
		if !strings.HasPrefix(p, "/") {
			bad("auth.whiteList", probWhiteList, "Value", quote(p))
		}
	}
	l := s.Login
	if l.MaxFailures < 1 || l.MaxFailures > maxFailures {
		bad("login.maxFailures", probRange, "Value", l.MaxFailures, "Max", maxFailures)
	}
	if l.LockoutSeconds < 1 || l.LockoutSeconds > maxLockout {
		bad("login.lockoutSeconds", probRange, "Value", l.LockoutSeconds, "Max", maxLockout)
	}
	if l.AddressMaxFailures != 0 && (l.AddressMaxFailures < l.MaxFailures || l.AddressMaxFailures > maxCount) {
		bad("login.addressMaxFailures", probAddressFails, "Value", l.AddressMaxFailures, "Min", l.MaxFailures, "Max", maxCount)
	}
	if l.AccountMaxFailures != 0 && (l.AccountMaxFailures < accountFloor*l.MaxFailures || l.AccountMaxFailures > maxCount) {
		bad("login.accountMaxFailures", probAccountFails, "Value", l.AccountMaxFailures, "Floor", accountFloor, "Min", accountFloor*l.MaxFailures, "Max", maxCount)
	}
	r := s.RateLimit
	if r.WindowSeconds < 1 || r.WindowSeconds > maxWindow {
		bad("rateLimit.windowSeconds", probRange, "Value", r.WindowSeconds, "Max", maxWindow)
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"loginPerAddress", r.LoginPerAddress}, {"loginPerAccount", r.LoginPerAccount}, {"registerPerAddress", r.RegisterPerAddress}, {"registerPerAccount", r.RegisterPerAccount}} {
		if n.v < 1 || n.v > maxCount {
			bad("rateLimit."+n.key, probRange, "Value", n.v, "Max", maxCount)
		}
	}
	if u, err := url.Parse(s.Accounts.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("accounts.publicURL", probPublicURL, "Value", quote(s.Accounts.PublicURL))
	}
	if u, ok := s.UI.Language, keyNamed("ui.language").Choices; !slices.Contains(ok, u) {
		bad("ui.language", probChoice, "Value", quote(u), "Choices", strings.Join(ok, ", "))
	}
	if n := s.UI.ExportMaxRows; n < 1 || n > maxCount {
		bad("ui.exportMaxRows", probRange, "Value", n, "Max", maxCount)
	}
	return errors.Join(errs...)
}

// AddressLimit is the failures per address that lock it (addressMaxFailures,
// or its default).
func (l LoginSettings) AddressLimit() int {
	if l.AddressMaxFailures == 0 {
		return 4 * l.MaxFailures
	}
	return l.AddressMaxFailures
}

// AccountLimit is the failures per account from untrusted devices that lock
// it against them (accountMaxFailures, or its default).
func (l LoginSettings) AccountLimit() int {
	if l.AccountMaxFailures == 0 {
		return accountFloor * l.MaxFailures
	}
	return l.AccountMaxFailures
}

// Window is WindowSeconds as a duration.
func (r RateSettings) Window() time.Duration { return time.Duration(r.WindowSeconds) * time.Second }

// Lockout is LockoutSeconds as a duration.
func (l LoginSettings) Lockout() time.Duration { return time.Duration(l.LockoutSeconds) * time.Second }

// Expire is ExpireTime as a duration.
func (a AuthSettings) Expire() time.Duration { return time.Duration(a.ExpireTime) * time.Second }

// Refresh is RefreshTime as a duration.
func (a AuthSettings) Refresh() time.Duration { return time.Duration(a.RefreshTime) * time.Second }

// MaxAge is SessionMaxAge as a duration.
func (a AuthSettings) MaxAge() time.Duration { return time.Duration(a.SessionMaxAge) * time.Second }

// Whitelisted reports whether path needs no token. Only clean paths match, so
// that "/static/../api/v1/me" cannot borrow the whitelist entry "/static/*".
func (a AuthSettings) Whitelisted(path string) bool {
	if pathpkg.Clean(path) != path {
		return false
	}
	for _, w := range a.WhiteList {
		if dir, ok := strings.CutSuffix(w, "/*"); ok {
			if strings.HasPrefix(path, dir+"/") {
				return true
			}
			continue
		}
		if path == w {
			return true
		}
	}
	return false
}

// Link returns the public URL of path with the query q: where a mail's link
// points.
func (a AccountsSettings) Link(path string, q url.Values) string {
	return strings.TrimSuffix(a.PublicURL, "/") + path + "?" + q.Encode()
}
