package user

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"github.com/portal-go/portal/internal/testenv/poll"
)

func TestValidUsername(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty", "", false},
		{"2 chars", "ab", false},
		{"3 chars", "abc", true},
		{"32 chars", strings.Repeat("a", 32), true},
		{"33 chars", strings.Repeat("a", 33), false},
		{"allowed punctuation", "a_b.c-d", true},
		{"only punctuation", "._-", true},
		{"digits", "007", true},
		{"upper case", "Alice", true},
		{"space", "al ice", false},
		{"at sign", "al@ice", false},
		{"slash", "al/ice", false},
		{"plus", "al+ice", false},
		{"trailing newline", "alice\n", false},
		{"leading newline", "\nalice", false},
		{"NUL", "ali\x00ce", false},
		{"accented letter", "josé", false},
		{"cyrillic", "алиса", false},
		{"CJK", "用户名", false},
		{"fullwidth digits", "１２３", false},
		{"3 bytes, 2 characters", "aé", false},
		{"32 characters, 33 bytes", strings.Repeat("a", 31) + "é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidUsername(tc.in)
			if tc.ok && err != nil {
				t.Fatalf("ValidUsername(%q) = %v, want nil", tc.in, err)
			}
			if !tc.ok && !errors.Is(err, ErrBadUsername) {
				t.Fatalf("ValidUsername(%q) = %v, want ErrBadUsername", tc.in, err)
			}
		})
	}
}

func TestValidPassword(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty", "", false},
		{"9 chars", strings.Repeat("a", 9), false},
		{"10 chars", strings.Repeat("a", 10), true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"129 chars", strings.Repeat("a", 129), false},
		{"9 two-byte chars (18 bytes)", strings.Repeat("é", 9), false},
		{"10 two-byte chars", strings.Repeat("é", 10), true},
		{"10 four-byte chars", strings.Repeat("😀", 10), true},
		{"10 CJK chars", strings.Repeat("密", 10), true},
		{"128 two-byte chars (256 bytes)", strings.Repeat("é", 128), true},
		{"129 two-byte chars", strings.Repeat("é", 129), false},
		{"spaces count", "          ", true},
		{"invalid UTF-8", strings.Repeat("a", 10) + "\xff", false},
		{"invalid UTF-8 only", strings.Repeat("\xff", 12), false},
		{"truncated multi-byte", strings.Repeat("a", 10) + "\xe2\x82", false},
		{"NUL is a character", strings.Repeat("\x00", 10), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidPassword(tc.in)
			if tc.ok && err != nil {
				t.Fatalf("ValidPassword(%q) = %v, want nil", tc.in, err)
			}
			if !tc.ok && !errors.Is(err, ErrBadPassword) {
				t.Fatalf("ValidPassword(%q) = %v, want ErrBadPassword", tc.in, err)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	productionHashes(t)
	ctx := context.Background()
	const pw = "correct horse battery staple"
	long := strings.Repeat("é", 128) // 256 bytes: past bcrypt's 72
	hash, err := hashPassword(ctx, pw)
	if err != nil {
		t.Fatalf("hashPassword: %v", err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not argon2id with the project's parameters", hash)
	}
	longHash, err := hashPassword(ctx, long)
	if err != nil {
		t.Fatalf("hashPassword(long): %v", err)
	}
	again, err := hashPassword(ctx, pw)
	if err != nil {
		t.Fatalf("hashPassword: %v", err)
	}
	if again == hash {
		t.Errorf("two hashes of one password are equal: no salt")
	}

	tests := []struct {
		name string
		pw   string
		hash string
		want bool
	}{
		{"right password", pw, hash, true},
		{"right password, other salt", pw, again, true},
		{"wrong password", pw + "!", hash, false},
		{"prefix of the password", pw[:10], hash, false},
		{"case differs", strings.ToUpper(pw), hash, false},
		{"empty password", "", hash, false},
		{"long password", long, longHash, true},
		{"long password, last char differs", strings.Repeat("é", 127) + "e", longHash, false},
		{"empty hash", pw, "", false},
		{"empty hash, dummy password", "portal-dummy-password", "", false},
		{"garbage hash", pw, "not-a-hash", false},
		{"truncated hash", pw, hash[:len(hash)-5], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkPassword(ctx, tc.pw, tc.hash)
			if err != nil {
				t.Fatalf("checkPassword: %v", err)
			}
			if got != tc.want {
				t.Errorf("checkPassword(%q, %q) = %v, want %v", tc.pw, tc.hash, got, tc.want)
			}
		})
	}
}

func TestHashingGivesUpWithTheCaller(t *testing.T) {
	// Hold every slot, as a flood of logins would.
	for range cap(hashSlots) {
		hashSlots <- struct{}{}
	}
	t.Cleanup(func() {
		for range cap(hashSlots) {
			<-hashSlots
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := hashPassword(ctx, "correct horse battery staple"); !errors.Is(err, ErrBusy) {
		t.Errorf("hashPassword with no slot = %v, want ErrBusy", err)
	}
	if ok, err := checkPassword(ctx, "correct horse battery staple", ""); !errors.Is(err, ErrBusy) || ok {
		t.Errorf("checkPassword with no slot = %v, %v; want false, ErrBusy", ok, err)
	}
}

// TestHashParams: what the benchmark is told is what hashes are made with,
// and the dummy hash costs what the service's hashes do.
func TestHashParams(t *testing.T) {
	p, slots := HashParams()
	if slots != cap(hashSlots) || slots < 1 {
		t.Fatalf("slots = %d, want %d", slots, cap(hashSlots))
	}
	h, err := hashPassword(context.Background(), "a-password-123")
	if err != nil {
		t.Fatalf("hashPassword: %v", err)
	}
	got, _, _, err := argon2id.DecodeHash(h)
	if err != nil {
		t.Fatalf("DecodeHash: %v", err)
	}
	if *got != p {
		t.Fatalf("HashParams says %+v, hashPassword makes %+v", p, *got)
	}
	dummy, _, _, err := argon2id.DecodeHash(dummyHash)
	if err != nil {
		t.Fatalf("DecodeHash: %v", err)
	}
	if *dummy != productionHashParams {
		t.Fatalf("the dummy hash is made with %+v, the service hashes with %+v", *dummy, productionHashParams)
	}
}

// TestHashMemoryReturned: once hashing has been idle for a moment, the
// heap's free memory goes back to the operating system, once per burst,
// and never while a hash runs.
func TestHashMemoryReturned(t *testing.T) {
	was := returnHashMemoryAfter.Swap(int64(200 * time.Millisecond))
	defer returnHashMemoryAfter.Store(was)
	// Settle what earlier tests' hashes left armed.
	if _, err := hashPassword(context.Background(), "a-password-123"); err != nil {
		t.Fatal(err)
	}
	settled := memoryReturns.Load()
	poll.Wait(t, 10*time.Second, "an earlier burst's return", func() bool { return memoryReturns.Load() > settled })
	before := memoryReturns.Load()
	for range 3 {
		if _, err := hashPassword(context.Background(), "a-password-123"); err != nil {
			t.Fatal(err)
		}
	}
	poll.Wait(t, 10*time.Second, "memory returned after the burst", func() bool { return memoryReturns.Load() > before })
	if got := memoryReturns.Load() - before; got != 1 {
		t.Fatalf("memory returned %d times after one burst, want once", got)
	}
	release, err := hashSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	returnHashMemory() // as if the timer fired with a hash running
	if got := memoryReturns.Load() - before; got != 1 {
		t.Fatalf("memory returned while a hash ran")
	}
	release()
	poll.Wait(t, 10*time.Second, "memory returned after the hash", func() bool { return memoryReturns.Load()-before == 2 })
}
