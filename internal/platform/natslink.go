package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	natsbroker "github.com/go-micro/plugins/v4/broker/nats"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/broker"
)

// DefaultNATSReconnectWait is the longest a NATS connection waits between
// two reconnect attempts (NATSLink): the first attempts come sooner.
const DefaultNATSReconnectWait = 2 * time.Second

// natsFlushTimeout bounds the round trip that confirms, after a
// (re)connection, that the server has the connection's subscriptions.
const natsFlushTimeout = 5 * time.Second

// NATSLink is the state of a NATS broker's connection: whether messages
// published to its subscriptions now reach them, and since when. go-micro's
// NATS broker connects with nats.go's defaults (60 reconnects 2 s apart,
// then closed for good, and a silent link noticed only after minutes of
// missed pings); UseNATSLink replaces them with reconnects for as long as the
// process lives, with backoff, and reports every change here.
//
// A subscriber that keeps state derived from what it has not heard (the
// gateway's cached session verdicts, which a session.revoked event ends)
// must not trust that state while Live is false, nor state older than Since:
// whatever was published while it was away is lost to it.
type NATSLink struct {
	log *slog.Logger

	mu    sync.Mutex
	conn  *nats.Conn
	live  bool
	since time.Time // when live last became true
}

// UseNATSLink configures b, when it is go-micro's NATS broker, to reconnect
// for as long as the process lives (first at once, then waiting twice as long
// each time up to maxWait; 0: DefaultNATSReconnectWait), to connect in the
// background when NATS is not there at start, and to notice a silent link
// within a few seconds; it returns the link that reports the connection's
// state. It returns nil for any other broker (memory: always delivers). Call
// it before the broker connects (before Start).
//
// auth are nats.go options of the connection's credentials (a creds or
// NKey file: natsx.Settings.Auth); TLS and addresses are the broker's own
// options, which go-micro's NATS broker sets on the connection itself.
func UseNATSLink(b broker.Broker, maxWait time.Duration, log *slog.Logger, auth ...nats.Option) (*NATSLink, error) {
	if b == nil || b.String() != "nats" {
		return nil, nil
	}
	if maxWait <= 0 {
		maxWait = DefaultNATSReconnectWait
	}
	l := &NATSLink{log: log.With("broker", "nats")}
	o := nats.GetDefaultOptions()
	o.Servers = b.Options().Addrs
	o.MaxReconnect = -1
	o.RetryOnFailedConnect = true
	o.CustomReconnectDelayCB = func(attempts int) time.Duration { return reconnectDelay(attempts, maxWait) }
	o.PingInterval, o.MaxPingsOut = 2*time.Second, 2
	o.DisconnectedErrCB = l.disconnected
	o.ConnectedCB = l.connected
	o.ReconnectedCB = l.connected
	o.ClosedCB = l.closed
	for _, f := range auth {
		if err := f(&o); err != nil {
			return nil, fmt.Errorf("nats broker: %w", err)
		}
	}
	if err := b.Init(natsbroker.Options(o)); err != nil {
		return nil, fmt.Errorf("nats broker: %w", err)
	}
	return l, nil
}

// reconnectDelay is the wait before reconnect attempt n (from 1): 10 ms,
// doubled each attempt, at most maxWait.
func reconnectDelay(n int, maxWait time.Duration) time.Duration {
	d := 10 * time.Millisecond
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}

// Live reports whether the connection is up and its subscriptions confirmed,
// and since when (the zero time when it never was). A nil link is always
// live, since the zero time.
func (l *NATSLink) Live() (since time.Time, live bool) {
	if l == nil {
		return time.Time{}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since, l.live
}

// Confirm makes sure the server has every subscription made so far (one
// round trip) and, once it has, moves Since to now: call it after
// subscribing, so that state kept from before the subscriptions existed is
// not trusted. A nil link does nothing.
func (l *NATSLink) Confirm() {
	if l == nil {
		return
	}
	l.mu.Lock()
	nc := l.conn
	l.mu.Unlock()
	if nc != nil {
		l.confirm(nc)
	}
}

// connected (nats.go's ConnectedCB and ReconnectedCB: the subscriptions were
// sent again) marks the link live once the server has confirmed them.
func (l *NATSLink) connected(nc *nats.Conn) {
	l.mu.Lock()
	l.conn = nc
	l.mu.Unlock()
	// Not on nats.go's callback goroutine: a disconnection during the
	// round trip must still be reported.
	go l.confirm(nc)
}

// confirm flushes nc and, when the server answered and nc is still
// connected, marks the link live since now.
func (l *NATSLink) confirm(nc *nats.Conn) {
	if err := nc.FlushTimeout(natsFlushTimeout); err != nil {
		l.log.Warn("nats: subscriptions not confirmed", "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !nc.IsConnected() || l.conn != nc {
		return
	}
	if !l.live {
		l.log.Info("nats: connected; subscriptions confirmed", "server", nc.ConnectedUrlRedacted())
	}
	l.live, l.since = true, time.Now()
}

// disconnected (nats.go's DisconnectedErrCB) marks the link down.
func (l *NATSLink) disconnected(_ *nats.Conn, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live {
		l.log.Warn("nats: disconnected; reconnecting", "err", err)
	}
	l.live = false
}

// closed (nats.go's ClosedCB: the broker disconnected, at stop) marks the
// link down.
func (l *NATSLink) closed(*nats.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live = false
}

// Flush returns once the NATS server has every message this process
// published so far (one round trip), or an error when it cannot say so
// before ctx ends: core NATS's only acknowledgement. A nil link (memory
// broker: delivered on publish) returns nil.
func (l *NATSLink) Flush(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	nc := l.conn
	l.mu.Unlock()
	if nc == nil || !nc.IsConnected() {
		return errors.New("nats: not connected")
	}
	return nc.FlushWithContext(ctx)
}
