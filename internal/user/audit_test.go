package user

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	mevents "go-micro.dev/v4/events"

	"github.com/portal-go/portal/internal/audit"
	pb "github.com/portal-go/portal/proto/user"
)

// auditStream is an events.Stream that records the audit entries published
// on it, or fails while err is set.
type auditStream struct {
	mu      sync.Mutex
	entries []audit.Entry
	err     error
}

func (a *auditStream) Publish(topic string, msg interface{}, opts ...mevents.PublishOption) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	e, ok := msg.(audit.Entry)
	if topic != audit.Topic || !ok {
		return errors.New("not an audit entry")
	}
	a.entries = append(a.entries, e)
	return nil
}

func (a *auditStream) Consume(string, ...mevents.ConsumeOption) (<-chan mevents.Event, error) {
	return nil, errors.New("auditStream: consume")
}

// of returns the entries of kind, oldest first.
func (a *auditStream) of(kind audit.Kind) []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Entry
	for _, e := range a.entries {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (a *auditStream) all() []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Entry(nil), a.entries...)
}

// mustID returns the ID of the account named name.
func (h *Handler) mustID(t *testing.T, name string) string {
	t.Helper()
	u, err := h.repo.ByName(context.Background(), name)
	if err != nil {
		t.Fatalf("ByName(%s): %v", name, err)
	}
	return u.ID
}

// TestAudit: each audited path publishes one entry with who, whom and from
// where; the paths that change nothing publish none.
func TestAudit(t *testing.T) {
	hs := newHarness(t)
	ctx := context.Background()
	began := time.Now()
	id := hs.register(t, "alice", alicePW)
	want := func(kind audit.Kind, e audit.Entry) {
		t.Helper()
		got := hs.audit.of(kind)
		if len(got) == 0 {
			t.Fatalf("no %s entry", kind)
		}
		g := got[len(got)-1]
		if g.ID == "" || g.Time.Before(began.Add(-time.Second)) || g.Time.After(time.Now()) {
			t.Errorf("%s entry: id %q, time %v", kind, g.ID, g.Time)
		}
		e.ID, e.Time, e.Kind = g.ID, g.Time, kind
		if g != e {
			t.Errorf("%s entry\n got %+v\nwant %+v", kind, g, e)
		}
	}
	alice := audit.Entry{ActorID: id, ActorName: "alice", SubjectID: id, SubjectName: "alice"}
	want(audit.KindRegister, alice)

	var rsp pb.LoginResponse
	if err := hs.h.Login(ctx, &pb.LoginRequest{Username: "Alice", Password: alicePW, ClientAddr: "192.0.2.1", UserAgent: "ua"}, &rsp); err != nil {
		t.Fatal(err)
	}
	withAddr := alice
	withAddr.ClientAddr = "192.0.2.1"
	want(audit.KindLogin, withAddr)

	wantRPCError(t, tryLogin(ctx, hs, "ALICE", "wrong-password", "192.0.2.2"), "user.bad_credentials", 401)
	want(audit.KindLoginFailed, audit.Entry{SubjectID: id, SubjectName: "ALICE", ClientAddr: "192.0.2.2", Detail: "wrong password"})
	wantRPCError(t, tryLogin(ctx, hs, "nobody", "wrong-password", ""), "user.bad_credentials", 401)
	want(audit.KindLoginFailed, audit.Entry{SubjectName: "nobody", Detail: "unknown user"})

	second := hs.login(t, "alice", alicePW)
	c2, _ := hs.ctxFor(t, second.Token)
	var cp pb.ChangePasswordResponse
	if err := hs.h.ChangePassword(c2, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: "a-new-password"}, &cp); err != nil {
		t.Fatal(err)
	}
	pw := alice
	pw.Detail = "1 other sessions ended"
	want(audit.KindPasswordChange, pw)
	if err := hs.h.Logout(c2, &pb.LogoutRequest{}, &pb.LogoutResponse{}); err != nil {
		t.Fatal(err)
	}
	want(audit.KindLogout, alice)

	// A wrong current password is a failed login (limits.go).
	wantRPCError(t, hs.h.ChangePassword(c2, &pb.ChangePasswordRequest{OldPassword: alicePW, NewPassword: "another-password"}, &cp), "user.wrong_password", 403)
	want(audit.KindLoginFailed, audit.Entry{SubjectID: id, SubjectName: "alice", Detail: "wrong current password (password change)"})

	// Refused before anything happened: nothing to audit.
	n := len(hs.audit.all())
	if err := hs.h.Register(ctx, &pb.RegisterRequest{Username: "alice", Password: alicePW}, &pb.RegisterResponse{}); err == nil {
		t.Fatal("registered alice twice")
	}
	if got := hs.audit.all(); len(got) != n {
		t.Fatalf("refused calls published %+v", got[n:])
	}

	// A disabled account's right password: a failure, said why.
	u, err := hs.h.repo.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := hs.h.repo.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	wantRPCError(t, tryLogin(ctx, hs, "alice", "a-new-password", ""), "user.disabled", 403)
	want(audit.KindLoginFailed, audit.Entry{SubjectID: id, SubjectName: "alice", Detail: "account disabled"})
}

// TestAuditDownLoginWorks: with the audit stream failing, logins and
// logouts still succeed; the publisher keeps their entries and publishes
// them once the stream takes them again.
func TestAuditDownLoginWorks(t *testing.T) {
	hs := newHarness(t)
	hs.register(t, "alice", alicePW)
	hs.audit.mu.Lock()
	hs.audit.err = errors.New("nats down")
	hs.audit.mu.Unlock()
	rsp := hs.login(t, "alice", alicePW)
	ctx, _ := hs.ctxFor(t, rsp.Token)
	if err := hs.h.Logout(ctx, &pb.LogoutRequest{}, &pb.LogoutResponse{}); err != nil {
		t.Fatalf("Logout with the audit stream down: %v", err)
	}
	wantRPCError(t, tryLogin(context.Background(), hs, "alice", "wrong-password", ""), "user.bad_credentials", 401)
	if n := hs.h.audit.Pending(); n != 3 {
		t.Fatalf("Pending = %d, want 3", n)
	}
	hs.audit.mu.Lock()
	hs.audit.err = nil
	hs.audit.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); hs.h.audit.Pending() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still %d entries kept 10 s after the stream came back", hs.h.audit.Pending())
		}
	}
	if len(hs.audit.of(audit.KindLogin)) != 1 || len(hs.audit.of(audit.KindLogout)) != 1 || len(hs.audit.of(audit.KindLoginFailed)) != 1 || hs.h.audit.Failures() != 0 {
		t.Fatalf("published after the outage: %+v; Failures %d", hs.audit.all(), hs.h.audit.Failures())
	}
}
