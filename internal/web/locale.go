package web

import (
	"errors"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gin-gonic/gin/render"

	pauth "github.com/portal-go/portal/internal/auth"
	"github.com/portal-go/portal/internal/i18n"
	userpb "github.com/portal-go/portal/proto/user"
)

// The language and time zone of a request. The language is the header
// switch's choice (langCookie), else the browser's Accept-Language, else
// ui.language from the config center; the zone is the one chosen on the
// account page or reported by the browser (tzCookie, set by
// static/tz.js), else UTC.
const (
	langCookie = "portal_lang"
	tzCookie   = "portal_tz"
	ctxLang    = "portal.lang"
	ctxZone    = "portal.zone"
	// langPath switches the language: GET /lang?to=zh-CN&next=/path. It is
	// served before authentication (a preference, no resource), so that the
	// sign-in page can switch too.
	langPath = "/lang"
	// dateLayout is the one format of every date a page shows.
	dateLayout = "2006-01-02 15:04 MST"
)

// locale sets the request's language and zone, and serves langPath.
func (g *Gateway) locale(c *gin.Context) {
	choice, _ := c.Cookie(langCookie)
	lang := i18n.Match(choice, c.GetHeader("Accept-Language"), g.Config.Current().UI.Language)
	c.Set(ctxLang, lang)
	zone := time.UTC
	if name, err := c.Cookie(tzCookie); err == nil && name != "" {
		if loc, err := loadZone(name); err == nil {
			zone = loc
		}
	}
	c.Set(ctxZone, zone)
	if c.Request.URL.Path == langPath && c.Request.Method == http.MethodGet {
		to := c.Query("to")
		if !i18n.Supported(to) {
			g.fail(c, http.StatusBadRequest, codeBadLanguage, "no such language")
			return
		}
		http.SetCookie(c.Writer, &http.Cookie{
			Name: langCookie, Value: to, Path: "/", MaxAge: 365 * 24 * 3600,
			Secure: c.Request.TLS != nil, SameSite: http.SameSiteLaxMode, HttpOnly: true,
		})
		g.rememberLanguage(c, to)
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		c.Abort()
		return
	}
	c.Next()
}

// rememberLanguage makes lang the signed-in caller's language, which
// their mail is written in; a switch without a session only sets the
// cookie, and a failure only costs the mail's language.
func (g *Gateway) rememberLanguage(c *gin.Context, lang string) {
	cl, err := g.identify(c, g.Config.Current().Auth, false)
	if err != nil || cl.Info.Language == lang || cl.Info.KeyId != "" {
		return
	}
	ctx := pauth.ContextWithToken(c.Request.Context(), cl.Token)
	if _, err := g.Accounts.UpdateProfile(ctx, &userpb.UpdateProfileRequest{Language: &lang}); err != nil {
		g.Log.Warn("language not kept on the account", "err", err)
		return
	}
	_ = g.Cache.Delete(c.Request.Context(), cacheSession+cl.Info.SessionId)
}

// loadZone loads an IANA zone name, refusing the local zone's alias and
// names that are not plain zone names.
func loadZone(name string) (*time.Location, error) {
	if name == "Local" || len(name) > 64 {
		return nil, errBadZone
	}
	return time.LoadLocation(name)
}

// errBadZone is a time zone name that is not one.
var errBadZone = errors.New("web: bad time zone")

// langOf is the request's language.
func langOf(c *gin.Context) string {
	if l := c.GetString(ctxLang); l != "" {
		return l
	}
	return i18n.English
}

// zoneOf is the request's time zone.
func zoneOf(c *gin.Context) *time.Location {
	if z, ok := c.Get(ctxZone); ok {
		return z.(*time.Location)
	}
	return time.UTC
}

// tr translates id into the request's language.
func tr(c *gin.Context, id string, args ...any) string {
	return i18n.T(langOf(c), id, args...)
}

// formatTime is a time as every page shows it: in zone, in dateLayout.
func formatTime(t time.Time, zone *time.Location) string {
	return t.In(zone).Format(dateLayout)
}

// pageSet is one language's pages: the templates with t and lang bound to
// the language, parsed when first rendered. Each parsed language holds about
// 0.6 MB of heap (a heap profile of an idle Portal), so a Portal whose users
// read one language never parses the other's, as with i18n's messages.
type pageSet struct {
	lang string
	once sync.Once
	t    *template.Template
}

// get parses the set once and returns it. A template that does not parse
// is a build defect: every language's pages are rendered by the tests.
func (p *pageSet) get() *template.Template {
	p.once.Do(func() {
		p.t = template.Must(template.New("").Funcs(templateFuncs).Funcs(langFuncs(p.lang)).ParseFS(templateFS, "templates/*.html"))
	})
	return p.t
}

// templateSets makes each language's page set, parsed on first use. Each
// language is parsed from the files, not cloned from another's parse: a
// clone's nodes point back to the tree they were copied from, which then
// stays alive beside the copy.
func templateSets() map[string]*pageSet {
	sets := map[string]*pageSet{}
	for _, lang := range i18n.Languages {
		sets[lang] = &pageSet{lang: lang}
	}
	return sets
}

// langFuncs are the template functions bound to a language: t translates
// a message id with name/value pairs.
func langFuncs(lang string) template.FuncMap {
	return template.FuncMap{
		"t":    func(id string, args ...any) string { return i18n.T(lang, id, args...) },
		"lang": func() string { return lang },
	}
}

// render renders a page in the request's language.
func (g *Gateway) render(c *gin.Context, status int, name string, data any) {
	p := g.templates[langOf(c)]
	if p == nil {
		p = g.templates[i18n.English]
	}
	c.Render(status, render.HTML{Template: p.get(), Name: name, Data: data})
}
