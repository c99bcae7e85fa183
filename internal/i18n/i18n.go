// Package i18n holds Portal's translations (English and Simplified Chinese)
// and picks the language of a request: an explicit choice (the header
// switch's cookie) first, then the browser's Accept-Language, then the
// configured default.
//
// It is built on github.com/nicksnyder/go-i18n/v2: message files per
// language, CLDR plural rules, and golang.org/x/text's language matching,
// without the code generation step that golang.org/x/text/message's catalogs
// need.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed locales/*.json
var localeFS embed.FS

// The languages Portal speaks, by the codes pages, cookies and config use.
const (
	English = "en"
	Chinese = "zh-CN"
)

// Languages lists the supported codes, the fallback first.
var Languages = []string{English, Chinese}

var (
	tags    = []language.Tag{language.English, language.MustParse(Chinese)}
	matcher = language.NewMatcher(tags)
	// catalogs holds each language's messages, parsed when first asked for.
	catalogs = map[string]*catalog{}
)

func init() {
	for _, lang := range Languages {
		catalogs[lang] = &catalog{lang: lang}
	}
}

// catalog is one language's messages: a go-i18n bundle of its own, parsed
// on first use. Parsed, a language holds about 0.4 MB of heap (go-i18n keeps
// a message, a template and a map of plural forms per id), so a Portal whose
// users all read one language never holds the other's. A message missing in
// a language falls back to English in T, not in the bundle.
type catalog struct {
	lang string
	once sync.Once
	loc  *goi18n.Localizer
	keys []string // message ids, sorted
}

// load parses the catalog's message file, once; a file that does not parse
// is a build defect (TestSameKeys parses every language).
func (c *catalog) load() *catalog {
	c.once.Do(func() {
		b, err := localeFS.ReadFile("locales/" + c.lang + ".json")
		if err != nil {
			panic(err)
		}
		bundle := goi18n.NewBundle(language.MustParse(c.lang))
		f, err := bundle.ParseMessageFileBytes(b, c.lang+".json")
		if err != nil {
			panic(fmt.Sprintf("i18n: %s: %v", c.lang, err))
		}
		for _, m := range f.Messages {
			c.keys = append(c.keys, m.ID)
		}
		sort.Strings(c.keys)
		c.loc = goi18n.NewLocalizer(bundle, c.lang)
	})
	return c
}

// localizer is lang's localizer, English's for an unsupported lang.
func localizer(lang string) *goi18n.Localizer {
	c, ok := catalogs[lang]
	if !ok {
		c = catalogs[English]
	}
	return c.load().loc
}

// Supported reports whether lang is one of Languages, spelled exactly.
func Supported(lang string) bool {
	return slices.Contains(Languages, lang)
}

// Match picks the language of a request: choice (a cookie) when supported,
// else the best match of acceptLanguage, else def (or English).
func Match(choice, acceptLanguage, def string) string {
	if Supported(choice) {
		return choice
	}
	if acceptLanguage != "" {
		prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
		if err == nil && len(prefs) > 0 {
			_, i, conf := matcher.Match(prefs...)
			if conf != language.No {
				return Languages[i]
			}
		}
	}
	if Supported(def) {
		return def
	}
	return English
}

// Has reports whether lang has a message id (without falling back).
func Has(lang, id string) bool {
	if !Supported(lang) {
		return false
	}
	_, tag, err := localizer(lang).LocalizeWithTag(&goi18n.LocalizeConfig{MessageID: id})
	return err == nil && tag.String() == canonical(lang)
}

func canonical(lang string) string { return language.MustParse(lang).String() }

// T translates id into lang. args are pairs of name and value for the
// message's {{.Name}} placeholders; a pair named "Count" also picks the
// plural form. A message missing in lang falls back to English, and one
// missing there to its id (a test keeps both files complete).
func T(lang, id string, args ...any) string {
	l := localizer(lang)
	cfg := &goi18n.LocalizeConfig{MessageID: id}
	if len(args) > 0 {
		data := make(map[string]any, len(args)/2)
		for i := 0; i+1 < len(args); i += 2 {
			name := fmt.Sprint(args[i])
			data[name] = args[i+1]
			if name == "Count" {
				cfg.PluralCount = args[i+1]
			}
		}
		cfg.TemplateData = data
	}
	s, err := l.Localize(cfg)
	if err != nil || s == "" {
		if s, err = localizer(English).Localize(cfg); err != nil || s == "" {
			return id
		}
	}
	return s
}

// Keys returns lang's message ids, sorted.
func Keys(lang string) []string {
	c, ok := catalogs[lang]
	if !ok {
		return nil
	}
	return c.load().keys
}

// Raw returns the message file of lang, decoded, for tests and tools.
func Raw(lang string) (map[string]any, error) {
	b, err := localeFS.ReadFile("locales/" + lang + ".json")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}
