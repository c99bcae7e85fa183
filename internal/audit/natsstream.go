package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/events"

	"github.com/portal-go/portal/internal/natsx"
)

// Defaults of NATSOptions.
const (
	DefaultMaxAge   = 7 * 24 * time.Hour
	DefaultMaxBytes = 1 << 30
	DefaultAckWait  = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// nakDelay is how long the server waits before it redelivers a nacked event:
// a consumer whose store is down does not spin.
const nakDelay = time.Second

// NATSOptions configure a NATSStream.
type NATSOptions struct {
	// Name is the connection's name, as the server reports it.
	Name string
	// MaxAge is how long the server keeps an event, acknowledged or not
	// (default DefaultMaxAge): the longest a consumer group may be away
	// without losing events. It bounds the JetStream stream's size.
	MaxAge time.Duration
	// MaxBytes bounds the stream's storage (default DefaultMaxBytes, 1 GiB):
	// past it the server drops the oldest events, consumed or not.
	MaxBytes int64
	// AckWait is how long the server waits for an acknowledgement before it
	// redelivers an event, when Consume is not told (default DefaultAckWait).
	AckWait time.Duration
	// Timeout bounds connecting and each publish (default DefaultTimeout).
	Timeout time.Duration
	// Log receives connection changes and undeliverable messages.
	Log *slog.Logger
	// Connect are more nats.go options: TLS, creds (natsx.Settings.Connect).
	Connect []nats.Option
}

// NATSStream is an events.Stream on NATS JetStream. Each topic is a stream
// (named after the topic: '.' and other characters NATS refuses in stream
// names become '_') with the topic as its subject, file storage, MaxAge and
// MaxBytes.
// Publish waits for the server to have stored the event. Consume with a
// group makes that group a durable consumer that starts at the stream's
// first event: what was published before the group first consumed, or while
// it was away, is delivered when it consumes. Without a group, the consumer
// is ephemeral. Close stops the consumers: events they had not handed over
// go back to the server at once, and those handed over but not acknowledged
// after AckWait.
//
// The go-micro plugin github.com/go-micro/plugins/v4/events/natsjs (v1.2.2)
// is not used: its Publish is asynchronous by default and drops errors (an
// event published before any consumer made the stream is lost, reported as
// success); it makes the stream only in Consume; a new durable group starts
// at new events only; the stream keeps events forever; and it cannot stop a
// consumer, whose subscription keeps taking its group's events until the
// process ends.
type NATSStream struct {
	o    NATSOptions
	nc   *nats.Conn
	js   jetstream.JetStream
	done chan struct{}

	mu      sync.Mutex
	streams map[string]bool // topics whose stream is known to exist
	subs    []*natsSub
	closed  bool
}

// natsSub is one Consume: its pull consumer's context and channel.
type natsSub struct {
	cc jetstream.ConsumeContext
	ch chan events.Event
}

// NewNATSStream connects to the NATS servers at url (comma-separated). A
// server that does not answer yet is retried in the background, forever, as
// is a lost connection: meanwhile Publish and Consume fail at once.
func NewNATSStream(url string, o NATSOptions) (*NATSStream, error) {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	log := o.Log.With("events", "nats", "url", natsx.Redact(url))
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.Timeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// Nothing buffered while disconnected: a publish then fails at
		// once, truthfully, rather than after Timeout, with the event sent
		// later anyway.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("events: disconnected from NATS; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("events: reconnected to NATS") }),
	}, o.Connect...)...)
	if err != nil {
		return nil, fmt.Errorf("events: nats %s: %w", natsx.Redact(url), err)
	}
	if !nc.IsConnected() {
		log.Warn("events: NATS not reachable yet; retrying in the background")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: jetstream: %w", err)
	}
	o.Log = log
	return &NATSStream{o: o, nc: nc, js: js, done: make(chan struct{}), streams: map[string]bool{}}, nil
}

// streamName is the JetStream stream that holds topic.
func streamName(topic string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`.*>/\`, r) {
			return '_'
		}
		return r
	}, topic)
}

// errSubjectsOverlap is the server's answer to a create that lost a race
// with another process's create of the same stream (nats.go names no
// constant for it).
const errSubjectsOverlap jetstream.ErrorCode = 10065

// ensure makes (or updates) topic's stream once per process.
func (s *NATSStream) ensure(ctx context.Context, topic string) (string, error) {
	name := streamName(topic)
	s.mu.Lock()
	known := s.streams[topic]
	s.mu.Unlock()
	if known {
		return name, nil
	}
	cfg := jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{topic},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxAge:    s.o.MaxAge,
		MaxBytes:  s.o.MaxBytes,
		Discard:   jetstream.DiscardOld,
	}
	_, err := s.js.CreateOrUpdateStream(ctx, cfg)
	if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == errSubjectsOverlap {
		// Another process made the stream between this one's look and
		// its create (two services starting on a fresh server): the
		// server refuses the second create as overlapping. The stream is
		// there now; update it to this configuration.
		_, err = s.js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return "", fmt.Errorf("events: stream %s: %w", name, err)
	}
	s.mu.Lock()
	s.streams[topic] = true
	s.mu.Unlock()
	return name, nil
}

// Publish stores msg (JSON-encoded unless it is a []byte) in topic's stream
// and returns once the server has it, or fails after Timeout.
func (s *NATSStream) Publish(topic string, msg interface{}, opts ...events.PublishOption) error {
	ev, err := newEvent(topic, msg, opts)
	if err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return events.ErrEncodingMessage
	}
	if s.isClosed() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		name, err := s.ensure(ctx, topic)
		if err != nil {
			return err
		}
		_, err = s.js.Publish(ctx, topic, data, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(name))
		if errors.Is(err, jetstream.ErrNoStreamResponse) && attempt == 0 {
			// The stream went away (deleted, or a new server): make it again.
			s.mu.Lock()
			delete(s.streams, topic)
			s.mu.Unlock()
			continue
		}
		if err != nil {
			return fmt.Errorf("events: publish %s: %w", topic, err)
		}
		return nil
	}
}

// Consume delivers topic's events. With events.WithGroup the group is a
// durable consumer, shared by every Consume of that group on any process,
// starting at the stream's first event (or events.WithOffset's time). With
// events.WithAutoAck(false, wait) each event must be acknowledged: Ack
// removes it from the group; Nack, or no answer within wait (0: the
// stream's AckWait), has it delivered again (to any consumer of the group), up to
// events.WithRetryLimit retries (default: no limit). The channel is closed
// by Close.
func (s *NATSStream) Consume(topic string, opts ...events.ConsumeOption) (<-chan events.Event, error) {
	if topic == "" {
		return nil, events.ErrMissingTopic
	}
	o := events.ConsumeOptions{AutoAck: true}
	for _, opt := range opts {
		opt(&o)
	}
	if s.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	name, err := s.ensure(ctx, topic)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Group,
		FilterSubject: topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.o.AckWait,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if o.Group == "" {
		cfg.Name, cfg.InactiveThreshold = uuid.NewString(), time.Minute
	}
	if !o.AutoAck && o.AckWait > 0 {
		cfg.AckWait = o.AckWait
	}
	if o.CustomRetries && o.RetryLimit >= 0 {
		cfg.MaxDeliver = o.RetryLimit + 1
	}
	if !o.Offset.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Offset
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, name, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: consumer %q of %s: %w", o.Group, name, err)
	}
	ch := make(chan events.Event)
	var failing atomic.Bool // log the first error of a run of them
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		failing.Store(false)
		s.handle(msg, ch, o.AutoAck)
	},
		jetstream.PullMaxMessages(64),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !failing.Swap(true) {
				s.o.Log.Warn("events: consuming", "topic", topic, "group", o.Group, "err", err)
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("events: consume %s: %w", topic, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cc.Stop()
		return nil, ErrClosed
	}
	s.subs = append(s.subs, &natsSub{cc: cc, ch: ch})
	return ch, nil
}

// handle hands msg to the consumer, or back to the server when the stream
// closes first.
func (s *NATSStream) handle(msg jetstream.Msg, ch chan<- events.Event, autoAck bool) {
	var ev events.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		// Not an event: delivering it again would not help.
		s.o.Log.Warn("events: dropped a message that is not an event", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	ev.SetAckFunc(msg.Ack)
	ev.SetNackFunc(func() error { return msg.NakWithDelay(nakDelay) })
	select {
	case ch <- ev:
		if autoAck {
			_ = msg.Ack()
		}
	case <-s.done:
		_ = msg.Nak()
	}
}

func (s *NATSStream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every consumer (events not yet handed over go back to the
// server), closes their channels and the connection.
func (s *NATSStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	subs := s.subs
	s.mu.Unlock()

	for _, sub := range subs {
		sub.cc.Drain() // the buffered messages reach handle, which naks them
		select {
		case <-sub.cc.Closed():
			close(sub.ch) // no callback runs any more
		case <-time.After(s.o.Timeout):
			s.o.Log.Warn("events: a consumer did not stop in time; its channel stays open")
		}
	}
	_ = s.nc.FlushTimeout(s.o.Timeout) // the naks
	s.nc.Close()
	return nil
}
