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
//
// A queue (NewQueue) is an outbox of its own, for messages to receivers
// that may each refuse (an application's back-channel logout endpoint, a
// mail server): a refused message waits with backoff while the others go
// on, and is given up after a bounded number of attempts, or at once on a
// refusal that no retry would change.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
	// Attempts is how many sends a queue's receiver refused; Next is when
	// the queue tries again (zero: At); Error is the last refusal.
	Attempts int       `json:"attempts,omitempty"`
	Next     time.Time `json:"next,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// NewMessage is an event on topic with body (JSON), a fresh id, made now.
func NewMessage(topic string, body []byte) Message {
	return Message{ID: uuid.NewString(), Topic: topic, Body: body, At: time.Now().UTC()}
}

// member is m's place in the outbox index: by when it is due, then id.
func (m Message) member() string {
	due := m.At
	if !m.Next.IsZero() {
		due = m.Next
	}
	return fmt.Sprintf("%019d.%s", due.UnixNano(), m.ID)
}

// Sender publishes m and returns once the broker has acknowledged it.
type Sender func(ctx context.Context, m Message) error

// name is the outbox's name in its store (New's); a queue has its own.
// Its keys: the index <name>, records <name>/<member>, leases
// <name>-lease/<member>.
const (
	name        = "outbox"
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
	// takes it over after that when the first died. A queue whose sends
	// may take longer (Retry.Timeout) holds its records for twice that.
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
	// index, records and leases are the outbox's keys (see name).
	index, records, leases string
	// retry, for a queue, bounds each message's attempts; wake starts the
	// relay when a message is Put.
	retry *Retry
	wake  chan struct{}
	// timeout bounds one send; lease is how long a relay holds a record.
	timeout, lease time.Duration
	// Grace and Poll are the relay's timing (New sets the defaults).
	Grace, Poll time.Duration
}

// Retry is a queue's rule for a message its receiver refuses: tried again
// after Backoff, each wait twice the one before up to MaxBackoff, until
// MaxAttempts sends have failed, or at once when Final says no retry would
// change the refusal; then given up: logged once, at error level, and
// handed to GiveUp (nil: nothing more).
type Retry struct {
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// Final reports a refusal that a retry would meet again (an SMTP 5xx);
	// nil: every refusal is tried again.
	Final func(error) bool
	// Timeout bounds one send (zero: 5 s); while it runs, no other relay
	// sends the message.
	Timeout time.Duration
	GiveUp  func(m Message, err error)
}

// backoff is the wait after the n-th failed attempt.
func (r *Retry) backoff(n int) time.Duration {
	d := r.Backoff
	for i := 1; i < n && d < r.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.MaxBackoff)
}

// New keeps events in k and relays them with send. flush (nil: none) returns
// once the broker has every message published so far by this process: the
// fast path's acknowledgement (Published).
func New(k kv.Store, send Sender, flush func(context.Context) error, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{kv: k, send: send, flush: flush, owner: uuid.NewString(), log: log.With("outbox", "relay"), Grace: DefaultGrace, Poll: DefaultPoll,
		index: name, records: name + "/", leases: name + "-lease/", timeout: sendTimeout, lease: Lease}
}

// NewQueue is the outbox called queue in k (apart from every other), whose
// messages go to receivers that may each refuse: the relay (Run) sends a
// message as soon as it is Put, with no fast path; one that send refuses is
// tried again as r says, while the others go on. A message survives a
// restart, and is sent by whichever instance relays first.
func NewQueue(k kv.Store, queue string, send Sender, r Retry, log *slog.Logger) *Outbox {
	o := New(k, send, nil, log)
	o.index, o.records, o.leases = queue, queue+"/", queue+"-lease/"
	o.log = o.log.With("queue", queue)
	o.retry, o.wake, o.Grace = &r, make(chan struct{}, 1), 0
	if r.Timeout > 0 {
		o.timeout, o.lease = r.Timeout, max(Lease, 2*r.Timeout)
	}
	return o
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
	return []kv.Op{kv.PutOp(o.records+mb, data, 0), kv.AddOp(o.index, mb)}
}

// Put writes m's record on its own: for a change that is not a kv batch.
func (o *Outbox) Put(m Message) error {
	if o == nil {
		return nil
	}
	if _, err := o.kv.Apply(o.Ops(m)...); err != nil {
		return fmt.Errorf("outbox: keep %s: %w", m.Topic, err)
	}
	o.Wake()
	return nil
}

// Wake starts a queue's relay now (a message was written with Ops); for
// an outbox with a fast path it does nothing.
func (o *Outbox) Wake() {
	if o == nil {
		return
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
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
	_, err := o.kv.Apply(kv.DeleteOp(o.records+mb), kv.RemoveOp(o.index, mb), kv.DeleteOp(o.leases+mb))
	return err
}

// refused handles a queue's message m (at member mb) that its receiver
// refused with err: due again after the backoff, or given up.
func (o *Outbox) refused(mb string, m Message, err error) error {
	m.Attempts++
	m.Error = err.Error()
	if m.Attempts >= o.retry.MaxAttempts || (o.retry.Final != nil && o.retry.Final(err)) {
		o.log.Error("outbox: message given up", "topic", m.Topic, "id", m.ID, "attempts", m.Attempts, "err", err)
		if o.retry.GiveUp != nil {
			o.retry.GiveUp(m, err)
		}
		return o.done(mb)
	}
	m.Next = time.Now().Add(o.retry.backoff(m.Attempts)).UTC()
	o.log.Warn("outbox: message refused; will retry", "topic", m.Topic, "id", m.ID, "attempts", m.Attempts, "retry_at", m.Next, "err", err)
	data, merr := json.Marshal(m)
	if merr != nil {
		return merr
	}
	nb := m.member()
	_, err = o.kv.Apply(kv.DeleteOp(o.records+mb), kv.RemoveOp(o.index, mb), kv.DeleteOp(o.leases+mb),
		kv.PutOp(o.records+nb, data, 0), kv.AddOp(o.index, nb))
	return err
}

// Messages returns up to limit of the outbox's records, the soonest due
// first.
func (o *Outbox) Messages(limit int) ([]Message, error) {
	if o == nil {
		return nil, nil
	}
	members, err := o.kv.Members(o.index, kv.Range{Limit: limit})
	if err != nil || len(members) == 0 {
		return nil, err
	}
	keys := make([]string, len(members))
	for i, mb := range members {
		keys[i] = o.records + mb
	}
	vals, err := o.kv.Get(keys...)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(vals))
	for _, v := range vals {
		var m Message
		if v != nil && json.Unmarshal(v, &m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// Len is how many records the outbox holds, counting up to max.
func (o *Outbox) Len(max int) (int, error) {
	if o == nil {
		return 0, nil
	}
	return o.kv.Count(o.index, "", max)
}

// Run relays until ctx ends: every Poll, and when the next record is due
// if that is sooner, it sends the records older than Grace, oldest first;
// while the broker refuses, it waits 50 ms, doubling up to Poll, between
// attempts.
func (o *Outbox) Run(ctx context.Context) {
	wait := o.Poll
	failing := false
	bound := o.bound()
	for {
		sleep := wait
		if !failing {
			sleep = o.untilDue(bound, o.Poll)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		case <-o.wake:
		}
		bound = o.bound()
		n, err := o.relay(ctx, bound)
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
		if n > 0 && err == nil && o.retry == nil {
			o.log.Info("outbox: relayed events the fast path had not delivered", "sent", n)
		}
	}
}

// bound is the index member that records older than Grace sort before.
func (o *Outbox) bound() string {
	return fmt.Sprintf("%019d", time.Now().Add(-o.Grace).UnixNano())
}

// untilDue is wait, or less when a record the last relay left for later
// (after its bound: a queue's retry after a short backoff, a record
// within Grace) comes due sooner; at least 10 ms. Those before the bound
// it left were leased to another relay, and wait for the next poll.
func (o *Outbox) untilDue(bound string, wait time.Duration) time.Duration {
	next, err := o.kv.Members(o.index, kv.Range{After: bound, Limit: 1})
	if err != nil || len(next) == 0 {
		return wait
	}
	due, err := strconv.ParseInt(strings.SplitN(next[0], ".", 2)[0], 10, 64)
	if err != nil {
		return wait
	}
	return min(wait, max(time.Until(time.Unix(0, due).Add(o.Grace)), 10*time.Millisecond))
}

// relay sends the records before bound (older than Grace) that no other
// relay holds, and says how many; it stops at the first the broker refuses.
func (o *Outbox) relay(ctx context.Context, bound string) (int, error) {
	members, err := o.kv.Members(o.index, kv.Range{Before: bound, Limit: 100})
	if err != nil {
		return 0, fmt.Errorf("outbox: read: %w", err)
	}
	sent := 0
	for _, mb := range members {
		if ctx.Err() != nil {
			return sent, nil
		}
		ok, err := o.kv.Apply(kv.PutOp(o.leases+mb, []byte(o.owner), o.lease).When(kv.AbsentOrSame))
		if err != nil {
			return sent, fmt.Errorf("outbox: lease: %w", err)
		}
		if !ok {
			continue // another relay sends it
		}
		vals, err := o.kv.Get(o.records + mb)
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
		sctx, cancel := context.WithTimeout(ctx, o.timeout)
		err = o.send(sctx, m)
		cancel()
		if err != nil && ctx.Err() != nil {
			// The relay is stopping and cut the send short: not the
			// receiver's refusal, so no attempt is counted. The record
			// stays; its lease goes, for the next relay to send it now.
			if _, err := o.kv.Apply(kv.DeleteOp(o.leases + mb)); err != nil {
				return sent, fmt.Errorf("outbox: lease: %w", err)
			}
			return sent, nil
		}
		if err != nil && o.retry != nil {
			if err := o.refused(mb, m, err); err != nil {
				return sent, fmt.Errorf("outbox: reschedule: %w", err)
			}
			continue
		}
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
