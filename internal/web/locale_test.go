package web

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/portal-go/portal/internal/config"
	"github.com/portal-go/portal/internal/endpoint"
	"github.com/portal-go/portal/internal/i18n"
	userpb "github.com/portal-go/portal/proto/user"
)

// hasBoth fails the test unless id is a message in every language.
func hasBoth(t *testing.T, where, id string) {
	t.Helper()
	for _, lang := range i18n.Languages {
		if !i18n.Has(lang, id) {
			t.Errorf("%s: message %q missing in %s", where, id, lang)
		}
	}
}

// TestTemplateKeys: every message a template or the gateway's Go code asks
// for ({{t "id"}}, tr(c, "id"), each page's title and each notice) exists in
// both languages.
func TestTemplateKeys(t *testing.T) {
	tmpls, _ := filepath.Glob("templates/*.html")
	tKey := regexp.MustCompile(`\bt "([a-z_.]+)"`)
	for _, f := range tmpls {
		b, _ := os.ReadFile(f)
		for _, m := range tKey.FindAllStringSubmatch(string(b), -1) {
			hasBoth(t, f, m[1])
		}
		if base := strings.TrimSuffix(filepath.Base(f), ".html"); base != "layout" {
			hasBoth(t, f+" title", "title."+base)
		}
	}
	goKey := regexp.MustCompile(`\btr\(c, "([a-z_]+\.[a-z_.]+)"`)
	srcs, _ := filepath.Glob("*.go")
	n := 0
	for _, f := range srcs {
		b, _ := os.ReadFile(f)
		for _, m := range goKey.FindAllStringSubmatch(string(b), -1) {
			hasBoth(t, f, m[1])
			n++
		}
	}
	for _, name := range notices {
		hasBoth(t, "notices", "notice."+name)
	}
	for _, name := range scopes {
		hasBoth(t, "scopes", "scope."+name)
	}
	if len(tmpls) < 10 || n < 5 {
		t.Fatalf("found %d templates and %d tr calls: the scan is broken", len(tmpls), n)
	}
}

// codeLiteral is an error code as the services and the gateway spell them
// (a literal of that shape that names an event, a permission or a message
// is not one).
var codeLiteral = regexp.MustCompile(`^(auth|user|system|runtime|request|server|config)\.[a-z_]+$`)

// TestErrorCodes: every error code in the code base (a string literal or
// constant shaped <area>.<reason> in a non-test Go file) has a message in
// both languages, so that no API error's message stays untranslated.
func TestErrorCodes(t *testing.T) {
	seen := errorCodes(t)
	for code := range seen {
		hasBoth(t, "error code", "error."+code)
	}
}

// updateDocs rewrites docs/errors.md from the code (go test -run
// TestErrorTable ./internal/web/ -update-docs).
var updateDocs = flag.Bool("update-docs", false, "rewrite docs/errors.md")

// TestErrorTable: docs/errors.md, the table of every error code with its
// messages, is generated from the code and the message files; it fails when
// the committed file differs.
func TestErrorTable(t *testing.T) {
	codes := apiErrorCodes() // the OpenAPI document's Error codes, the code's (TestOpenAPISchemas)
	var b strings.Builder
	b.WriteString("# Error codes\n\nGenerated from the code by `go test ./internal/web/ -run TestErrorTable -update-docs`;\n" +
		"a test fails when this file is stale. Every JSON error is `{\"code\", \"message\"}`: the code is\n" +
		"stable, the message is in the request's language.\n\n| code | message (en) | message (zh-CN) |\n|---|---|---|\n")
	for _, code := range codes {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", code, i18n.T(i18n.English, "error."+code, "Wait", "…", "Detail", "…"), i18n.T(i18n.Chinese, "error."+code, "Wait", "…", "Detail", "…"))
	}
	const file = "../../docs/errors.md"
	if *updateDocs {
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil || string(got) != b.String() {
		t.Errorf("docs/errors.md is stale (%v): run go test ./internal/web/ -run TestErrorTable -update-docs", err)
	}
}

// errorCodes finds every error code in the code base's non-test Go files.
func errorCodes(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && codeLiteral.MatchString(s) && !eventTopics[s] &&
					!endpoint.Known(endpoint.Permission(s)) && !i18n.Has(i18n.English, s) {
					seen[s] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 20 {
		t.Fatalf("found %d codes: the scan is broken", len(seen))
	}
	return seen
}

// eventTopics are broker topics, shaped like codes but not errors.
var eventTopics = map[string]bool{"user.registered": true, "user.login": true, "user.login_failed": true, "user.logout": true, "user.updated": true, "session.revoked": true, "config.updated": true}

// allowedLiteral is text a template may hold untranslated: the product's
// name, the other language's own name, symbols and numbers.
var allowedLiteral = regexp.MustCompile(`Portal|PID|中文|English|&[a-z]+;|[^\p{L}]`)

// TestNoLiteralText: a template's text, outside tags and actions, holds no
// words (they belong in the message files); nor do its placeholder, title,
// aria-label and alt attributes.
func TestNoLiteralText(t *testing.T) {
	tmpls, _ := filepath.Glob("templates/*.html")
	action := regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	tag := regexp.MustCompile(`(?s)<[^>]*>`)
	attr := regexp.MustCompile(`\b(placeholder|title|aria-label|alt)="([^"]*)"`)
	checked := 0
	for _, f := range tmpls {
		b, _ := os.ReadFile(f)
		src := action.ReplaceAllString(string(b), " ")
		for _, m := range attr.FindAllStringSubmatch(src, -1) {
			if allowedLiteral.ReplaceAllString(m[2], "") != "" {
				t.Errorf("%s: untranslated %s=%q", f, m[1], m[2])
			}
		}
		for _, line := range strings.Split(tag.ReplaceAllString(src, "\n"), "\n") {
			if allowedLiteral.ReplaceAllString(line, "") != "" {
				t.Errorf("%s: untranslated text %q", f, strings.TrimSpace(line))
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("checked %d lines: the scan is broken", checked)
	}
}

// TestLanguageChoice: the page's language is the cookie's, else the
// browser's Accept-Language, else the config's ui.language; the switch sets
// the cookie and comes back to a path on this site only.
func TestLanguageChoice(t *testing.T) {
	zhDefault := settings()
	zhDefault.UI.Language = i18n.Chinese
	for _, tt := range []struct {
		name   string
		s      config.Settings
		accept string
		cookie string
		want   string
	}{
		{"default en", settings(), "", "", `<html lang="en">`},
		{"config zh", zhDefault, "", "", `<html lang="zh-CN">`},
		{"accept zh", settings(), "zh-CN,zh;q=0.9", "", `<html lang="zh-CN">`},
		{"accept en over config zh", zhDefault, "en-GB", "", `<html lang="en">`},
		{"cookie over accept", settings(), "zh-CN", "en", `<html lang="en">`},
		{"bad cookie ignored", settings(), "zh-CN", "xx", `<html lang="zh-CN">`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, tt.s, newFakeUsers())
			r := get("/login")
			if tt.accept != "" {
				r.Header.Set("Accept-Language", tt.accept)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: langCookie, Value: tt.cookie})
			}
			body := serve(g, r).Body.String()
			if !strings.Contains(body, tt.want) {
				t.Fatalf("want %s in %.300s", tt.want, body)
			}
			if strings.Contains(tt.want, "zh-CN") && !strings.Contains(body, "登录") {
				t.Errorf("a zh-CN page without Chinese text")
			}
		})
	}

	g := newGateway(t, settings(), newFakeUsers())
	w := serve(g, get("/lang?to=zh-CN&next=/account"))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/account" || !strings.Contains(w.Header().Get("Set-Cookie"), langCookie+"=zh-CN") {
		t.Errorf("switch: %d Location %q Set-Cookie %q", w.Code, w.Header().Get("Location"), w.Header().Get("Set-Cookie"))
	}
	if w := serve(g, get("/lang?to=zh-CN&next=//evil.example")); w.Header().Get("Location") != "/" {
		t.Errorf("switch to another site: Location %q", w.Header().Get("Location"))
	}
	if w := serve(g, get("/lang?to=xx")); w.Code != http.StatusBadRequest {
		t.Errorf("unknown language: %d", w.Code)
	}
}

// TestErrorsInLanguage: an API error keeps its code and speaks the
// request's language.
func TestErrorsInLanguage(t *testing.T) {
	users := newFakeUsers()
	users.loginErr = userpb.LockoutError("user.locked", &userpb.Lockout{Message: "too many failed logins", RetryAfterSeconds: 300})
	g := newGateway(t, settings(), users)
	r := postJSON("/api/v1/login", `{"username":"alice","password":"wrong-password"}`)
	r.Header.Set("Accept-Language", "zh-CN")
	w := serve(g, r)
	if e := apiErr(t, w); e.Code != "user.locked" || e.Message != "登录尝试次数过多，请在 5 分钟后重试。" {
		t.Errorf("zh error %+v", e)
	}
	r = postJSON("/api/v1/login", `{"username":"alice","password":"wrong-password"}`)
	if e := apiErr(t, serve(g, r)); e.Message != "Too many sign-in attempts. Try again in 5 minutes." {
		t.Errorf("en error %+v", e)
	}
}

// TestDatesInZone: dates show in the zone the cookie names, in one format,
// and in UTC when it names none or a bad one.
func TestDatesInZone(t *testing.T) {
	users := newFakeUsers()
	users.sessions = []*userpb.Session{{Id: "s-1", CreatedAt: 1700000000, LastSeen: 1700000000, Current: true}}
	g := newGateway(t, settings(), users)
	tok := validToken(t, "s-1")
	for zone, want := range map[string]string{"Asia/Shanghai": "2023-11-15 06:13 CST", "": "2023-11-14 22:13 UTC", "Nowhere/City": "2023-11-14 22:13 UTC"} {
		r := get("/account", withCookie(sessionCookie, tok))
		if zone != "" {
			r.AddCookie(&http.Cookie{Name: tzCookie, Value: zone})
		}
		if body := serve(g, r).Body.String(); !strings.Contains(body, want) {
			t.Errorf("zone %q: %q not on the page", zone, want)
		}
	}
}

func postJSON(target, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// TestPagesParsedPerLanguageOnFirstUse: a gateway that has shown only
// English pages has not parsed the Chinese ones (about 0.6 MB of heap); the
// first Chinese page parses them.
func TestPagesParsedPerLanguageOnFirstUse(t *testing.T) {
	g := newGateway(t, settings(), newFakeUsers())
	if w := serve(g, get("/login")); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<html lang="en">`) {
		t.Fatalf("English login page: %d", w.Code)
	}
	if g.templates[i18n.Chinese].t != nil {
		t.Fatal("the Chinese pages were parsed though only English was shown")
	}
	r := get("/login")
	r.Header.Set("Accept-Language", "zh-CN")
	if w := serve(g, r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<html lang="zh-CN">`) {
		t.Fatalf("Chinese login page: %d", w.Code)
	}
	if g.templates[i18n.Chinese].t == nil {
		t.Fatal("a Chinese page was shown but its templates are not parsed")
	}
}
