package config

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/i18n"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// The schema is read from Settings: every field is a key with the type,
// unit and default its declaration gives, in the order of the fields.
func TestSchema(t *testing.T) {
	want := map[string]struct {
		typ  Type
		unit string
		def  string
	}{
		"auth.whiteList":            {TypeList, "", ""},
		"auth.expireTime":           {TypeDuration, "s", "900"},
		"login.maxFailures":         {TypeInteger, "", "5"},
		"accounts.selfRegistration": {TypeBoolean, "", "true"},
		"accounts.publicURL":        {TypeString, "", `"http://localhost:8080"`},
		"ui.language":               {TypeChoice, "", `"en"`},
	}
	keys := Schema()
	if len(keys) != len(flatten(Defaults())) {
		t.Fatalf("schema has %d keys, Settings %d", len(keys), len(flatten(Defaults())))
	}
	if keys[0].Name != "auth.whiteList" {
		t.Errorf("first key = %s, want auth.whiteList (Settings' order)", keys[0].Name)
	}
	for _, k := range keys {
		w, ok := want[k.Name]
		if !ok {
			continue
		}
		delete(want, k.Name)
		if k.Type != w.typ || k.Unit != w.unit || (w.def != "" && string(k.Default) != w.def) {
			t.Errorf("%s = %s %q default %s, want %s %q %s", k.Name, k.Type, k.Unit, k.Default, w.typ, w.unit, w.def)
		}
	}
	if len(want) > 0 {
		t.Errorf("keys missing from the schema: %v", want)
	}
	if c := keyNamed("ui.language").Choices; strings.Join(c, ",") != "en,zh-CN" {
		t.Errorf("ui.language choices = %v", c)
	}
}

func formOf(s Settings) map[string]string {
	m := map[string]string{}
	for _, k := range Schema() {
		if v := FormValue(s, k.Name); k.Type != TypeBoolean || v == "true" {
			m[k.Name] = v
		}
	}
	return m
}

func getter(m map[string]string) func(string) (string, bool) {
	return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
}

// A form of the current values reads back as them; one with several
// mistakes reports each, beside its key.
func TestFromForm(t *testing.T) {
	d := Defaults()
	d.Accounts.RequireEmail = true
	got, err := FromForm(getter(formOf(d)))
	if err != nil {
		t.Fatalf("FromForm(defaults): %v", err)
	}
	if Diff(d, got) != "no change" {
		t.Errorf("round trip changed: %s", Diff(d, got))
	}

	m := formOf(Defaults())
	m["auth.expireTime"] = "soon"
	m["login.maxFailures"] = "0"
	m["ui.language"] = "fr"
	m["auth.whiteList"] = "/login\n\n  relative  \n"
	delete(m, "accounts.selfRegistration") // an unticked box
	got, err = FromForm(getter(m))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("FromForm = %v, want ErrInvalid", err)
	}
	keys := map[string]int{}
	for _, p := range ProblemsOf(err) {
		keys[p.Key]++
	}
	for _, k := range []string{"auth.expireTime", "login.maxFailures", "ui.language", "auth.whiteList"} {
		if keys[k] != 1 {
			t.Errorf("problems about %s: %d, want 1 (all: %v)", k, keys[k], err)
		}
	}
	// auth.expireTime could not be read: the rules that use it say nothing
	// about it, and the rest was still read.
	if got.Accounts.SelfRegistration || strings.Join(got.Auth.WhiteList, ",") != "/login,relative" {
		t.Errorf("read %+v", got)
	}
}

// A value of the wrong type in a document names its key in words, not in
// Go's types; every unknown key is named at once.
func TestParseNamesKeys(t *testing.T) {
	_, err := Parse([]byte("login:\n  maxFailures: many\n"))
	if err == nil || !strings.Contains(err.Error(), "login.maxFailures must be a whole number") || strings.Contains(err.Error(), "Go") {
		t.Errorf("wrong type: %v", err)
	}
	_, err = Parse([]byte("auth:\n  a: 1\n  b: 2\n"))
	if n := len(ProblemsOf(err)); n != 2 {
		t.Errorf("two unknown keys: %d problems: %v", n, err)
	}
}

func TestChanges(t *testing.T) {
	a, b := Defaults(), Defaults()
	b.UI.Language = "zh-CN"
	b.Auth.ExpireTime = 600
	got := Changes(a, b)
	if len(got) != 2 || got[0] != (Change{"auth.expireTime", "900", "600"}) || got[1] != (Change{"ui.language", `"en"`, `"zh-CN"`}) {
		t.Errorf("Changes = %v", got)
	}
}

// OnChange hears a change made to the file, with before and after, and not
// one made through Update; Origin names the source.
func TestOnChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	c, err := OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o := c.Origin(); o != "built-in" {
		t.Errorf("Origin without a file = %q", o)
	}
	heard := listen(c)
	if _, _, err := c.Update([]byte("auth:\n  expireTime: 600\n")); err != nil {
		t.Fatal(err)
	}
	if o := c.Origin(); o != "file" {
		t.Errorf("Origin after the first edit = %q", o)
	}
	writeConfig(t, path, "auth:\n  expireTime: 1200\n")
	poll.Wait(t, 10*time.Second, "the file's change was not heard", func() bool { return len(heard()) > 0 })
	if h := heard(); len(h) != 1 || h[0] != "auth.expireTime: 600 -> 1200" {
		t.Errorf("heard %q, want only the file's change", h)
	}
}

// Every key has a description in every language.
func TestSchemaDescribed(t *testing.T) {
	for _, lang := range i18n.Languages {
		for _, k := range Schema() {
			if !i18n.Has(lang, k.DescriptionID()) {
				t.Errorf("%s has no description in %s (%s)", k.Name, lang, k.DescriptionID())
			}
		}
	}
}

// With no file named, config goes under the data dir, unless the working
// directory has a portal.yaml already: an edit never creates one there.
func TestFileIn(t *testing.T) {
	t.Chdir(t.TempDir())
	if got := FileIn("", "data"); got != filepath.Join("data", "portal.yaml") {
		t.Errorf("FileIn without ./portal.yaml = %q", got)
	}
	if got := FileIn("my.yaml", "data"); got != "my.yaml" {
		t.Errorf("FileIn(named) = %q", got)
	}
	writeConfig(t, "portal.yaml", "{}\n")
	if got := FileIn("", "data"); got != "portal.yaml" {
		t.Errorf("FileIn with ./portal.yaml = %q", got)
	}
}
