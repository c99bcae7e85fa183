package i18n

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestSameKeys: every message id is in both languages, and each plural
// message has the forms its language needs.
func TestSameKeys(t *testing.T) {
	en, zh := Keys(English), Keys(Chinese)
	for _, k := range en {
		if !slices.Contains(zh, k) {
			t.Errorf("%s: missing in %s", k, Chinese)
		}
	}
	for _, k := range zh {
		if !slices.Contains(en, k) {
			t.Errorf("%s: missing in %s", k, English)
		}
	}
	if len(en) < 50 {
		t.Fatalf("only %d messages: the files were not read", len(en))
	}
	raw, err := Raw(English)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range raw {
		if forms, ok := v.(map[string]any); ok {
			if forms["one"] == nil || forms["other"] == nil {
				t.Errorf("%s: an English plural needs one and other", k)
			}
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct{ choice, accept, def, want string }{
		{"", "zh-CN,zh;q=0.9,en;q=0.8", "en", Chinese},
		{"", "zh", "en", Chinese},
		{"", "zh-Hans-CN", "en", Chinese},
		{"", "en-US,en;q=0.9", Chinese, English},
		{"en", "zh-CN", Chinese, English},
		{Chinese, "en", "en", Chinese},
		{"fr", "", Chinese, Chinese},
		{"", "fr-FR", Chinese, Chinese},
		{"", "", "xx", English},
		{"", "garbage;;q=", "en", English},
	} {
		if got := Match(tt.choice, tt.accept, tt.def); got != tt.want {
			t.Errorf("Match(%q, %q, %q) = %q, want %q", tt.choice, tt.accept, tt.def, got, tt.want)
		}
	}
}

func TestT(t *testing.T) {
	if got := T(Chinese, "duration.minutes", "Count", 5); got != "5 分钟" {
		t.Errorf("zh minutes = %q", got)
	}
	if got := T(English, "duration.minutes", "Count", 1); got != "1 minute" {
		t.Errorf("en 1 minute = %q", got)
	}
	if got := T(English, "duration.minutes", "Count", 5); got != "5 minutes" {
		t.Errorf("en 5 minutes = %q", got)
	}
	if got := T(Chinese, "no.such.key"); got != "no.such.key" {
		t.Errorf("missing key = %q, want its id", got)
	}
	if !Has(Chinese, "nav.home") || Has(Chinese, "no.such.key") {
		t.Error("Has is wrong")
	}
}

// TestLanguageParsedOnFirstUse: a process that has only spoken English has
// not parsed Chinese (about 0.4 MB of heap). Run in a fresh process, since
// the other tests here use both languages.
func TestLanguageParsedOnFirstUse(t *testing.T) {
	if os.Getenv("I18N_FRESH") == "1" {
		if got := T(English, "duration.minutes", "Count", 5); got != "5 minutes" {
			t.Fatalf("T(en) = %q", got)
		}
		if catalogs[English].loc == nil {
			t.Fatal("English was used but is not parsed")
		}
		if catalogs[Chinese].loc != nil {
			t.Fatal("Chinese was parsed though only English was used")
		}
		if got := T(Chinese, "duration.minutes", "Count", 5); got != "5 分钟" || catalogs[Chinese].loc == nil {
			t.Fatalf("T(zh-CN) = %q, parsed %v", got, catalogs[Chinese].loc != nil)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLanguageParsedOnFirstUse$", "-test.count=1")
	cmd.Env = append(os.Environ(), "I18N_FRESH=1")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("in a fresh process: %v\n%s", err, out)
	}
}
