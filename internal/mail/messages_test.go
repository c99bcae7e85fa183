package mail

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestComposeEveryKindInEveryLanguage(t *testing.T) {
	for lang, kinds := range messages {
		for _, kind := range []Kind{KindVerify, KindReset, KindInvite, KindEmailChanged} {
			if _, ok := kinds[kind]; !ok {
				t.Errorf("%s has no %s message", lang, kind)
				continue
			}
			m, err := Compose(kind, lang, "a@example.com", Data{Username: "ann", Link: "https://x.example/l?t=1", Valid: Valid24h[lang], NewEmail: "b@example.com"})
			if err != nil {
				t.Fatalf("%s/%s: %v", lang, kind, err)
			}
			if m.Subject == "" || !strings.Contains(m.Text, "ann") || !strings.Contains(m.HTML, "ann") || m.ID == "" {
				t.Errorf("%s/%s: %+v", lang, kind, m)
			}
		}
	}
}

func TestComposeEscapesHTMLAndFallsBack(t *testing.T) {
	m, err := Compose(KindEmailChanged, "xx", "a@example.com", Data{Username: "ann", NewEmail: "<b>x</b>@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.HTML, "&lt;b&gt;x&lt;/b&gt;") || strings.Contains(m.HTML, "<b>x") {
		t.Fatalf("not escaped:\n%s", m.HTML)
	}
	if !strings.Contains(m.Subject, "email address") {
		t.Fatalf("unknown language did not fall back to English: %q", m.Subject)
	}
	if _, err := Compose("nope", "en", "a@example.com", Data{}); err == nil {
		t.Fatal("an unknown kind composed")
	}
}

func TestValidAddress(t *testing.T) {
	for _, ok := range []string{"a@example.com", " a.b+c@sub.example.org "} {
		if _, err := ValidAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "a@b", "Ann <a@example.com>", "a@example.com\r\nBcc: x@example.com", "a@example.com, b@example.com", strings.Repeat("a", 250) + "@example.com"} {
		if _, err := ValidAddress(bad); !errors.Is(err, ErrBadAddress) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEncodeRefusesHeaderInjection(t *testing.T) {
	if _, err := encode("p@example.com", Message{ID: "1", To: "a@example.com", Subject: "hi\r\nBcc: x@example.com"}, time.Now()); err == nil {
		t.Fatal("a line break in the subject was written")
	}
}

// listenSilent accepts connections and never answers.
func listenSilent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return l.Addr().String()
}
