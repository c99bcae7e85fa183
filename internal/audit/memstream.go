package audit

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4/events"
)

// DefaultQueue is a MemoryStream's queue size per consumer group.
const DefaultQueue = 10000

// MemoryStream is an events.Stream within one process, for the embedded mode.
// Each consumer group has a queue of its own; the consumers of a group share
// it, so each event reaches one of them. Events published to a topic before
// any group consumes it wait for the first group that does. Nack puts an
// event back in its group's queue, however often (RetryLimit, Offset and
// AckWait are ignored: an event is never lost to a consumer that does not
// answer, only to a process that ends).
//
// go-micro's own memory stream (events.NewStream) is not used: with manual
// acknowledgement it delivers an event only after AckWait, from goroutines
// that write one map unlocked (a data race the race detector reports), and
// it keeps every event ever published in a memory store.
type MemoryStream struct {
	size int

	mu      sync.Mutex
	groups  map[string]map[string]chan events.Event // topic -> group -> queue
	backlog map[string][]events.Event               // topic -> events no group took yet
	closed  bool

	// onAck, when set, is what acknowledging an event does (DurableStream).
	onAck func(events.Event) error
}

// NewMemoryStream makes a stream whose queues hold size events each
// (DefaultQueue when size <= 0); Publish fails with ErrFull beyond that.
func NewMemoryStream(size int) *MemoryStream {
	if size <= 0 {
		size = DefaultQueue
	}
	return &MemoryStream{
		size:    size,
		groups:  map[string]map[string]chan events.Event{},
		backlog: map[string][]events.Event{},
	}
}

// Publish queues msg (JSON-encoded unless it is a []byte) for every group
// consuming topic. It fails with ErrFull when a group's queue is full (the
// other groups may have it) and ErrClosed after Close.
func (s *MemoryStream) Publish(topic string, msg interface{}, opts ...events.PublishOption) error {
	ev, err := newEvent(topic, msg, opts)
	if err != nil {
		return err
	}
	return s.publishEvent(*ev)
}

// publishEvent queues ev for every group consuming its topic.
func (s *MemoryStream) publishEvent(ev events.Event) error {
	topic := ev.Topic
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	groups := s.groups[topic]
	if len(groups) == 0 {
		if len(s.backlog[topic]) >= s.size {
			return ErrFull
		}
		s.backlog[topic] = append(s.backlog[topic], ev)
		return nil
	}
	var err error
	for _, q := range groups {
		if !s.offer(q, ev) {
			err = ErrFull
		}
	}
	return err
}

// Consume returns the queue of the group (events.WithGroup; without one, a
// group of its own). Consumers of one group get the same channel. Every
// event can be acknowledged (a no-op) or not (Nack: queued again). The
// channel is closed by Close.
func (s *MemoryStream) Consume(topic string, opts ...events.ConsumeOption) (<-chan events.Event, error) {
	if topic == "" {
		return nil, events.ErrMissingTopic
	}
	var o events.ConsumeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.Group == "" {
		o.Group = uuid.NewString()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	groups := s.groups[topic]
	if groups == nil {
		groups = map[string]chan events.Event{}
		s.groups[topic] = groups
	}
	if q, ok := groups[o.Group]; ok {
		return q, nil
	}
	q := make(chan events.Event, s.size)
	groups[o.Group] = q
	for _, ev := range s.backlog[topic] {
		s.offer(q, ev)
	}
	delete(s.backlog, topic)
	return q, nil
}

// offer puts ev in q unless q is full, with the ack and nack functions that
// q's consumers call. s.mu is held.
func (s *MemoryStream) offer(q chan events.Event, ev events.Event) bool {
	ev.SetAckFunc(func() error {
		if s.onAck != nil {
			return s.onAck(ev)
		}
		return nil
	})
	ev.SetNackFunc(func() error { return s.requeue(q, ev) })
	select {
	case q <- ev:
		return true
	default:
		return false
	}
}

// requeue puts a nacked event back in its queue.
func (s *MemoryStream) requeue(q chan events.Event, ev events.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.offer(q, ev) {
		return ErrFull
	}
	return nil
}

// Close closes every consumer's channel, after the events still queued in
// it, and refuses further calls.
func (s *MemoryStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, groups := range s.groups {
		for _, q := range groups {
			close(q)
		}
	}
	return nil
}

// newEvent builds the event Publish sends, as go-micro's streams do: msg
// JSON-encoded unless it is a []byte, a new ID, the time now unless
// events.WithTimestamp says otherwise.
func newEvent(topic string, msg interface{}, opts []events.PublishOption) (*events.Event, error) {
	if topic == "" {
		return nil, events.ErrMissingTopic
	}
	o := events.PublishOptions{Timestamp: time.Now()}
	for _, opt := range opts {
		opt(&o)
	}
	payload, ok := msg.([]byte)
	if !ok {
		var err error
		if payload, err = json.Marshal(msg); err != nil {
			return nil, events.ErrEncodingMessage
		}
	}
	return &events.Event{ID: uuid.NewString(), Topic: topic, Timestamp: o.Timestamp, Metadata: o.Metadata, Payload: payload}, nil
}
