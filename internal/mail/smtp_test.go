package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/mail/mailtest"
)

func testMessage(t *testing.T, lang string) Message {
	t.Helper()
	m, err := Compose(KindReset, lang, "ann@example.com", Data{Username: "ann", Link: "https://portal.example/password/reset?token=abc&x=1", Valid: Valid30m[Lang(lang)]})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSMTPStartTLSAndAuth(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TLS: true, User: "portal", Pass: "s3cret"})
	s, err := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com", Username: "portal", Password: "s3cret", TLS: &tls.Config{RootCAs: srv.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	msg := testMessage(t, "zh-CN")
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages arrived", len(got))
	}
	if !got[0].TLS {
		t.Fatal("the message came over a plain connection: STARTTLS was offered and not used")
	}
	if got[0].From != "portal@example.com" || got[0].To != "ann@example.com" {
		t.Fatalf("envelope %q -> %q", got[0].From, got[0].To)
	}
	m, parts := mailtest.Parse(t, got[0].Data)
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != msg.Subject || !strings.Contains(subject, "密码") {
		t.Fatalf("subject %q (%v), want %q", subject, err, msg.Subject)
	}
	if m.Header.Get("From") != "portal@example.com" || m.Header.Get("To") != "ann@example.com" || !strings.Contains(m.Header.Get("Message-ID"), msg.ID) {
		t.Fatalf("headers %v", m.Header)
	}
	if !strings.Contains(parts["text/plain"], "https://portal.example/password/reset?token=abc&x=1") {
		t.Fatalf("text body:\n%s", parts["text/plain"])
	}
	if !strings.Contains(parts["text/html"], `href="https://portal.example/password/reset?token=abc&amp;x=1"`) {
		t.Fatalf("html body:\n%s", parts["text/html"])
	}
}

func TestSMTPWrongPassword(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TLS: true, User: "portal", Pass: "s3cret"})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com", Username: "portal", Password: "wrong", TLS: &tls.Config{RootCAs: srv.Roots}})
	var perm *PermanentError
	if err := s.Send(context.Background(), testMessage(t, "en")); !errors.As(err, &perm) {
		t.Fatalf("err %v, want a permanent refusal (535)", err)
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("a message arrived without authentication")
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TLS: true, Implicit: true})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com", ImplicitTLS: true, TLS: &tls.Config{RootCAs: srv.Roots}})
	if err := s.Send(context.Background(), testMessage(t, "en")); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("arrived %+v", got)
	}
}

func TestSMTPRefusesUntrustedCertificate(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{TLS: true})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"}) // system roots only
	if err := s.Send(context.Background(), testMessage(t, "en")); err == nil {
		t.Fatal("sent to a server whose certificate nobody signed")
	}
	if len(srv.Messages()) != 0 {
		t.Fatal("a message arrived")
	}
}

func TestSMTPNoPasswordInTheClear(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{User: "portal", Pass: "s3cret"}) // no STARTTLS
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com", Username: "portal", Password: "s3cret"})
	if err := s.Send(context.Background(), testMessage(t, "en")); !errors.Is(err, ErrNoTLS) {
		t.Fatalf("err %v, want ErrNoTLS", err)
	}
	if a := srv.Auths(); len(a) != 0 {
		t.Fatalf("credentials sent in the clear: %v", a)
	}
}

func TestSMTPPlainWithoutTLSOffered(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	if err := s.Send(context.Background(), testMessage(t, "en")); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages(); len(got) != 1 || got[0].TLS {
		t.Fatalf("arrived %+v", got)
	}
}

func TestSMTPRecipientRefusedIsPermanent(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.RefuseRecipients(true)
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	var perm *PermanentError
	if err := s.Send(context.Background(), testMessage(t, "en")); !errors.As(err, &perm) {
		t.Fatalf("err %v, want permanent", err)
	}
	srv.RefuseRecipients(false)
	srv.FailNext(1)
	if err := s.Send(context.Background(), testMessage(t, "en")); err == nil || errors.As(err, &perm) {
		t.Fatalf("err %v, want a temporary failure (451)", err)
	}
}

func TestSMTPTimeout(t *testing.T) {
	// A server that accepts and never greets: the send gives up at its
	// timeout instead of hanging the outbox.
	l := listenSilent(t)
	s, _ := NewSMTP(SMTPConfig{Address: l, From: "portal@example.com", Timeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- s.Send(context.Background(), testMessage(t, "en")) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("sent to a silent server")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the send did not give up")
	}
}

func TestSMTPFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, ok, err := SMTPFromEnv(env(nil)); ok || err != nil {
		t.Fatalf("unset: ok=%v err=%v", ok, err)
	}
	c, ok, err := SMTPFromEnv(env(map[string]string{EnvAddress: "mail.example:465", EnvFrom: "p@example.com", EnvTLS: "implicit", EnvUsername: "u", EnvPassword: "p"}))
	if !ok || err != nil || !c.ImplicitTLS || c.Username != "u" {
		t.Fatalf("%+v %v %v", c, ok, err)
	}
	for _, bad := range []map[string]string{
		{EnvAddress: "mail.example", EnvFrom: "p@example.com"},
		{EnvAddress: "mail.example:25", EnvFrom: "not an address"},
		{EnvAddress: "mail.example:25", EnvFrom: "p@example.com", EnvTLS: "maybe"},
		{EnvAddress: "mail.example:25", EnvFrom: "p@example.com", EnvUsername: "u"},
	} {
		if _, _, err := SMTPFromEnv(env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
