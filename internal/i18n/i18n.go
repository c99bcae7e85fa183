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
	"sort"

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
	bundle  = goi18n.NewBundle(language.English)
	tags    = []language.Tag{language.English, language.MustParse(Chinese)}
	matcher = language.NewMatcher(tags)
	// localizers holds one localizer per language, made once.
	localizers = map[string]*goi18n.Localizer{}
	// keys are each language's message ids, for Keys.
	keys = map[string][]string{}
)

func init() {
	for _, lang := range Languages {
		b, err := localeFS.ReadFile("locales/" + lang + ".json")
		if err != nil {
			panic(err)
		}
		f, err := bundle.ParseMessageFileBytes(b, lang+".json")
		if err != nil {
			panic(fmt.Sprintf("i18n: %s: %v", lang, err))
		}
		for _, m := range f.Messages {
			keys[lang] = append(keys[lang], m.ID)
		}
		sort.Strings(keys[lang])
		localizers[lang] = goi18n.NewLocalizer(bundle, lang)
	}
}

// Supported reports whether lang is one of Languages, spelled exactly.
func Supported(lang string) bool {
	_, ok := localizers[lang]
	return ok
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
	l, ok := localizers[lang]
	if !ok {
		return false
	}
	_, tag, err := l.LocalizeWithTag(&goi18n.LocalizeConfig{MessageID: id})
	return err == nil && tag.String() == canonical(lang)
}

func canonical(lang string) string { return language.MustParse(lang).String() }

// T translates id into lang. args are pairs of name and value for the
// message's {{.Name}} placeholders; a pair named "Count" also picks the
// plural form. A message missing in lang falls back to English, and one
// missing there to its id (a test keeps both files complete).
func T(lang, id string, args ...any) string {
	l, ok := localizers[lang]
	if !ok {
		l = localizers[English]
	}
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
		if s, err = localizers[English].Localize(cfg); err != nil || s == "" {
			return id
		}
	}
	return s
}

// Keys returns lang's message ids, sorted.
func Keys(lang string) []string { return keys[lang] }

// Raw returns the message file of lang, decoded, for tests and tools.
func Raw(lang string) (map[string]any, error) {
	b, err := localeFS.ReadFile("locales/" + lang + ".json")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}
