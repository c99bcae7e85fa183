// Package outbox keeps the events a service must deliver (revocations, user
// and role changes, audit entries) in the service's own store until the
// broker acknowledges them, so that neither a broker outage nor a kill -9
// loses one.
//
// A service writes an event's record in the same atomic kv batch as the
// change it reports (Ops), or right after it (Put), before it answers; it
// then publishes at once as before (the fast path) and, once the broker has
// the event, deletes the record (Published). A background relay (Run) sends
// again every record older than Grace (the fast path failed, or the process
// died) until the broker acknowledges it, with backoff while it refuses.
// Several instances may relay one outbox (Redis): each record is leased to
// one relay at a time. An event may so arrive twice: every consumer is
// idempotent by the event's content (a revocation, a cache drop, a role
// reload) or by its id (the audit log stores an entry once per id).
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/portal-go/portal/internal/kv"
)

// Message is one event kept until the broker acknowledges it.
type Message struct {
	ID    string          `json:"id"`
	Topic string          `json:"topic"`
	Body  json.RawMessage `json:"body"` // the event, as its Sender decodes it
	At    time.Time       `json:"at"`
}

// NewMessage is an event on topic with body (JSON), a fresh id, made now.
func NewMessage(topic string, body []byte) Message {
	return Message{ID: uuid.NewString(), Topic: topic, Body: body, At: time.Now().UTC()}
}

// member is m's place in the outbox index: by time, then id.
func (m Message) member() string { return fmt.Sprintf("%019d.%s", m.At.UnixNano(), m.ID) }

// Sender publishes m and returns once the broker has acknowledged it.
type Sender func(ctx context.Context, m Message) error

// Keys of the outbox in its store.
const (
	index       = "outbox"
	recordKey   = "outbox/"
	leaseKey    = "outbox-lease/"
	sendTimeout = 5 * time.Second
)

// Defaults of an Outbox's timing.
const (
	// DefaultGrace is how old a record is before the relay sends it: the
	// fast path has that long to publish and delete it.
	DefaultGrace = 2 * time.Second
	// DefaultPoll is the relay's wait between two looks at an empty
	// outbox, and its longest wait between two attempts while the broker
	// refuses (the first come sooner).
	DefaultPoll = time.Second
	// Lease is how long one relay holds a record it sends: another relay
	// takes it over after that when the first died.
	Lease = 15 * time.Second
)

// Outbox is the durable queue of one service's events in its kv.Store. A
// nil *Outbox keeps nothing: Ops is empty and the others do nothing.
type Outbox struct {
	kv    kv.Store
	send  Sender
	flush func(context.Context) error
	owner string
	log   *slog.Logger
	// Grace and Poll are the relay's timing (New sets the defaults).
	Grace, Poll time.Duration
}

// New keeps events in k and relays them with send. flush (nil: none) returns
// once the broker has every message published so far by this process: the
// fast path's acknowledgement (Published).
func New(k kv.Store, send Sender, flush func(context.Context) error, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{kv: k, send: send, flush: flush, owner: uuid.NewString(), log: log.With("outbox", "relay"), Grace: DefaultGrace, Poll: DefaultPoll}
}

// Ops write m's record: put them in the batch of the change m reports.
func (o *Outbox) Ops(m Message) []kv.Op {
	if o == nil {
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil { // a RawMessage that is not JSON: the caller's bug
		panic(fmt.Sprintf("outbox: %s: %v", m.Topic, err))
	}
	mb := m.member()
	return []kv.Op{kv.PutOp(recordKey+mb, data, 0), kv.AddOp(index, mb)}
}

// Put writes m's record on its own: for a change that is not a kv batch.
func (o *Outbox) Put(m Message) error {
	if o == nil {
		return nil
	}
	if _, err := o.kv.Apply(o.Ops(m)...); err != nil {
		return fmt.Errorf("outbox: keep %s: %w", m.Topic, err)
	}
	return nil
}

// Published is the fast path's end: m was published; in the background,
// once flush confirms the broker has it, m's record is deleted. Left in
// place, the relay sends it again after Grace.
func (o *Outbox) Published(m Message) {
	if o == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		defer cancel()
		if o.flush != nil && o.flush(ctx) != nil {
			return
		}
		if err := o.done(m.member()); err != nil {
			o.log.Warn("outbox: record of a published event not deleted; the relay sends it again", "topic", m.Topic, "err", err)
		}
	}()
}

// done deletes the record at member mb and its lease.
func (o *Outbox) done(mb string) error {
	_, err := o.kv.Apply(kv.DeleteOp(recordKey+mb), kv.RemoveOp(index, mb), kv.DeleteOp(leaseKey+mb))
	return err
}

// Len is how many records the outbox holds, counting up to max.
func (o *Outbox) Len(max int) (int, error) {
	if o == nil {
		return 0, nil
	}
	return o.kv.Count(index, "", max)
}

// Run relays until ctx ends: every Poll it sends the records older than
// Grace, oldest first; while the broker refuses, it waits 50 ms, doubling up
// to Poll, between attempts.
func (o *Outbox) Run(ctx context.Context) {
	wait := o.Poll
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := o.relay(ctx)
		switch {
		case err != nil && !failing:
			o.log.Warn("outbox: events not delivered; retrying", "err", err)
			failing, wait = true, min(50*time.Millisecond, o.Poll)
		case err != nil:
			wait = min(2*wait, o.Poll)
		case failing:
			o.log.Info("outbox: events delivered again", "sent", n)
			failing, wait = false, o.Poll
		}
		if n > 0 && err == nil {
			o.log.Info("outbox: relayed events the fast path had not delivered", "sent", n)
		}
	}
}

// relay sends the records older than Grace that no other relay holds, and
// says how many; it stops at the first the broker refuses.
func (o *Outbox) relay(ctx context.Context) (int, error) {
	bound := fmt.Sprintf("%019d", time.Now().Add(-o.Grace).UnixNano())
	members, err := o.kv.Members(index, kv.Range{Before: bound, Limit: 100})
	if err != nil {
		return 0, fmt.Errorf("outbox: read: %w", err)
	}
	sent := 0
	for _, mb := range members {
		if ctx.Err() != nil {
			return sent, nil
		}
		ok, err := o.kv.Apply(kv.PutOp(leaseKey+mb, []byte(o.owner), Lease).When(kv.AbsentOrSame))
		if err != nil {
			return sent, fmt.Errorf("outbox: lease: %w", err)
		}
		if !ok {
			continue // another relay sends it
		}
		vals, err := o.kv.Get(recordKey + mb)
		if err != nil {
			return sent, fmt.Errorf("outbox: read: %w", err)
		}
		var m Message
		if vals[0] == nil || json.Unmarshal(vals[0], &m) != nil {
			// Gone (delivered by the fast path meanwhile) or unreadable.
			if err := o.done(mb); err != nil {
				return sent, fmt.Errorf("outbox: delete: %w", err)
			}
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err = o.send(sctx, m)
		cancel()
		if err != nil {
			return sent, fmt.Errorf("outbox: send %s: %w", m.Topic, err)
		}
		if err := o.done(mb); err != nil {
			return sent, fmt.Errorf("outbox: delete: %w", err)
		}
		sent++
	}
	return sent, nil
}
