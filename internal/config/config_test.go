package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	// auth builds settings from the defaults with edit applied.
	auth := func(edit func(a *AuthSettings)) Settings {
		s := Defaults()
		edit(&s.Auth)
		return s
	}
	// login builds settings from the defaults with edit applied to Login.
	login := func(edit func(l *LoginSettings)) Settings {
		s := Defaults()
		edit(&s.Login)
		return s
	}
	// accounts builds settings from the defaults with edit applied to Accounts.
	accounts := func(edit func(a *AccountsSettings)) Settings {
		s := Defaults()
		edit(&s.Accounts)
		return s
	}
	// rate builds settings from the defaults with edit applied to RateLimit.
	rate := func(edit func(r *RateSettings)) Settings {
		s := Defaults()
		edit(&s.RateLimit)
		return s
	}
	tests := []struct {
		name string
		s    Settings
		ok   bool
	}{
		{"defaults", Defaults(), true},
		{"zero settings", Settings{}, false},

		{"expireTime below the minimum", auth(func(a *AuthSettings) { a.ExpireTime, a.RefreshTime = minExpire-1, 0 }), false},
		{"expireTime at the minimum", auth(func(a *AuthSettings) { a.ExpireTime, a.RefreshTime = minExpire, 0 }), true},
		{"expireTime negative", auth(func(a *AuthSettings) { a.ExpireTime, a.RefreshTime = -900, 0 }), false},

		{"refreshTime negative", auth(func(a *AuthSettings) { a.RefreshTime = -1 }), false},
		{"refreshTime zero", auth(func(a *AuthSettings) { a.RefreshTime = 0 }), true},
		{"refreshTime one below expireTime", auth(func(a *AuthSettings) { a.RefreshTime = a.ExpireTime - 1 }), true},
		{"refreshTime equal to expireTime", auth(func(a *AuthSettings) { a.RefreshTime = a.ExpireTime }), false},
		{"refreshTime above expireTime", auth(func(a *AuthSettings) { a.RefreshTime = a.ExpireTime + 1 }), false},

		{"sessionMaxAge below expireTime", auth(func(a *AuthSettings) { a.SessionMaxAge = a.ExpireTime - 1 }), false},
		{"sessionMaxAge equal to expireTime", auth(func(a *AuthSettings) { a.SessionMaxAge = a.ExpireTime }), true},
		{"sessionMaxAge at the maximum", auth(func(a *AuthSettings) { a.SessionMaxAge = maxSessionAge }), true},
		{"sessionMaxAge above the maximum", auth(func(a *AuthSettings) { a.SessionMaxAge = maxSessionAge + 1 }), false},
		{"expireTime and sessionMaxAge at the maximum", auth(func(a *AuthSettings) { a.ExpireTime, a.SessionMaxAge = maxSessionAge, maxSessionAge }), true},
		{"expireTime above the maximum session", auth(func(a *AuthSettings) { a.ExpireTime, a.SessionMaxAge = maxSessionAge+1, maxSessionAge+1 }), false},

		{"empty whitelist", auth(func(a *AuthSettings) { a.WhiteList = nil }), true},
		{"whitelist root", auth(func(a *AuthSettings) { a.WhiteList = []string{"/"} }), true},
		{"whitelist entry without leading slash", auth(func(a *AuthSettings) { a.WhiteList = []string{"/login", "login"} }), false},
		{"whitelist empty entry", auth(func(a *AuthSettings) { a.WhiteList = []string{""} }), false},
		{"whitelist wildcard without slash", auth(func(a *AuthSettings) { a.WhiteList = []string{"static/*"} }), false},

		{"login zero", login(func(l *LoginSettings) { *l = LoginSettings{} }), false},
		{"maxFailures zero", login(func(l *LoginSettings) { l.MaxFailures = 0 }), false},
		{"maxFailures negative", login(func(l *LoginSettings) { l.MaxFailures = -5 }), false},
		{"maxFailures one", login(func(l *LoginSettings) { l.MaxFailures = 1 }), true},
		{"maxFailures at the maximum", login(func(l *LoginSettings) { l.MaxFailures = maxFailures }), true},
		{"maxFailures above the maximum", login(func(l *LoginSettings) { l.MaxFailures = maxFailures + 1 }), false},
		{"lockoutSeconds zero", login(func(l *LoginSettings) { l.LockoutSeconds = 0 }), false},
		{"lockoutSeconds negative", login(func(l *LoginSettings) { l.LockoutSeconds = -300 }), false},
		{"lockoutSeconds one", login(func(l *LoginSettings) { l.LockoutSeconds = 1 }), true},
		{"lockoutSeconds at the maximum", login(func(l *LoginSettings) { l.LockoutSeconds = maxLockout }), true},
		{"lockoutSeconds above the maximum", login(func(l *LoginSettings) { l.LockoutSeconds = maxLockout + 1 }), false},
		{"addressMaxFailures default", login(func(l *LoginSettings) { l.AddressMaxFailures = 0 }), true},
		{"addressMaxFailures below maxFailures", login(func(l *LoginSettings) { l.AddressMaxFailures = l.MaxFailures - 1 }), false},
		{"addressMaxFailures at maxFailures", login(func(l *LoginSettings) { l.AddressMaxFailures = l.MaxFailures }), true},
		{"accountMaxFailures below the floor", login(func(l *LoginSettings) { l.AccountMaxFailures = 10*l.MaxFailures - 1 }), false},
		{"accountMaxFailures at the floor", login(func(l *LoginSettings) { l.AccountMaxFailures = 10 * l.MaxFailures }), true},
		{"accountMaxFailures negative", login(func(l *LoginSettings) { l.AccountMaxFailures = -1 }), false},
		{"rate window zero", rate(func(r *RateSettings) { r.WindowSeconds = 0 }), false},
		{"rate window above the maximum", rate(func(r *RateSettings) { r.WindowSeconds = maxWindow + 1 }), false},
		{"loginPerAddress zero", rate(func(r *RateSettings) { r.LoginPerAddress = 0 }), false},
		{"loginPerAccount zero", rate(func(r *RateSettings) { r.LoginPerAccount = 0 }), false},
		{"registerPerAddress zero", rate(func(r *RateSettings) { r.RegisterPerAddress = 0 }), false},
		{"registerPerAccount zero", rate(func(r *RateSettings) { r.RegisterPerAccount = 0 }), false},
		{"rate limits one", rate(func(r *RateSettings) { *r = RateSettings{1, 1, 1, 1, 1} }), true},
		{"publicURL https with a path", accounts(func(a *AccountsSettings) { a.PublicURL = "https://portal.example/base" }), true},
		{"publicURL empty", accounts(func(a *AccountsSettings) { a.PublicURL = "" }), false},
		{"publicURL relative", accounts(func(a *AccountsSettings) { a.PublicURL = "/portal" }), false},
		{"publicURL javascript", accounts(func(a *AccountsSettings) { a.PublicURL = "javascript://x/%0aalert(1)" }), false},
		{"publicURL with a query", accounts(func(a *AccountsSettings) { a.PublicURL = "https://portal.example/?next=evil" }), false},
		{"publicURL with credentials", accounts(func(a *AccountsSettings) { a.PublicURL = "https://u:p@portal.example" }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tc.s, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error", tc.s)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestWhitelisted(t *testing.T) {
	a := Defaults().Auth // /login /register /healthz /readyz /static/* /api/v1/login /api/v1/register
	tests := []struct {
		path string
		want bool
	}{
		{"/login", true},
		{"/register", true},
		{"/api/v1/login", true},
		{"/static/app.js", true},
		{"/static/css/site.css", true},
		{"/static/a", true},

		{"/static", false},              // the directory itself is not under "/static/*"
		{"/static/", false},             // unclean
		{"/staticfoo/app.js", false},    // a sibling, not a child
		{"/static/../api/v1/me", false}, // unclean: would escape the prefix
		{"/static/./app.js", false},     // unclean
		{"/static//app.js", false},      // unclean
		{"/static/..", false},           // unclean
		{"//login", false},              // unclean
		{"/login/", false},              // unclean, and not "/login"
		{"/login/x", false},             // not a prefix entry
		{"/loginx", false},              // exact entries match exactly
		{"/LOGIN", false},               // case matters
		{"/api/v1/me", false},           // not listed
		{"/api/v1/login/../../v1/me", false},
		{"/", false},
		{"", false},
		{"login", false},
		{"/login?next=/me", false}, // paths, not URLs
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := a.Whitelisted(tc.path); got != tc.want {
				t.Errorf("Whitelisted(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}

func TestWhitelistedCustomEntries(t *testing.T) {
	tests := []struct {
		name string
		list []string
		path string
		want bool
	}{
		{"root wildcard matches everything clean", []string{"/*"}, "/api/v1/me", true},
		{"root wildcard refuses unclean", []string{"/*"}, "/a/../b", false},
		{"nested wildcard", []string{"/docs/v1/*"}, "/docs/v1/intro", true},
		{"nested wildcard not the parent", []string{"/docs/v1/*"}, "/docs/intro", false},
		{"empty list", nil, "/login", false},
		{"exact root", []string{"/"}, "/", true},
		{"exact root is not a prefix", []string{"/"}, "/login", false},
		{"star inside is literal", []string{"/a*"}, "/ab", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := AuthSettings{WhiteList: tc.list}
			if got := a.Whitelisted(tc.path); got != tc.want {
				t.Errorf("Whitelisted(%q) with %q = %v, want %v", tc.path, tc.list, got, tc.want)
			}
		})
	}
}

func TestDurations(t *testing.T) {
	a := AuthSettings{ExpireTime: 900, RefreshTime: 300, SessionMaxAge: 86400}
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"Expire", a.Expire(), 15 * time.Minute},
		{"Refresh", a.Refresh(), 5 * time.Minute},
		{"MaxAge", a.MaxAge(), 24 * time.Hour},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s() = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestStatic(t *testing.T) {
	c, err := Static(Defaults())
	if err != nil {
		t.Fatalf("Static(Defaults()): %v", err)
	}
	if c.Source() != "built-in" || c.Current().Auth.ExpireTime != Defaults().Auth.ExpireTime {
		t.Errorf("Static center: source %q, settings %+v", c.Source(), c.Current())
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	bad := Defaults()
	bad.Auth.RefreshTime = bad.Auth.ExpireTime
	if c, err := Static(bad); !errors.Is(err, ErrInvalid) || c != nil {
		t.Errorf("Static(invalid) = %v, %v; want ErrInvalid", c, err)
	}
}

func TestLoginDefaults(t *testing.T) {
	l := Defaults().Login
	if l.MaxFailures != 5 || l.LockoutSeconds != 300 || l.Lockout() != 5*time.Minute {
		t.Fatalf("login defaults = %+v (lockout %v), want 5 failures, 300 s", l, l.Lockout())
	}
}

func TestDecodeLogin(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want LoginSettings
		ok   bool
	}{
		{"absent", `{"auth":{"expireTime":900}}`, LoginSettings{MaxFailures: 5, LockoutSeconds: 300}, true},
		{"one key keeps the other default", `{"login":{"maxFailures":3}}`, LoginSettings{MaxFailures: 3, LockoutSeconds: 300}, true},
		{"both", `{"login":{"maxFailures":3,"lockoutSeconds":2}}`, LoginSettings{MaxFailures: 3, LockoutSeconds: 2}, true},
		{"zero failures", `{"login":{"maxFailures":0}}`, LoginSettings{}, false},
		{"lockout too long", `{"login":{"lockoutSeconds":86401}}`, LoginSettings{}, false},
		{"wrong type", `{"login":{"maxFailures":"3"}}`, LoginSettings{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decode([]byte(tc.doc))
			if !tc.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("decode(%s) = %+v, %v; want ErrInvalid", tc.doc, s.Login, err)
				}
				return
			}
			if err != nil || s.Login != tc.want {
				t.Fatalf("decode(%s) = %+v, %v; want %+v", tc.doc, s.Login, err, tc.want)
			}
		})
	}
}

func TestLoginLimits(t *testing.T) {
	l := LoginSettings{MaxFailures: 3}
	if l.AddressLimit() != 12 || l.AccountLimit() != 30 {
		t.Fatalf("defaults: address %d, account %d; want 12 and 30", l.AddressLimit(), l.AccountLimit())
	}
	l.AddressMaxFailures, l.AccountMaxFailures = 5, 40
	if l.AddressLimit() != 5 || l.AccountLimit() != 40 {
		t.Fatalf("set: address %d, account %d; want 5 and 40", l.AddressLimit(), l.AccountLimit())
	}
	if r := Defaults().RateLimit; r.Window() != time.Minute {
		t.Fatalf("rate window %v, want a minute", r.Window())
	}
}

// TestValidateReportsAll: every broken rule is reported in one answer.
func TestValidateReportsAll(t *testing.T) {
	s := Defaults()
	s.Auth.ExpireTime = 1
	s.Login.MaxFailures = 0
	s.RateLimit.WindowSeconds = 0
	s.UI.Language = "fr"
	err := s.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	for _, key := range []string{"auth.expireTime", "login.maxFailures", "rateLimit.windowSeconds", "ui.language"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s not reported in %q", key, err)
		}
	}
}
