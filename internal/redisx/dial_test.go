package redisx

import (
	"strings"
	"testing"
)

// TestDial: the store and cache address forms become go-redis options;
// credentials never show in errors or in Describe.
func TestDial(t *testing.T) {
	for _, c := range []struct {
		in                   string
		addrs, user, pw, mst string
		tls                  bool
		desc                 string
	}{
		{in: "", addrs: "127.0.0.1:6379", desc: "127.0.0.1:6379 plaintext"},
		{in: "a:1, redis://b:2", addrs: "a:1,b:2", desc: "a:1,b:2 cluster plaintext"},
		{in: "rediss://portal-user:p%40ss@redis:6380", addrs: "redis:6380", user: "portal-user", pw: "p@ss", tls: true, desc: "redis:6380 tls user=portal-user"},
		{in: "redis://only-password@redis:6379", addrs: "redis:6379", pw: "only-password", desc: "redis:6379 plaintext password"},
		{in: "rediss://u:p@s1:26379?master=mymaster,rediss://u:p@s2:26379", addrs: "s1:26379,s2:26379", user: "u", pw: "p", mst: "mymaster", tls: true, desc: "s1:26379,s2:26379 sentinel master=mymaster tls user=u"},
	} {
		o, err := Dial(strings.Split(c.in, ","), "")
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := strings.Join(o.Addrs, ","); got != c.addrs || o.Username != c.user || o.Password != c.pw || o.MasterName != c.mst || (o.TLSConfig != nil) != c.tls {
			t.Errorf("%q: addrs %s user %q pw %q master %q tls %v", c.in, got, o.Username, o.Password, o.MasterName, o.TLSConfig != nil)
		}
		if c.mst != "" && (o.SentinelUsername != c.user || o.SentinelPassword != c.pw) {
			t.Errorf("%q: sentinel credentials %q %q", c.in, o.SentinelUsername, o.SentinelPassword)
		}
		if o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify {
			t.Errorf("%q: TLS without verification", c.in)
		}
		if d := Describe(o); d != c.desc {
			t.Errorf("%q: Describe = %q, want %q", c.in, d, c.desc)
		}
		if o.DialTimeout <= 0 || o.ReadTimeout <= 0 {
			t.Errorf("%q: unbounded", c.in)
		}
	}
	for _, in := range []string{
		"http://u:secret-1@h:1",
		"redis://u:secret-1@h:1,redis://u:secret-2@h:2",
		"redis://u:secret-1@h:1/%zz",
	} {
		_, err := Dial(strings.Split(in, ","), "")
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: %v, want an error without the password", in, err)
		}
	}
	if _, err := Dial([]string{"a:1"}, "/no/such/ca.pem"); err == nil || !strings.Contains(err.Error(), "PORTAL_REDIS_CA_FILE") {
		t.Errorf("missing CA file: %v", err)
	}
}
