package user

import (
	"testing"

	merrors "go-micro.dev/v4/errors"
)

// TestLockoutWire: the lockout survives the trip an RPC error makes (go-micro
// marshals the error and the caller parses it back), and only a 429 whose
// detail is a valid Lockout reads as one.
func TestLockoutWire(t *testing.T) {
	sent := LockoutError("user.locked", &Lockout{Message: "too many failed logins", RetryAfterSeconds: 42})
	got, ok := LockoutOf(merrors.Parse(sent.Error()))
	if !ok || got.Message != "too many failed logins" || got.RetryAfterSeconds != 42 {
		t.Fatalf("after the wire: %v, %v", got, ok)
	}
	for name, err := range map[string]error{
		"the old text suffix":      merrors.New("user.locked", "too many failed logins; retry_after=42", 429),
		"a lockout that is no 429": merrors.Forbidden("user.locked", `{"message":"x","retryAfterSeconds":42}`),
		"no wait":                  LockoutError("user.locked", &Lockout{Message: "x"}),
		"not a go-micro error":     errPlain("boom"),
	} {
		if l, ok := LockoutOf(err); ok {
			t.Errorf("%s: read as %v", name, l)
		}
	}
}

type errPlain string

func (e errPlain) Error() string { return string(e) }
