package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testProof(t *testing.T, key string) *ClientProof {
	t.Helper()
	p, err := NewClientProof([]byte(strings.Repeat(key, 32)[:32]))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A proof verifies only with the key it was made with, for the endpoint it
// was made for, unaltered, within ClientProofWindow.
func TestClientProofCheck(t *testing.T) {
	p := testProof(t, "k")
	now := time.Unix(1_800_000_000, 0)
	p.now = func() time.Time { return now }
	c := Client{Addr: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; a|b.c)"}
	v := p.entry("user User.Login", c)
	if got, err := p.check("user User.Login", v); err != nil || got != c {
		t.Fatalf("check = %+v, %v; want %+v", got, err, c)
	}
	parts := strings.Split(v, ".")
	forged := strings.Join([]string{parts[0], base64.RawURLEncoding.EncodeToString([]byte("198.51.100.1")), parts[2], parts[3]}, ".")
	other := testProof(t, "x")
	other.now = p.now
	for name, tc := range map[string]struct {
		endpoint, value string
		at              time.Time
	}{
		"other endpoint":         {"user User.ChangePassword", v, now},
		"other service":          {"system User.Login", v, now},
		"address changed":        {"user User.Login", forged, now},
		"other key":              {"user User.Login", other.entry("user User.Login", c), now},
		"too old":                {"user User.Login", v, now.Add(ClientProofWindow + time.Second)},
		"from the future":        {"user User.Login", v, now.Add(-ClientProofWindow - time.Second)},
		"malformed":              {"user User.Login", "203.0.113.7", now},
		"bad base64":             {"user User.Login", "1.!!.x.y", now},
		"empty":                  {"user User.Login", "", now},
		"old Portal-Client-Addr": {"user User.Login", "203.0.113.7|ua", now},
	} {
		at := tc.at
		p.now = func() time.Time { return at }
		if got, err := p.check(tc.endpoint, tc.value); !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: check = %+v, %v; want ErrBadProof", name, got, err)
		}
	}
}

// What a proof carries is bounded like the stores bound it.
func TestWithClientBounds(t *testing.T) {
	ctx := WithClient(t.Context(), Client{Addr: strings.Repeat("1", 100), UserAgent: strings.Repeat("é", 300)})
	c, ok := ClientOf(ctx)
	if !ok || len(c.Addr) != maxClientAddr || len(c.UserAgent) != maxClientAgent || !strings.HasPrefix(c.UserAgent, "é") {
		t.Errorf("ClientOf = %d-byte address, %d-byte agent; want %d and %d", len(c.Addr), len(c.UserAgent), maxClientAddr, maxClientAgent)
	}
	if _, ok := ClientOf(t.Context()); ok {
		t.Error("a bare context names a client")
	}
	if c, _ := ClientOf(ContextWithClient(t.Context(), "192.0.2.1")); c != (Client{Addr: "192.0.2.1"}) || ClientFromContext(ContextWithClient(t.Context(), "192.0.2.1")) != "192.0.2.1" {
		t.Errorf("ContextWithClient gave %+v", c)
	}
}

func TestNewClientProofRefusesShortKeys(t *testing.T) {
	if _, err := NewClientProof(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if _, err := ParseGatewayKey(base64.StdEncoding.EncodeToString(make([]byte, 16))); err == nil {
		t.Error("a 16-byte base64 key was accepted")
	}
	if _, err := ParseGatewayKey("not base64 at all!"); err == nil {
		t.Error("garbage was accepted")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		k := bytes.Repeat([]byte{0xfb}, 40)
		if got, err := ParseGatewayKey(" " + enc.EncodeToString(k) + "\n"); err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseGatewayKey: %v", err)
		}
	}
}

// The gateway key is made once per data dir, mode 0600; processes racing to
// make it all end up with the same one.
func TestLoadOrCreateGatewayKey(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([][]byte, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if keys[i], created[i], err = LoadOrCreateGatewayKey(dir); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	made := 0
	for i := range n {
		if created[i] {
			made++
		}
		if len(keys[i]) != 32 || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got another key", i)
		}
	}
	if made != 1 {
		t.Errorf("%d callers say they made the key, want 1", made)
	}
	fi, err := os.Stat(filepath.Join(dir, GatewayKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	again, made2, err := LoadOrCreateGatewayKey(dir)
	if err != nil || made2 || !bytes.Equal(again, keys[0]) {
		t.Errorf("second start: %v, created %v, same key %v", err, made2, bytes.Equal(again, keys[0]))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, GatewayKeyFile+".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// FuzzClientProofCheck feeds arbitrary metadata values to the verifier: it
// must never panic, and whatever it accepts says what was signed.
func FuzzClientProofCheck(f *testing.F) {
	p, err := NewClientProof([]byte(strings.Repeat("k", 32)))
	if err != nil {
		f.Fatal(err)
	}
	signed := Client{Addr: "203.0.113.7", UserAgent: "ua"}
	good := p.entry("user User.Login", signed)
	for _, seed := range []string{good, "", "....", "1.2.3.4", good + "A", strings.Replace(good, "M", "N", 1), strings.Repeat(".", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if c, err := p.check("user User.Login", v); err == nil && c != signed {
			t.Fatalf("accepted %q as %+v", v, c)
		}
	})
}

// BenchmarkClientProof is what the proof costs a call: one signature by the
// caller, one check by the callee.
func BenchmarkClientProof(b *testing.B) {
	p, err := NewClientProof([]byte(strings.Repeat("k", 32)))
	if err != nil {
		b.Fatal(err)
	}
	c := Client{Addr: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"}
	for b.Loop() {
		if _, err := p.check("user User.Login", p.entry("user User.Login", c)); err != nil {
			b.Fatal(err)
		}
	}
}
