package sso

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/portal-go/portal/internal/outbox"
	"github.com/portal-go/portal/internal/testenv/poll"
	oidcpb "github.com/portal-go/portal/proto/oidc"
)

// flakyRP is an application's back-channel logout endpoint that refuses
// (503) while down or for its first refuse requests.
type flakyRP struct {
	mu       sync.Mutex
	down     bool
	refuse   int
	attempts int
	received []string
}

func (f *flakyRP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.down || f.refuse > 0 {
		f.refuse--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.received = append(f.received, r.FormValue("logout_token"))
	w.WriteHeader(http.StatusOK)
}

func (f *flakyRP) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *flakyRP) counts() (attempts, received int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts, len(f.received)
}

// TestBackchannelLogoutRetried: a logout token an application refuses is
// sent again with backoff until it takes it; one queued while the
// application is down survives a restart of the provider and arrives once
// it is up; one refused every time is given up after the bounded attempts,
// and shown on the client for admins.
func TestBackchannelLogoutRetried(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	acc := &fakeAccounts{live: map[string]Person{}}
	start := func() (*Provider, context.CancelFunc) {
		t.Helper()
		p, err := New(st, st, testSecret, acc, Options{Issuer: "https://sso.example.test",
			LogoutRetry: outbox.Retry{MaxAttempts: 4, Backoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		p.storage.keys.bits = 1024
		p.logouts.Poll = 20 * time.Millisecond
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { p.Run(rctx); close(done) }()
		return p, func() { cancel(); <-done }
	}
	p, stop := start()
	rps := map[string]*flakyRP{"flaky": {refuse: 2}, "restart": {down: true}, "dead": {down: true}}
	clients := map[string]*Client{}
	for name, rp := range rps {
		srv := httptest.NewServer(rp)
		t.Cleanup(srv.Close)
		clients[name] = mustClient(t, p, Client{Confidential: true, FirstParty: true, BackchannelLogoutURI: srv.URL})
	}
	signIn := func(p *Provider, sid string) {
		t.Helper()
		acc.live["u1/"+sid] = Person{ID: "u1"}
		for _, c := range clients {
			a := &authRequest{ID: randomID(8), ClientID: c.ID, UserID: "u1", SessionID: sid, Completed: true, Scopes: []string{"openid"}}
			if _, _, err := p.storage.CreateAccessToken(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	signIn(p, "s1")
	p.SessionEnded("u1", "s1")
	poll.Wait(t, 10*time.Second, "the flaky application's logout token", func() bool {
		attempts, received := rps["flaky"].counts()
		return attempts == 3 && received == 1
	})
	poll.Wait(t, 10*time.Second, "an attempt at the application that is down", func() bool {
		attempts, _ := rps["restart"].counts()
		return attempts >= 1
	})

	// The provider restarts while the application is down; it comes up.
	stop()
	p, stop = start()
	defer stop()
	rps["restart"].setDown(false)
	poll.Wait(t, 10*time.Second, "the logout token after the restart", func() bool {
		_, received := rps["restart"].counts()
		return received == 1
	})

	var list oidcpb.ListClientsResponse
	poll.Wait(t, 10*time.Second, "the dead application's logout given up", func() bool {
		if err := NewHandler(p).ListClients(ctx, &oidcpb.ListClientsRequest{}, &list); err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Clients {
			if c.Id == clients["dead"].ID && c.BackchannelFailures == 1 && c.BackchannelLastError != "" {
				return true
			}
		}
		return false
	})
	// Four attempts, each counted once it was refused. A send that the
	// provider's stop cut short is not counted (it may not have left), so
	// the application sees a fifth when that send had reached it.
	if attempts, _ := rps["dead"].counts(); attempts != 4 && attempts != 5 {
		t.Fatalf("the dead application was tried %d times, want 4 (5 if the restart cut a send short after it arrived)", attempts)
	}
	for _, c := range list.Clients {
		if c.Id != clients["dead"].ID && c.BackchannelFailures != 0 {
			t.Fatalf("client %s shows failures: %v", c.Id, c)
		}
	}
}
