package user

import (
	"context"
	"testing"

	"go-micro.dev/v4/store"
)

// For the external tests (package user_test), which may import testenv:
// the harness of the package's own tests, over a given repo.

// Harness is the handler test harness.
type Harness = harness

// NewHarnessWith is a harness on st whose handler uses repo.
func NewHarnessWith(t *testing.T, st store.Store, repo *Repo) *Harness {
	t.Helper()
	hs := newHarnessOn(t, st)
	hs.h.repo = repo
	return hs
}

// AlicePW is a valid password.
const AlicePW = alicePW

// Handler is the harness's handler.
func (hs *harness) Handler() *Handler { return hs.h }

// Register, Login, CtxFor and AdminCtx are the harness's helpers.
func (hs *harness) Register(t *testing.T, name, pw string) string { return hs.register(t, name, pw) }

// Login logs name in.
func (hs *harness) Login(t *testing.T, name, pw string) (token, sessionID string) {
	rsp := hs.login(t, name, pw)
	return rsp.Token, rsp.SessionId
}

// CtxFor is a request context carrying token.
func (hs *harness) CtxFor(t *testing.T, token string) context.Context {
	ctx, _ := hs.ctxFor(t, token)
	return ctx
}

// AdminCtx is a request context of the admin.
func (hs *harness) AdminCtx(t *testing.T) context.Context {
	ctx, _ := hs.adminCtx(t)
	return ctx
}

// Touch is the handler's "last seen" write.
func (h *Handler) Touch(ctx context.Context, s *Session) { h.touch(ctx, s) }
