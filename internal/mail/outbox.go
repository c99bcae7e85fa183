package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
)

// Keys of the outbox in the user service's store.
const (
	keyPending = "outbox/msg/"    // outbox/msg/<id> -> entry, waiting to be sent
	keyFailed  = "outbox/failed/" // outbox/failed/<id> -> entry without its body, given up
	keyClaim   = "outbox/claim/"  // outbox/claim/<id>/<attempt> -> "1": one sender per attempt, expiring
)

// OutboxOptions tune the outbox; zero values take the defaults.
type OutboxOptions struct {
	// Backoff is the wait before the first retry (default 5 s); each
	// further retry waits twice as long, at most MaxBackoff (default 10
	// min).
	Backoff, MaxBackoff time.Duration
	// MaxAttempts is how many sends are tried before the message is given
	// up (default 10: about an hour and a half with the default backoff).
	MaxAttempts int
	// Poll is how often the store is looked at for messages another
	// instance queued (default 15 s); a message queued here is sent at once.
	Poll time.Duration
	// Lease is how long an attempt may take: the send is cut there, and
	// until then no instance tries the message again, so that a slow send
	// is not doubled; after a crash mid-send, the message is tried again
	// when its lease ends (default 2 min).
	Lease time.Duration
	// KeepFailed is how long a given-up message stays listed (default 30 days).
	KeepFailed time.Duration
}

func (o *OutboxOptions) defaults() {
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Poll <= 0 {
		o.Poll = 15 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.KeepFailed <= 0 {
		o.KeepFailed = 30 * 24 * time.Hour
	}
}

// Entry is a queued (or given-up) message and its sending history.
type Entry struct {
	Message  Message   `json:"message"`
	Queued   time.Time `json:"queued"`
	Attempts int       `json:"attempts"`
	// NextAt is when the next attempt is due.
	NextAt time.Time `json:"next_at"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error,omitempty"`
}

// Outbox queues messages in a store and sends them in the background, so
// that no request waits for a mail server: Enqueue writes the message;
// Run sends it, retrying with exponential backoff, and gives it up after
// MaxAttempts (or at once on a permanent refusal): logged at error level
// and listed by Failed for admins.
type Outbox struct {
	st     store.Store
	kv     kv.Store
	sender Sender
	log    *slog.Logger
	o      OutboxOptions
	wake   chan struct{}
	now    func() time.Time
}

// NewOutbox keeps its queue in st (the user service's store), sending
// through sender. k claims each attempt of each message for one sender: it
// must be atomic for every process sharing st (kv.Redis, the file store;
// kv.NewLocal(st) for one process).
func NewOutbox(st store.Store, k kv.Store, sender Sender, log *slog.Logger, o OutboxOptions) *Outbox {
	o.defaults()
	return &Outbox{st: st, kv: k, sender: sender, log: log, o: o, wake: make(chan struct{}, 1), now: time.Now}
}

// Sender returns where the outbox sends.
func (b *Outbox) Sender() Sender { return b.sender }

// Enqueue stores m to be sent and wakes the sender. It returns once m is
// stored: it never waits for the mail server.
func (b *Outbox) Enqueue(ctx context.Context, m Message) error {
	if m.ID == "" {
		return errors.New("mail: a message without an id")
	}
	now := b.now().UTC()
	if err := b.write(keyPending+m.ID, &Entry{Message: m, Queued: now, NextAt: now}, 0); err != nil {
		return err
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run sends due messages until ctx ends: at once when one is queued here,
// when a retry is due, and every Poll for those queued elsewhere.
func (b *Outbox) Run(ctx context.Context) {
	for {
		next := b.SendDue(ctx)
		wait := b.o.Poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(b.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// SendDue makes one pass: it tries every message that is due and returns
// when the earliest one left is due (zero: none left).
func (b *Outbox) SendDue(ctx context.Context) time.Time {
	entries, err := b.list(ctx, keyPending)
	if err != nil {
		b.log.Warn("mail outbox: cannot read the queue", "err", err)
		return b.now().Add(b.o.Backoff)
	}
	var next time.Time
	for _, e := range entries {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if e.NextAt.After(b.now()) {
			if next.IsZero() || e.NextAt.Before(next) {
				next = e.NextAt
			}
			continue
		}
		if at := b.attempt(ctx, e); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// attempt sends e once, if this instance wins the attempt, and returns when
// its retry is due (zero: sent, given up, or another instance's).
func (b *Outbox) attempt(ctx context.Context, e *Entry) time.Time {
	id := e.Message.ID
	// The claim outlives the attempt's lease: should this process die
	// before it records the attempt, the claim lapses and the same attempt
	// is tried again.
	won, err := b.kv.Apply(kv.PutOp(keyClaim+id+"/"+strconv.Itoa(e.Attempts), []byte("1"), 2*b.o.Lease).When(kv.Absent))
	if err != nil || !won {
		return time.Time{}
	}
	// Another instance may have finished it between our read and the
	// claim: read it again.
	if cur, err := b.read(keyPending + id); err != nil || cur.Attempts != e.Attempts {
		return time.Time{}
	}
	// The attempt is written before the send, due again when its lease
	// ends: should this process die in the middle, the message comes due
	// then, with a new attempt number.
	e.Attempts++
	e.NextAt = b.now().UTC().Add(b.o.Lease)
	if err := b.write(keyPending+id, e, 0); err != nil {
		b.log.Warn("mail outbox: cannot record an attempt", "id", id, "err", err)
		return e.NextAt
	}
	sendCtx, cancel := context.WithTimeout(ctx, b.o.Lease/2)
	err = b.sender.Send(sendCtx, e.Message)
	cancel()
	var perm *PermanentError
	switch {
	case err == nil:
		b.log.Info("mail sent", "id", id, "kind", e.Message.Kind, "to", e.Message.To, "attempts", e.Attempts)
		b.finish(e)
		return time.Time{}
	case ctx.Err() != nil:
		// The outbox is stopping and cut the send short: not the
		// server's refusal, so never given up for it. The message is due
		// again when the attempt's lease ends, as after a crash.
		return e.NextAt
	case errors.As(err, &perm) || e.Attempts >= b.o.MaxAttempts:
		e.LastError = err.Error()
		b.log.Error("mail given up", "id", id, "kind", e.Message.Kind, "to", e.Message.To, "attempts", e.Attempts, "err", err)
		// The body (with its link) is not kept: only what an admin needs.
		failed := *e
		failed.Message.Text, failed.Message.HTML = "", ""
		if werr := b.write(keyFailed+id, &failed, b.o.KeepFailed); werr != nil {
			b.log.Warn("mail outbox: cannot record a failure", "id", id, "err", werr)
		}
		b.finish(e)
		return time.Time{}
	default:
		e.LastError = err.Error()
		e.NextAt = b.now().UTC().Add(b.backoff(e.Attempts))
		b.log.Warn("mail not sent; will retry", "id", id, "kind", e.Message.Kind, "attempts", e.Attempts, "retry_at", e.NextAt, "err", err)
		if werr := b.write(keyPending+id, e, 0); werr != nil {
			b.log.Warn("mail outbox: cannot record an attempt", "id", id, "err", werr)
		}
		return e.NextAt
	}
}

// finish removes a message that was sent or given up (its claims expire).
func (b *Outbox) finish(e *Entry) {
	if err := b.st.Delete(keyPending + e.Message.ID); err != nil {
		b.log.Warn("mail outbox: cannot remove a finished message", "id", e.Message.ID, "err", err)
	}
}

// backoff is the wait after the n-th failed attempt.
func (b *Outbox) backoff(n int) time.Duration {
	d := b.o.Backoff
	for i := 1; i < n && d < b.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, b.o.MaxBackoff)
}

// Pending returns the messages waiting to be sent, oldest first.
func (b *Outbox) Pending(ctx context.Context) ([]*Entry, error) { return b.list(ctx, keyPending) }

// Failed returns the messages given up (without their bodies), newest
// first: what admins are shown.
func (b *Outbox) Failed(ctx context.Context) ([]*Entry, error) {
	list, err := b.list(ctx, keyFailed)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Queued.After(list[j].Queued) })
	return list, nil
}

// list reads the entries under prefix, oldest first.
func (b *Outbox) list(ctx context.Context, prefix string) ([]*Entry, error) {
	keys, err := b.st.List(store.ListPrefix(prefix))
	if err != nil {
		return nil, fmt.Errorf("mail: list: %w", err)
	}
	out := make([]*Entry, 0, len(keys))
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		e, err := b.read(k)
		if errors.Is(err, store.ErrNotFound) {
			continue // sent meanwhile
		} else if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	return out, nil
}

func (b *Outbox) read(key string) (*Entry, error) {
	recs, err := b.st.Read(key)
	if err == nil && len(recs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var e Entry
	if err := json.Unmarshal(recs[0].Value, &e); err != nil {
		return nil, fmt.Errorf("mail: decode %s: %w", key, err)
	}
	return &e, nil
}

func (b *Outbox) write(key string, e *Entry, ttl time.Duration) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.st.Write(&store.Record{Key: key, Value: data, Expiry: ttl}); err != nil {
		return fmt.Errorf("mail: write: %w", err)
	}
	return nil
}
