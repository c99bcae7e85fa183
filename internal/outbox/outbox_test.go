package outbox

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// broker records what a Sender was given and refuses while down.
type broker struct {
	mu   sync.Mutex
	down bool
	got  map[string]int // sends by message id
}

func (b *broker) send(_ context.Context, m Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("broker down")
	}
	b.got[m.ID]++
	return nil
}

func (b *broker) setDown(d bool) { b.mu.Lock(); b.down = d; b.mu.Unlock() }

func (b *broker) sends(id string) int { b.mu.Lock(); defer b.mu.Unlock(); return b.got[id] }

func newOutbox(k kv.Store, b *broker, flush func(context.Context) error) *Outbox {
	o := New(k, b.send, flush, nil)
	o.Grace, o.Poll = 20*time.Millisecond, 20*time.Millisecond
	return o
}

func length(t *testing.T, o *Outbox) int {
	t.Helper()
	n, err := o.Len(0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRelay: a record the fast path did not deliver is sent by the relay,
// again and again while the broker refuses, and deleted once it takes it.
func TestRelay(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	b := &broker{got: map[string]int{}, down: true}
	o := newOutbox(k, b, nil)
	m := NewMessage("t", []byte(`{"a":1}`))
	if err := o.Put(m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	poll.Holds(t, 300*time.Millisecond, "the record kept while the broker refuses", func() bool { return length(t, o) == 1 })
	b.setDown(false)
	poll.Wait(t, 10*time.Second, "the record sent and deleted", func() bool { return b.sends(m.ID) == 1 && length(t, o) == 0 })
}

// TestPublished: the fast path's record is deleted once flush confirms,
// kept (for the relay) when flush fails.
func TestPublished(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	b := &broker{got: map[string]int{}}
	fail := errors.New("not acknowledged")
	o := newOutbox(k, b, func(context.Context) error { return fail })
	m := NewMessage("t", []byte(`{}`))
	if err := o.Put(m); err != nil {
		t.Fatal(err)
	}
	o.Published(m)
	poll.Holds(t, 200*time.Millisecond, "the record kept without an acknowledgement", func() bool { return length(t, o) == 1 })
	newOutbox(k, b, nil).Published(m)
	poll.Wait(t, 10*time.Second, "the record deleted once acknowledged", func() bool { return length(t, o) == 0 })
	if n := b.sends(m.ID); n != 0 {
		t.Fatalf("the relay was not running, yet %d sends", n)
	}
}

// TestLease: of two relays on one outbox, only the one holding a record's
// lease sends it; the other takes over when the lease ends.
func TestLease(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	b1 := &broker{got: map[string]int{}, down: true}
	b2 := &broker{got: map[string]int{}}
	o1, o2 := newOutbox(k, b1, nil), newOutbox(k, b2, nil)
	m := NewMessage("t", []byte(`{}`))
	m.At = m.At.Add(-time.Minute) // older than Grace
	if err := o1.Put(m); err != nil {
		t.Fatal(err)
	}
	if _, err := o1.relay(context.Background(), o1.bound()); err == nil {
		t.Fatal("relay with the broker down: no error")
	}
	// o1 holds the lease: o2 leaves the record alone.
	if n, err := o2.relay(context.Background(), o2.bound()); err != nil || n != 0 || b2.sends(m.ID) != 0 {
		t.Fatalf("second relay while the first holds the lease: sent %d (%d), err %v", n, b2.sends(m.ID), err)
	}
	// The lease ends (o1 died): o2 sends.
	if _, err := k.Apply(kv.DeleteOp(o1.leases + m.member())); err != nil {
		t.Fatal(err)
	}
	if n, err := o2.relay(context.Background(), o2.bound()); err != nil || n != 1 || length(t, o2) != 0 {
		t.Fatalf("second relay after the lease: sent %d, err %v, left %d", n, err, length(t, o2))
	}
}

// receivers refuse the messages of the ids they are told, n times each.
type receivers struct {
	mu     sync.Mutex
	refuse map[string]int
	got    map[string]int
}

func (r *receivers) send(_ context.Context, m Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse[m.ID] != 0 {
		r.refuse[m.ID]--
		return errors.New("receiver down")
	}
	r.got[m.ID]++
	return nil
}

func (r *receivers) sends(id string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.got[id] }

// TestQueue: a queue sends a message as soon as it is Put; one its
// receiver refuses waits with backoff while the others go on, is sent once
// the receiver takes it, and is given up (once, to GiveUp) after
// MaxAttempts; the queue's records are apart from the outbox's in the same
// store, and a new relay (a restart) carries on where the last left off.
func TestQueue(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	ok, flaky, dead := NewMessage("t", []byte(`1`)), NewMessage("t", []byte(`2`)), NewMessage("t", []byte(`3`))
	r := &receivers{refuse: map[string]int{flaky.ID: 2, dead.ID: 1000}, got: map[string]int{}}
	var mu sync.Mutex
	var given []Message
	retry := Retry{MaxAttempts: 4, Backoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, GiveUp: func(m Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		given = append(given, m)
	}}
	q := NewQueue(k, "q", r.send, retry, nil)
	q.Poll = 10 * time.Millisecond
	events := New(k, (&broker{got: map[string]int{}}).send, nil, nil)
	if err := events.Put(NewMessage("e", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{dead, flaky} {
		if err := q.Put(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	poll.Wait(t, 10*time.Second, "the flaky receiver's message", func() bool { return r.sends(flaky.ID) == 1 })
	// A restart: a new relay of the same queue.
	cancel()
	poll.Receive(t, 10*time.Second, "the relay to stop", done)
	q = NewQueue(k, "q", r.send, retry, nil)
	q.Poll = 10 * time.Millisecond
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	if err := q.Put(ok); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, "the message given up and the new one sent", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(given) == 1 && r.sends(ok.ID) == 1
	})
	if given[0].ID != dead.ID || given[0].Attempts != retry.MaxAttempts || r.sends(dead.ID) != 0 || r.sends(flaky.ID) != 1 {
		t.Fatalf("given up %+v; sends: dead %d, flaky %d", given, r.sends(dead.ID), r.sends(flaky.ID))
	}
	poll.Wait(t, 10*time.Second, "the queue empty", func() bool { return length(t, q) == 0 })
	if n := length(t, events); n != 1 {
		t.Fatalf("the outbox beside the queue holds %d records, want its own 1", n)
	}
}

// TestStopDuringSendCountsNoAttempt: a send that the relay's own stop cuts
// short is not the receiver's refusal: the message keeps its attempts (a
// stop used to count one, and a message refused MaxAttempts-1 times was
// then given up without its last try) and the next relay sends it at once.
func TestStopDuringSendCountsNoAttempt(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	m := NewMessage("t", []byte(`1`))
	sending := make(chan struct{}, 1)
	hang := func(ctx context.Context, _ Message) error {
		sending <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	var mu sync.Mutex
	var given []Message
	retry := Retry{MaxAttempts: 1, Backoff: time.Hour, MaxBackoff: time.Hour, GiveUp: func(m Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		given = append(given, m)
	}}
	q := NewQueue(k, "q", hang, retry, nil)
	q.Poll = 10 * time.Millisecond
	if err := q.Put(m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	poll.Receive(t, 10*time.Second, "the relay to send", sending)
	cancel()
	poll.Receive(t, 10*time.Second, "the relay to stop", done)
	mu.Lock()
	gaveUp := append([]Message(nil), given...)
	mu.Unlock()
	if len(gaveUp) != 0 {
		t.Fatalf("a send cut short by the relay's stop gave the message up: %+v", gaveUp)
	}
	// The next relay sends it at once: its attempts are 0 and its lease is gone.
	r := &receivers{refuse: map[string]int{}, got: map[string]int{}}
	q = NewQueue(k, "q", r.send, retry, nil)
	q.Poll = 10 * time.Millisecond
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	poll.Wait(t, 10*time.Second, "the message sent by the next relay", func() bool { return r.sends(m.ID) == 1 })
}

// TestQueueSendTimeout: a queue's Retry.Timeout bounds each send (a mail
// server may take a minute, a back-channel logout 5 s), and a relay holds
// the record it sends for longer than that, so that no other relay sends
// it again meanwhile.
func TestQueueSendTimeout(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	left := make(chan time.Duration, 1)
	send := func(ctx context.Context, _ Message) error {
		d, _ := ctx.Deadline()
		left <- time.Until(d)
		return nil
	}
	q := NewQueue(k, "q", send, Retry{MaxAttempts: 1, Timeout: time.Minute}, nil)
	if q.lease <= q.timeout {
		t.Errorf("lease %v, not past the send timeout %v: another relay would send the message again", q.lease, q.timeout)
	}
	if err := q.Put(NewMessage("t", []byte(`1`))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	if d := poll.Receive(t, 10*time.Second, "the send", left); d < 50*time.Second || d > time.Minute {
		t.Errorf("the send had %v, want the queue's 1 m timeout", d)
	}
}

// TestQueueRetryDueDuringTheRelay: a refused message whose retry comes due
// while the relay is still busy with the others is sent right after that
// relay, not at the next poll (here an hour away: the mail outbox's retries
// stalled so under load).
func TestQueueRetryDueDuringTheRelay(t *testing.T) {
	k := kv.NewLocal(store.NewMemoryStore())
	first, slow := NewMessage("t", []byte(`1`)), NewMessage("t", []byte(`2`))
	first.At = first.At.Add(-time.Second)    // both due at once,
	slow.At = first.At.Add(time.Millisecond) // first before slow
	var mu sync.Mutex
	refused, sent := false, map[string]int{}
	send := func(_ context.Context, m Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.ID == first.ID && !refused {
			refused = true
			return errors.New("busy")
		}
		if m.ID == slow.ID {
			time.Sleep(50 * time.Millisecond) // first's retry comes due meanwhile
		}
		sent[m.ID]++
		return nil
	}
	q := NewQueue(k, "q", send, Retry{MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}, nil)
	q.Poll = time.Hour
	for _, m := range []Message{first, slow} {
		if err := q.Put(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	poll.Wait(t, 10*time.Second, "the refused message's retry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return sent[first.ID] == 1
	})
}
