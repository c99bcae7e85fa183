package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4/events"

	"github.com/portal-go/portal/internal/outbox"
)

// Publisher puts audit entries on a stream, for the system service to store.
// A nil *Publisher publishes nothing.
type Publisher struct {
	stream events.Stream
	log    *slog.Logger
	now    func() time.Time

	lost     atomic.Uint64
	mu       sync.Mutex
	pending  []Entry // entries Record could not publish yet, oldest first
	retrying bool    // a goroutine publishes pending
	// outbox, when set, keeps each entry Record is given until the stream
	// has it (WithOutbox).
	outbox *outbox.Outbox
}

// MaxPending bounds the entries a Publisher keeps in memory while the stream
// refuses them (about 1 KiB each); past it the oldest are dropped, counted
// by Failures.
const MaxPending = 10000

// Retry waits between attempts to publish pending entries: the first after
// retryMin, doubling up to retryMax.
const (
	retryMin = 50 * time.Millisecond
	retryMax = time.Second
)

// NewPublisher publishes on stream; Record logs to log.
func NewPublisher(stream events.Stream, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{stream: stream, log: log, now: time.Now}
}

// WithOutbox makes Record keep each entry in o (the service's store) before
// publishing it, so that neither a stream outage nor the process's end loses
// it: o's relay publishes it again until the stream has it (send it with
// p.Send). It returns p.
func (p *Publisher) WithOutbox(o *outbox.Outbox) *Publisher {
	p.outbox = o
	return p
}

// Send is the outbox's Sender for audit entries: it publishes the entry m
// holds (the log stores an entry once per ID, so a second delivery is
// harmless).
func (p *Publisher) Send(ctx context.Context, m outbox.Message) error {
	var e Entry
	if err := json.Unmarshal(m.Body, &e); err != nil {
		return fmt.Errorf("%w: outbox entry: %w", ErrInvalid, err)
	}
	return p.Publish(ctx, e)
}

// Publish fills in e's ID and Time when they are empty and publishes e on
// Topic. It returns the stream's error: the entry is then lost.
func (p *Publisher) Publish(ctx context.Context, e Entry) error {
	if p == nil {
		return nil
	}
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Time.IsZero() {
		e.Time = p.now()
	}
	e.Time = e.Time.UTC()
	if !e.Kind.Valid() {
		return fmt.Errorf("%w: kind %q", ErrInvalid, e.Kind)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.stream.Publish(Topic, e, events.WithTimestamp(e.Time)); err != nil {
		return fmt.Errorf("audit: publish %s: %w", e.Kind, err)
	}
	return nil
}

// Record publishes e and never fails the caller: for a request that must
// succeed whether or not its audit entry can be published now. An entry the
// stream refuses (NATS down) is kept in memory, in order, and published again
// until the stream takes it (at most retryMax after the stream is back); the
// first refusal of a run is logged, and the end of the run. A process that
// ends meanwhile loses what it kept, and past MaxPending the oldest entries
// are dropped: both are counted by Failures.
func (p *Publisher) Record(ctx context.Context, e Entry) {
	if p == nil {
		return
	}
	// ID and time now: a retry publishes the same entry, which the log
	// stores once.
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Time.IsZero() {
		e.Time = p.now()
	}
	if p.keep(ctx, e) {
		return
	}
	p.mu.Lock()
	queued := len(p.pending) > 0
	p.mu.Unlock()
	if !queued {
		err := p.Publish(ctx, e)
		if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrClosed) {
			if err != nil {
				p.lost.Add(1)
				p.log.Error("audit entry not published", "kind", e.Kind, "err", err)
			}
			return
		}
		p.log.Error("audit entries are not being published; keeping them to publish again", "kind", e.Kind, "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) >= MaxPending {
		p.pending = p.pending[1:]
		p.lost.Add(1)
	}
	p.pending = append(p.pending, e)
	if !p.retrying {
		p.retrying = true
		go p.retry()
	}
}

// keep, when p has an outbox, keeps e there, publishes it, and reports true:
// the outbox's relay publishes again what the stream refused. False: no
// outbox, or the store refused e (Record's memory queue takes it).
func (p *Publisher) keep(ctx context.Context, e Entry) bool {
	if p.outbox == nil || !e.Kind.Valid() {
		return false
	}
	body, err := json.Marshal(e)
	if err != nil {
		return false
	}
	m := outbox.NewMessage(Topic, body)
	if err := p.outbox.Put(m); err != nil {
		p.log.Error("audit entry not kept in the outbox; kept in memory", "kind", e.Kind, "err", err)
		return false
	}
	if err := p.Publish(ctx, e); err != nil {
		p.log.Warn("audit entry not published; the outbox relays it", "kind", e.Kind, "err", err)
		return true
	}
	p.outbox.Published(m)
	return true
}

// retry publishes the pending entries, oldest first, until none is left or
// the stream is closed.
func (p *Publisher) retry() {
	wait := retryMin
	published := 0
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.retrying = false
			p.mu.Unlock()
			p.log.Info("audit entries are published again", "published_late", published)
			return
		}
		e := p.pending[0]
		p.mu.Unlock()
		err := p.Publish(context.Background(), e)
		if errors.Is(err, ErrClosed) {
			p.mu.Lock()
			p.lost.Add(uint64(len(p.pending)))
			p.log.Error("audit stream closed: entries not published", "lost", len(p.pending))
			p.pending, p.retrying = nil, false
			p.mu.Unlock()
			return
		}
		if err != nil {
			time.Sleep(wait)
			wait = min(2*wait, retryMax)
			continue
		}
		wait = retryMin
		published++
		p.mu.Lock()
		if len(p.pending) > 0 && p.pending[0].ID == e.ID {
			p.pending = p.pending[1:]
		}
		p.mu.Unlock()
	}
}

// Pending is how many entries wait to be published again.
func (p *Publisher) Pending() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Failures is how many entries were lost since the start: refused for good
// (invalid, stream closed) or dropped past MaxPending.
func (p *Publisher) Failures() uint64 {
	if p == nil {
		return 0
	}
	return p.lost.Load()
}
