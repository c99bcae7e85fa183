package platform

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

type testRequest struct{ server.Request }

func (testRequest) Endpoint() string { return "S.Boom" }
func (testRequest) Service() string  { return "svc" }

type testMessage struct{ server.Message }

func (testMessage) Topic() string { return "topic.boom" }

// TestRecoverAdapters: a panic in an RPC handler, in a subscriber, or a
// plugin-recovered one ends as the service's 500 "<name>.panic", logged once
// with where it happened and (for a real panic) its stack; without a panic
// nothing is logged and the result passes through.
func TestRecoverAdapters(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	h := recoverWrapper("svc", log)
	s := recoverSubscriber("svc", log)
	for _, tc := range []struct {
		name, where string
		run         func() error
		stack       bool
	}{
		{"handler", "endpoint=S.Boom", func() error {
			return h(func(context.Context, server.Request, any) error { panic("boom") })(context.Background(), testRequest{}, nil)
		}, true},
		{"subscriber", "topic=topic.boom", func() error {
			return s(func(context.Context, server.Message) error { panic("boom") })(context.Background(), testMessage{})
		}, true},
		{"recovered by the gRPC plugin", "endpoint=S.Boom", func() error {
			return h(func(context.Context, server.Request, any) error {
				return &merrors.Error{Id: "go.micro.server", Code: 500, Detail: "panic recovered: boom"}
			})(context.Background(), testRequest{}, nil)
		}, false},
	} {
		buf.Reset()
		err := tc.run()
		if e := merrors.FromError(err); e.Id != "svc.panic" || e.Code != 500 || strings.Contains(e.Detail, "boom") {
			t.Errorf("%s: %v, want a 500 svc.panic that does not show the panic", tc.name, err)
		}
		line := buf.String()
		if strings.Count(line, "msg=panic") != 1 || !strings.Contains(line, tc.where) || !strings.Contains(line, "boom") {
			t.Errorf("%s: log %q: want one panic line naming %s", tc.name, line, tc.where)
		}
		if tc.stack && !strings.Contains(line, "recover_test.go") {
			t.Errorf("%s: log %q lacks the stack", tc.name, line)
		}
	}
	buf.Reset()
	want := merrors.BadRequest("svc.bad", "no")
	if err := h(func(context.Context, server.Request, any) error { return want })(context.Background(), testRequest{}, nil); err != want {
		t.Errorf("an error passed through as %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("logged without a panic: %q", buf.String())
	}
}
