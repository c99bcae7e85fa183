package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"go-micro.dev/v4/events"
)

// Consumer timings.
const (
	// retryDelay is the pause after the stream or the store failed, before
	// the consumer tries again.
	retryDelay = time.Second
)

// Consumer stores the entries a stream carries in a Log: the system
// service's side of the audit log.
type Consumer struct {
	stream events.Stream
	log    *Log
	lg     *slog.Logger

	// The consume goroutine's own state, for logging once.
	failing bool // the store failed on the last entry
}

// NewConsumer consumes stream into l, logging to lg.
func NewConsumer(stream events.Stream, l *Log, lg *slog.Logger) *Consumer {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Consumer{stream: stream, log: l, lg: lg}
}

// Run consumes Topic as the durable group Group until ctx ends or the stream
// closes. Each entry is acknowledged once it is stored (or found stored
// already, or refused as invalid or expired); when
// the store fails it is handed back to the stream, to come again. When ctx
// ends, Run stores the entries the stream has ready before it returns (all
// of a MemoryStream's queue). A stream that refuses to consume is tried
// again every second; Run logs the first failure and the recovery.
// Run is a job for platform.Service.Background.
func (c *Consumer) Run(ctx context.Context) {
	failing := false
	for {
		// Manual acknowledgement; how long the stream waits for one before it
		// delivers again is the stream's own (NATSOptions.AckWait).
		ch, err := c.stream.Consume(Topic, events.WithGroup(Group), events.WithAutoAck(false, 0))
		if errors.Is(err, ErrClosed) {
			return
		}
		if err == nil {
			if failing {
				c.lg.Info("audit: consuming again")
			}
			c.consume(ctx, ch)
			return
		}
		if !failing {
			failing = true
			c.lg.Error("audit: cannot consume the audit stream; retrying every second", "err", err)
		}
		if !pause(ctx, retryDelay) {
			return
		}
	}
}

// consume stores what ch brings until ctx ends (then what ch has ready) or
// ch closes.
func (c *Consumer) consume(ctx context.Context, ch <-chan events.Event) {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			c.handle(ctx, ev)
		case <-ctx.Done():
			for {
				select {
				case ev, ok := <-ch:
					if !ok {
						return
					}
					c.handle(context.Background(), ev)
				default:
					return
				}
			}
		}
	}
}

// handle stores one event's entry and acknowledges it, or hands it back.
// An acknowledgement that fails is left alone: the entry comes again and is
// found stored.
func (c *Consumer) handle(ctx context.Context, ev events.Event) {
	var e Entry
	if err := json.Unmarshal(ev.Payload, &e); err != nil {
		c.lg.Warn("audit: dropped an event that is not an entry", "event", ev.ID, "err", err)
		_ = ev.Ack()
		return
	}
	err := c.log.Append(ctx, e)
	switch {
	case err != nil && ctx.Err() != nil:
		_ = ev.Nack() // stopping: it comes again
		return
	case err == nil:
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrExpired):
		c.lg.Warn("audit: dropped an entry", "id", e.ID, "kind", e.Kind, "time", e.Time, "err", err)
	default:
		if !c.failing {
			c.failing = true
			c.lg.Error("audit: cannot store entries; they stay on the stream", "err", err)
		}
		_ = ev.Nack()
		pause(ctx, retryDelay)
		return
	}
	if c.failing {
		c.failing = false
		c.lg.Info("audit: storing entries again")
	}
	_ = ev.Ack()
}

// pause waits d, or until ctx ends (false).
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
