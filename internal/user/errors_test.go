package user

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"
)

func TestRPCError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		id   string
		code int32
	}{
		{"not found", ErrNotFound, "user.not_found", 404},
		{"exists", ErrExists, "user.exists", 409},
		{"bad username", ErrBadUsername, "user.bad_username", 400},
		{"bad password", ErrBadPassword, "user.bad_password", 400},
		{"bad credentials", ErrBadCredentials, "user.bad_credentials", 401},
		{"wrong password", ErrWrongPassword, "user.wrong_password", 403},
		{"disabled", ErrDisabled, "user.disabled", 403},
		{"session ended", ErrSessionEnded, "user.session_ended", 401},
		{"busy", ErrBusy, "user.unavailable", 503},
		{"wrapped exists", fmt.Errorf("create alice: %w", ErrExists), "user.exists", 409},
		{"twice wrapped not found", fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrNotFound)), "user.not_found", 404},
		{"wrapped busy", fmt.Errorf("login: %w", ErrBusy), "user.unavailable", 503},
		{"unknown", errors.New("disk on fire"), "user.internal", 500},
		{"same text, other error", errors.New(ErrExists.Error()), "user.internal", 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := rpcError(tc.err)
			me, ok := err.(*merrors.Error)
			if !ok {
				t.Fatalf("rpcError(%v) = %#v, not a *errors.Error", tc.err, err)
			}
			if me.Id != tc.id || me.Code != tc.code {
				t.Fatalf("rpcError(%v) = %s %d, want %s %d", tc.err, me.Id, me.Code, tc.id, tc.code)
			}
			if me.Status != http.StatusText(int(tc.code)) {
				t.Errorf("status = %q, want %q", me.Status, http.StatusText(int(tc.code)))
			}
			if me.Detail == "" {
				t.Errorf("empty detail")
			}
			// A sentinel's detail is its message, without the package prefix.
			if tc.code < 500 && strings.HasPrefix(me.Detail, "user: ") {
				t.Errorf("detail %q keeps the package prefix", me.Detail)
			}
		})
	}
}

func TestRPCUnavailable(t *testing.T) {
	me, ok := rpcUnavailable(errors.New("store down")).(*merrors.Error)
	if !ok || me.Id != "user.unavailable" || me.Code != 503 || !strings.Contains(me.Detail, "store down") {
		t.Fatalf("rpcUnavailable = %#v", me)
	}
}
