package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/portal-go/portal/internal/i18n"
)

// Every kind of problem has its own text in every language, and every
// problem Parse, FromForm and Validate report is of a listed kind, its
// English text what the error says.
func TestProblemsSpeakEveryLanguage(t *testing.T) {
	for _, id := range ProblemIDs() {
		for _, lang := range i18n.Languages {
			if !i18n.Has(lang, id) {
				t.Errorf("%s has no %s text", id, lang)
			}
		}
	}
	s := Defaults()
	s.Auth.ExpireTime, s.Auth.RefreshTime, s.Auth.SessionMaxAge, s.Auth.WhiteList = 1, -1, 0, []string{"x"}
	s.Login.MaxFailures, s.Login.AddressMaxFailures, s.Login.AccountMaxFailures = 0, -1, -1
	s.Accounts.PublicURL, s.UI.Language = "ftp://x", "fr"
	var all []Problem
	all = append(all, ProblemsOf(s.Validate())...)
	for _, doc := range []string{"[1]", "auth: 1\nnope: {}\n", "auth:\n  nope: 1\n", "login:\n  maxFailures: x\n", ":\n  - ["} {
		_, err := Parse([]byte(doc))
		all = append(all, ProblemsOf(err)...)
	}
	_, err := FromForm(func(string) (string, bool) { return "many", true })
	all = append(all, ProblemsOf(err)...)
	seen := map[string]bool{}
	for _, p := range all {
		seen[p.ID] = true
		if !slices.Contains(ProblemIDs(), p.ID) {
			t.Errorf("problem %+v is of no listed kind", p)
		}
		en, zh := p.Text(i18n.English), p.Text(i18n.Chinese)
		if p.Error() != ErrInvalid.Error()+": "+en || en == zh || strings.Contains(en+zh, "<no value>") {
			t.Errorf("%+v: en %q, zh-CN %q, error %q", p, en, zh, p.Error())
		}
	}
	if len(seen) < 12 {
		t.Errorf("only %d kinds of problem seen: %v", len(seen), seen)
	}
}
