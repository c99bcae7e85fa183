package audit

import (
	"encoding/json"
	"fmt"

	"go-micro.dev/v4/events"

	"github.com/portal-go/portal/internal/kv"
)

// DurableStream is a MemoryStream whose events are kept in a kv.Store (the
// embedded mode's file store) from Publish until a consumer acknowledges
// them (Ack takes an event out of the store; an unacknowledged one stays): Publish returns once the event is committed, so an entry published
// before a kill -9 is stored by the next start's consumer (NewDurableStream
// queues what the store holds again). An event may then come twice; the
// log stores an entry once per ID.
type DurableStream struct {
	*MemoryStream
	kv kv.Store
}

// Keys of the queue in the store.
const (
	queueIndex = "q"
	queueKey   = "q/"
)

// NewDurableStream keeps its queue in k, and queues again the events k
// holds from an earlier run, oldest first.
func NewDurableStream(k kv.Store, size int) (*DurableStream, error) {
	s := &DurableStream{MemoryStream: NewMemoryStream(size), kv: k}
	// Acknowledging takes the event out of the store.
	s.onAck = func(ev events.Event) error {
		m := queueMember(ev)
		_, err := k.Apply(kv.DeleteOp(queueKey+m), kv.RemoveOp(queueIndex, m))
		return err
	}
	after := ""
	for {
		members, err := k.Members(queueIndex, kv.Range{After: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("%w: queue: %w", ErrStore, err)
		}
		if len(members) == 0 {
			return s, nil
		}
		keys := make([]string, len(members))
		for i, m := range members {
			keys[i] = queueKey + m
		}
		vals, err := k.Get(keys...)
		if err != nil {
			return nil, fmt.Errorf("%w: queue: %w", ErrStore, err)
		}
		for _, v := range vals {
			var ev events.Event
			if v == nil || json.Unmarshal(v, &ev) != nil {
				continue
			}
			if err := s.MemoryStream.publishEvent(ev); err != nil {
				return nil, err
			}
		}
		after = members[len(members)-1]
	}
}

// queueMember is ev's place in the queue: by time, then ID.
func queueMember(ev events.Event) string {
	return fmt.Sprintf("%019d.%s", ev.Timestamp.UnixNano(), ev.ID)
}

// Publish commits the event to the store, then queues it.
func (s *DurableStream) Publish(topic string, msg interface{}, opts ...events.PublishOption) error {
	ev, err := newEvent(topic, msg, opts)
	if err != nil {
		return err
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	m := queueMember(*ev)
	if _, err := s.kv.Apply(kv.PutOp(queueKey+m, data, 0), kv.AddOp(queueIndex, m)); err != nil {
		return fmt.Errorf("%w: queue: %w", ErrStore, err)
	}
	return s.MemoryStream.publishEvent(*ev)
}
