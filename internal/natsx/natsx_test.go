package natsx_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	natsbroker "github.com/go-micro/plugins/v4/broker/nats"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"

	"github.com/portal-go/portal/internal/natsx"
	"github.com/portal-go/portal/internal/testenv"
)

func TestServers(t *testing.T) {
	for _, c := range []struct {
		in, want string
		secure   bool
	}{
		{"", nats.DefaultURL, false},
		{"h:4222, nats://tok@h2:4222", "nats://h:4222,nats://tok@h2:4222", false},
		{"tls://u:p@h:4222", "nats://u:p@h:4222", true},
	} {
		urls, secure := natsx.Settings{Addrs: strings.Split(c.in, ",")}.Servers()
		if got := strings.Join(urls, ","); got != c.want || secure != c.secure {
			t.Errorf("%q: %s %v, want %s %v", c.in, got, secure, c.want, c.secure)
		}
	}
	if got := natsx.Redact("nats://u:secret@h:1,tls://token@h:2,h:3,nats://tls://u:secret@h:4,u:secret@h:5"); got != "nats://redacted@h:1,tls://redacted@h:2,h:3,nats://tls://redacted@h:4,redacted@h:5" {
		t.Errorf("Redact = %q", got)
	}
	if c, err := (natsx.Settings{Addrs: []string{"tls://h:1"}}).TLS(); err != nil || c == nil || c.InsecureSkipVerify {
		t.Errorf("tls:// without a CA: %+v, %v; want verification against the system's CAs", c, err)
	}
	if _, err := (natsx.Settings{CredsFile: "/a", NKeyFile: "/b"}).Auth(); err == nil {
		t.Error("creds and nkey: no error")
	}
}

// TestSecureNATS runs NATS with TLS and users, and checks that go-micro's
// NATS broker reaches it with Portal's settings (a password in the address,
// or an NKey seed file), and that each wrong setting is refused at Check
// with a message that names it and shows no secret.
func TestSecureNATS(t *testing.T) {
	pki := testenv.NewPKI(t, "nats")
	n := testenv.StartSecureNATS(t, testenv.NATSOptions{PKI: pki, Auth: true})
	good := natsx.Settings{Addrs: []string{n.ClientURL()}, CAFile: pki.CAFile}
	nkey := natsx.Settings{Addrs: []string{"tls://" + n.Addr}, CAFile: pki.CAFile, NKeyFile: n.NKeyFile}
	for name, s := range map[string]natsx.Settings{"password": good, "nkey": nkey} {
		if err := natsx.Check(s); err != nil {
			t.Fatalf("%s: Check: %v", name, err)
		}
		roundTrip(t, name, s)
	}

	other := testenv.NewPKI(t, "other")
	for _, w := range []struct {
		name string
		s    natsx.Settings
		want string
	}{
		{"wrong CA", natsx.Settings{Addrs: good.Addrs, CAFile: other.CAFile}, "PORTAL_NATS_CA_FILE"},
		{"wrong password", natsx.Settings{Addrs: []string{fmt.Sprintf("tls://%s:not-it@%s", n.User, n.Addr)}, CAFile: pki.CAFile}, "refused the credentials"},
		{"no credentials", natsx.Settings{Addrs: []string{"tls://" + n.Addr}, CAFile: pki.CAFile}, "refused the credentials"},
		{"no TLS", natsx.Settings{Addrs: []string{strings.Replace(n.ClientURL(), "tls://", "nats://", 1)}}, "requires TLS"},
	} {
		err := natsx.Check(w.s)
		if err == nil || !strings.Contains(err.Error(), w.want) || errors.Is(err, natsx.ErrUnreachable) || strings.Contains(err.Error(), n.Password) {
			t.Errorf("%s: Check = %v, want an error naming %q without the password", w.name, err, w.want)
		}
	}
	if err := natsx.Check(natsx.Settings{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}}); !errors.Is(err, natsx.ErrUnreachable) {
		t.Errorf("nothing listening: %v, want ErrUnreachable", err)
	}
}

// roundTrip publishes through go-micro's NATS broker configured from s and
// receives the message on a subscription of the same broker.
func roundTrip(t *testing.T, name string, s natsx.Settings) {
	t.Helper()
	b := natsbroker.NewBroker()
	opts, err := s.Broker()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := s.Auth()
	if err != nil {
		t.Fatal(err)
	}
	o := nats.GetDefaultOptions()
	for _, f := range auth {
		if err := f(&o); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Init(append(opts, natsbroker.Options(o))...); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(); err != nil {
		t.Fatalf("%s: broker Connect: %v", name, err)
	}
	defer b.Disconnect()
	got := make(chan string, 1)
	if _, err := b.Subscribe("probe", func(e broker.Event) error { got <- string(e.Message().Body); return nil }); err != nil {
		t.Fatalf("%s: Subscribe: %v", name, err)
	}
	if err := b.Publish("probe", &broker.Message{Body: []byte(name)}); err != nil {
		t.Fatalf("%s: Publish: %v", name, err)
	}
	select {
	case m := <-got:
		if m != name {
			t.Fatalf("%s: got %q", name, m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no message in 10s", name)
	}
}
