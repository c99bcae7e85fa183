package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string // substring of the error; "" means valid
	}{
		{"empty keeps defaults", "", ""},
		{"partial", "auth:\n  expireTime: 600\n", ""},
		{"json is yaml", `{"login": {"maxFailures": 3}}`, ""},
		{"unknown key", "auth:\n  expireTimeout: 600\n", "unknown key auth.expireTimeout"},
		{"key in the wrong case", "auth:\n  expiretime: 600\n", "unknown key auth.expiretime"},
		{"unknown section", "billing:\n  x: 1\n", "unknown section"},
		{"section not a mapping", "auth: 5\n", "unknown section"},
		{"wrong type", "login:\n  maxFailures: many\n", "maxFailures"},
		{"invalid value", "auth:\n  expireTime: 1\n", "auth.expireTime is 1"},
		{"not yaml", "auth: [\n", "invalid"},
		{"too large", "auth:\n  whiteList:\n" + strings.Repeat("  - /a\n", 20000), "over"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := Defaults()
	b := a
	b.Auth.ExpireTime = 600
	b.Login.MaxFailures = 3
	if got := Diff(a, b); got != "auth.expireTime: 900 -> 600; login.maxFailures: 5 -> 3" {
		t.Errorf("Diff = %q", got)
	}
	if got := Diff(a, a); got != "no change" {
		t.Errorf("Diff(a, a) = %q", got)
	}
}

// Update on a file center writes the file, applies at once, and (when the
// file did not exist) starts watching it.
func TestUpdateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.yaml")
	c, err := OpenFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !c.Writable() {
		t.Fatal("a file center is not writable")
	}
	if _, _, err := c.Update([]byte("auth:\n  expireTime: 1\n")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid update: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("an invalid update wrote the file")
	}
	now, before, err := c.Update([]byte("auth:\n  expireTime: 600\n"))
	if err != nil {
		t.Fatal(err)
	}
	if now.Auth.ExpireTime != 600 || before.Auth.ExpireTime != 900 || c.Current().Auth.ExpireTime != 600 {
		t.Fatalf("now %d, before %d, current %d", now.Auth.ExpireTime, before.Auth.ExpireTime, c.Current().Auth.ExpireTime)
	}
	if got, err := Parse(must(os.ReadFile(path))); err != nil || got.Auth.ExpireTime != 600 {
		t.Fatalf("file holds %+v, %v", got, err)
	}
	if c.Source() != path {
		t.Errorf("Source = %q, want %q", c.Source(), path)
	}
	// Watched now: a hand edit applies.
	if err := os.WriteFile(path, []byte("auth:\n  expireTime: 300\n  refreshTime: 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Current().Auth.ExpireTime != 300 {
		if time.Now().After(deadline) {
			t.Fatalf("hand edit not applied: %+v", c.Current().Auth)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And an update after that is picked up by the watch without a fight.
	if _, _, err := c.Update([]byte("auth:\n  expireTime: 700\n")); err != nil || c.Current().Auth.ExpireTime != 700 {
		t.Fatalf("second update: %v, %d", err, c.Current().Auth.ExpireTime)
	}
}

func TestUpdateStaticIsReadOnly(t *testing.T) {
	c, err := Static(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Update([]byte("{}")); !errors.Is(err, ErrReadOnly) || c.Writable() {
		t.Fatalf("Update on a static center: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
