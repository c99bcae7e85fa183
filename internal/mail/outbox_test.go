package mail

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/filestore"
	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/mail/mailtest"
	"github.com/portal-go/portal/internal/testenv/poll"
)

func openStore(t *testing.T) *filestore.Store {
	t.Helper()
	st, err := filestore.New(t.TempDir(), store.Database("user"), store.Table("user"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runOutbox runs b until the test ends.
func runOutbox(t *testing.T, b *Outbox) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func fastRetries() OutboxOptions {
	return OutboxOptions{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxAttempts: 5, Poll: time.Hour}
}

func TestOutboxRetriesUntilTheServerRecovers(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.FailNext(2) // 451 twice, then accepts
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	st := openStore(t)
	var logs syncBuffer
	b := NewOutbox(st, st, s, slog.New(slog.NewTextHandler(&logs, nil)), fastRetries())
	runOutbox(t, b)
	msg := testMessage(t, "en")
	if err := b.Enqueue(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 30*time.Second, "the message to arrive", func() bool { return len(srv.Messages()) > 0 })
	poll.Wait(t, 30*time.Second, "the queue to empty", func() bool {
		p, err := b.Pending(context.Background())
		return err == nil && len(p) == 0
	})
	if got := srv.Messages(); len(got) != 1 {
		t.Fatalf("%d copies arrived", len(got))
	}
	if n := strings.Count(logs.String(), "will retry"); n != 2 {
		t.Fatalf("%d retries logged, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "attempts=3") {
		t.Fatalf("the send is not logged as the third attempt:\n%s", logs.String())
	}
	if f, _ := b.Failed(context.Background()); len(f) != 0 {
		t.Fatalf("failed: %+v", f)
	}
}

func TestOutboxSurvivesAServerThatIsDown(t *testing.T) {
	// Nothing listens at first: the message waits in the store; a server
	// that comes up later at that address gets it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, _ := NewSMTP(SMTPConfig{Address: addr, From: "portal@example.com", Timeout: 5 * time.Second})
	st := openStore(t)
	var logs syncBuffer
	o := fastRetries()
	o.MaxAttempts = 1000
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	b := NewOutbox(st, kv.NewLocal(st), s, slog.New(slog.NewTextHandler(&logs, nil)), o)
	runOutbox(t, b)
	if err := b.Enqueue(context.Background(), testMessage(t, "en")); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 30*time.Second, "a failed attempt", func() bool { return strings.Contains(logs.String(), "will retry") })
	again := mailtest.Restart(t, addr)
	poll.Wait(t, 60*time.Second, "the message to arrive", func() bool { return len(again.Messages()) == 1 })
}

func TestOutboxGivesUpAndShowsAdmins(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.FailNext(1000)
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	st := openStore(t)
	var logs syncBuffer
	o := fastRetries()
	o.MaxAttempts = 3
	b := NewOutbox(st, st, s, slog.New(slog.NewTextHandler(&logs, nil)), o)
	runOutbox(t, b)
	msg := testMessage(t, "en")
	if err := b.Enqueue(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	var failed []*Entry
	poll.Wait(t, 30*time.Second, "the message to be given up", func() bool {
		failed, _ = b.Failed(context.Background())
		return len(failed) == 1
	})
	f := failed[0]
	if f.Attempts != 3 || f.Message.To != msg.To || f.Message.Kind != KindReset || !strings.Contains(f.LastError, "451") {
		t.Fatalf("failed entry %+v", f)
	}
	if f.Message.Text != "" || f.Message.HTML != "" {
		t.Fatal("a given-up message keeps its body (and its link) in the store")
	}
	poll.Wait(t, 30*time.Second, "the queue to empty", func() bool {
		p, err := b.Pending(context.Background())
		return err == nil && len(p) == 0
	})
	if !strings.Contains(logs.String(), "level=ERROR msg=\"outbox: message given up\"") {
		t.Fatalf("not logged as an error:\n%s", logs.String())
	}
}

func TestOutboxPermanentRefusalIsNotRetried(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	srv.RefuseRecipients(true)
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	st := openStore(t)
	b := NewOutbox(st, st, s, slog.New(slog.DiscardHandler), fastRetries())
	runOutbox(t, b)
	if err := b.Enqueue(context.Background(), testMessage(t, "en")); err != nil {
		t.Fatal(err)
	}
	var failed []*Entry
	poll.Wait(t, 30*time.Second, "the message to be given up", func() bool {
		failed, _ = b.Failed(context.Background())
		return len(failed) == 1
	})
	if failed[0].Attempts != 1 || !strings.Contains(failed[0].LastError, "550") {
		t.Fatalf("%+v", failed[0])
	}
}

// blockingSender never returns until released.
type blockingSender struct {
	release chan struct{}
	mu      sync.Mutex
	sent    []Message
}

func (s *blockingSender) Send(ctx context.Context, m Message) error {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func TestEnqueueNeverWaitsForTheServer(t *testing.T) {
	st := openStore(t)
	s := &blockingSender{release: make(chan struct{})}
	b := NewOutbox(st, st, s, slog.New(slog.DiscardHandler), fastRetries())
	runOutbox(t, b)
	defer close(s.release)
	done := make(chan error, 2)
	go func() {
		done <- b.Enqueue(context.Background(), testMessage(t, "en"))
		done <- b.Enqueue(context.Background(), testMessage(t, "en"))
	}()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Enqueue waited for a sender that does not answer")
		}
	}
}

func TestOutboxSharedByTwoInstancesSendsOnce(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	st := openStore(t)
	log := slog.New(slog.DiscardHandler)
	o := fastRetries()
	o.Poll = 5 * time.Millisecond // both look all the time
	a, b := NewOutbox(st, st, s, log, o), NewOutbox(st, st, s, log, o)
	runOutbox(t, a)
	runOutbox(t, b)
	const n = 20
	for i := range n {
		q := a
		if i%2 == 1 {
			q = b
		}
		if err := q.Enqueue(context.Background(), testMessage(t, "en")); err != nil {
			t.Fatal(err)
		}
	}
	poll.Wait(t, 60*time.Second, "every message to be sent", func() bool {
		p, err := a.Pending(context.Background())
		return err == nil && len(p) == 0
	})
	got := srv.Messages()
	ids := map[string]int{}
	for _, m := range got {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if strings.HasPrefix(line, "Message-ID:") {
				ids[line]++
			}
		}
	}
	if len(got) != n || len(ids) != n {
		t.Fatalf("%d messages arrived, %d distinct, want %d each", len(got), len(ids), n)
	}
}

func TestDirWritesFileAndLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	var logs bytes.Buffer
	d, err := NewDir(dir, "portal@localhost.localdomain", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	msg := testMessage(t, "en")
	if err := d.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v: the link in it is for one reader", fi.Mode())
	}
	raw, _ := os.ReadFile(files[0])
	_, parts := mailtest.Parse(t, raw)
	if !strings.Contains(parts["text/plain"], "token=abc") {
		t.Fatalf("file:\n%s", raw)
	}
	if !strings.Contains(logs.String(), "token=abc") || !strings.Contains(logs.String(), files[0]) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hangingSender blocks every send until its context ends.
type hangingSender struct{ sending chan struct{} }

func (h hangingSender) Send(ctx context.Context, _ Message) error {
	h.sending <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestOutboxStopDuringSendGivesNothingUp: a send that the outbox's own stop
// cuts short is not a refusal: the message stays queued, even on its last
// attempt (it was given up as failed), and is not listed as failed.
func TestOutboxStopDuringSendGivesNothingUp(t *testing.T) {
	st := openStore(t)
	o := fastRetries()
	o.MaxAttempts = 1
	h := hangingSender{sending: make(chan struct{}, 1)}
	b := NewOutbox(st, st, h, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	if err := b.Enqueue(context.Background(), testMessage(t, "en")); err != nil {
		t.Fatal(err)
	}
	poll.Receive(t, 10*time.Second, "the outbox to send", h.sending)
	cancel()
	poll.Receive(t, 10*time.Second, "the outbox to stop", done)
	failed, err := b.Failed(context.Background())
	if err != nil || len(failed) != 0 {
		t.Fatalf("after a stop mid-send: failed %v (%v), want none", failed, err)
	}
	pending, err := b.Pending(context.Background())
	if err != nil || len(pending) != 1 {
		t.Fatalf("after a stop mid-send: pending %v (%v), want the message", pending, err)
	}
}

// TestOutboxMovesMailAnOlderPortalQueued: a message that an older Portal
// left in the store (outbox/msg/<id>, before mail went through the outbox
// package's queue) is sent after an upgrade, once, with two instances
// starting together, and keeps its attempts.
func TestOutboxMovesMailAnOlderPortalQueued(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Options{})
	s, _ := NewSMTP(SMTPConfig{Address: srv.Addr, From: "portal@example.com"})
	st := openStore(t)
	msg := testMessage(t, "en")
	queued := time.Now().Add(-time.Hour).UTC()
	legacy := &Entry{Message: msg, Queued: queued, Attempts: 2, NextAt: queued, LastError: "451 busy"}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, b := NewOutbox(st, st, s, log, fastRetries()), NewOutbox(st, st, s, log, fastRetries())
	if err := a.write(keyLegacy+msg.ID, legacy, 0); err != nil {
		t.Fatal(err)
	}
	runOutbox(t, a)
	runOutbox(t, b)
	poll.Wait(t, 30*time.Second, "the older Portal's message to arrive", func() bool { return len(srv.Messages()) > 0 })
	poll.Wait(t, 30*time.Second, "the queue to empty", func() bool {
		p, err := a.Pending(context.Background())
		return err == nil && len(p) == 0
	})
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d copies arrived, want 1", n)
	}
	if !strings.Contains(logs.String(), "attempts=3") {
		t.Fatalf("the send is not logged as the message's third attempt:\n%s", logs.String())
	}
	if left, err := a.list(context.Background(), keyLegacy); err != nil || len(left) != 0 {
		t.Fatalf("left where the older Portal kept it: %v (%v)", left, err)
	}
	// An instance that read the older Portal's message before it was
	// moved, and moves it only now that it has been sent: not sent again.
	c := NewOutbox(st, st, s, log, fastRetries())
	c.move([]*Entry{legacy})
	runOutbox(t, c)
	poll.Holds(t, time.Second, "one copy", func() bool { return len(srv.Messages()) == 1 })
}
