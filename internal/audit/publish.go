package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4/events"
)

// Publisher puts audit entries on a stream, for the system service to store.
// A nil *Publisher publishes nothing.
type Publisher struct {
	stream events.Stream
	log    *slog.Logger
	now    func() time.Time

	failures atomic.Uint64
	mu       sync.Mutex
	failing  bool   // the last Record failed
	lost     uint64 // entries Record lost in the current run of failures
}

// NewPublisher publishes on stream; Record logs to log.
func NewPublisher(stream events.Stream, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{stream: stream, log: log, now: time.Now}
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
// succeed whether or not its audit entry is published. A failure is counted
// (Failures); the first of a run of failures is logged, and the end of the
// run with how many entries were lost.
func (p *Publisher) Record(ctx context.Context, e Entry) {
	if p == nil {
		return
	}
	err := p.Publish(ctx, e)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil:
		p.failures.Add(1)
		p.lost++
		if !p.failing {
			p.failing = true
			p.log.Error("audit entries are not being published; counting the lost ones", "kind", e.Kind, "err", err)
		}
	case p.failing:
		p.log.Info("audit entries are published again", "lost", p.lost)
		p.failing, p.lost = false, 0
	}
}

// Failures is how many entries Record could not publish since the start.
func (p *Publisher) Failures() uint64 {
	if p == nil {
		return 0
	}
	return p.failures.Load()
}
