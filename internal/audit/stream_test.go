package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/events"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// recv takes one event from ch, failing after a while.
func recv(t *testing.T, ch <-chan events.Event) events.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event within 5s")
	}
	return events.Event{}
}

func TestMemoryStream(t *testing.T) {
	s := audit.NewMemoryStream(3)
	// Published before anyone consumes: kept for the first group.
	for i := range 2 {
		if err := s.Publish("t", i); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Consume("t", events.WithGroup("a"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ev := recv(t, a); string(ev.Payload) != fmt.Sprint(i) || ev.Topic != "t" || ev.ID == "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	// A second consumer of group a shares its queue; group b gets its own
	// copy of every event from now on.
	a2, _ := s.Consume("t", events.WithGroup("a"))
	b, _ := s.Consume("t", events.WithGroup("b"))
	if a2 != a {
		t.Fatalf("two consumers of one group got different channels")
	}
	if err := s.Publish("t", []byte("raw")); err != nil {
		t.Fatal(err)
	}
	ea, eb := recv(t, a), recv(t, b)
	if string(ea.Payload) != "raw" || ea.ID != eb.ID {
		t.Fatalf("a got %+v, b got %+v", ea, eb)
	}
	// Nack: the event comes again; Ack: it does not.
	if err := ea.Nack(); err != nil {
		t.Fatal(err)
	}
	if again := recv(t, a); again.ID != ea.ID {
		t.Fatalf("after Nack got %s, want %s again", again.ID, ea.ID)
	} else if err := again.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := eb.Ack(); err != nil {
		t.Fatal(err)
	}
	// A full queue refuses (group b is not read below).
	for i := range 3 {
		if err := s.Publish("t", i); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := s.Publish("t", 3); !errors.Is(err, audit.ErrFull) {
		t.Fatalf("publish to full queues: %v, want ErrFull", err)
	}
	// Close: what is queued is still delivered, then the channel closes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range b {
		n++
	}
	if n != 3 {
		t.Fatalf("after Close, b gave %d queued events, want 3", n)
	}
	if err := s.Publish("t", 1); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := s.Consume("t"); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Consume after Close: %v", err)
	}
}

// publishN publishes n entries through p, IDs prefix0..prefix<n-1>, and
// returns the IDs.
func publishN(t *testing.T, p *audit.Publisher, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%03d", prefix, i)
		if err := p.Publish(context.Background(), audit.Entry{ID: id, Kind: audit.KindLogin, ActorName: "kim"}); err != nil {
			t.Fatalf("Publish(%s): %v", id, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// stored lists every ID in the log, sorted.
func stored(t *testing.T, l *audit.Log) []string {
	t.Helper()
	ids, _ := listAll(t, l, audit.Query{Limit: audit.MaxLimit})
	slices.Sort(ids)
	return ids
}

// waitStored polls the log until it holds exactly want (sorted), failing
// on a duplicate or after d.
func waitStored(t *testing.T, l *audit.Log, d time.Duration, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(d)
	for {
		got := stored(t, l)
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("an entry is stored twice: %q", got)
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d entries stored, want %d (missing e.g. %q)", d, len(got), len(want), missing(got, want))
		}
		time.Sleep(20 * time.Millisecond) // polling the log
	}
}

func missing(got, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) && len(out) < 5 {
			out = append(out, w)
		}
	}
	return out
}

// runConsumer runs a consumer of s into l until the returned stop is
// called (or the test ends); stop waits for Run to return.
func runConsumer(t *testing.T, s events.Stream, l *audit.Log, log *slog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { audit.NewConsumer(s, l, log).Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func memLog(t *testing.T) (*audit.Log, store.Store) {
	t.Helper()
	st := store.NewMemoryStore()
	t.Cleanup(func() { _ = st.Close() })
	return audit.NewLog(st, audit.LogOptions{}), st
}

// TestConsumerMemory: the embedded mode's path, published before and while
// the consumer runs; a consumer that stops stores what was queued first.
func TestConsumerMemory(t *testing.T) {
	s := audit.NewMemoryStream(0)
	t.Cleanup(func() { _ = s.Close() })
	p := audit.NewPublisher(s, nil)
	l, _ := memLog(t)
	before := publishN(t, p, "b", 20)
	stop := runConsumer(t, s, l, nil)
	during := publishN(t, p, "d", 20)
	waitStored(t, l, 10*time.Second, append(before, during...))
	stop()

	// Queued while no consumer runs; a consumer whose context has already
	// ended still stores them all before it returns.
	after := publishN(t, p, "a", 50)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	audit.NewConsumer(s, l, nil).Run(ctx)
	if got := stored(t, l); len(got) != 90 || !slices.Contains(got, after[49]) {
		t.Fatalf("%d stored after the draining Run, want 90", len(got))
	}
}

// TestConsumerDropsBadEvents: events that are not valid entries are
// acknowledged and logged, and do not hold up the ones behind them.
func TestConsumerDropsBadEvents(t *testing.T) {
	s := audit.NewMemoryStream(0)
	t.Cleanup(func() { _ = s.Close() })
	l, _ := memLog(t)
	var logs testenv.SyncBuffer
	runConsumer(t, s, l, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, msg := range []any{[]byte("not json"), audit.Entry{ID: "x", Kind: "nope", Time: time.Now()}, audit.Entry{ID: "x2", Kind: audit.KindLogin}} {
		if err := s.Publish(audit.Topic, msg); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, audit.NewPublisher(s, nil), "ok", 1)
	waitStored(t, l, 10*time.Second, []string{"ok000"})
	if n := strings.Count(logs.String(), "level=WARN msg=\"audit: dropped"); n != 3 {
		t.Fatalf("%d drop warnings, want 3:\n%s", n, logs.String())
	}
}

// failingStore fails Write while failing is set, counting the failures.
type failingStore struct {
	store.Store
	failing  atomic.Bool
	failures atomic.Int64
}

func (f *failingStore) Write(r *store.Record, opts ...store.WriteOption) error {
	if f.failing.Load() {
		f.failures.Add(1)
		return errors.New("disk on fire")
	}
	return f.Store.Write(r, opts...)
}

// TestConsumerStoreDown: while the store fails, entries stay on the stream
// (nothing acknowledged); once it answers, all are stored, once. The
// failure is logged once, and the recovery.
func TestConsumerStoreDown(t *testing.T) {
	s := audit.NewMemoryStream(0)
	t.Cleanup(func() { _ = s.Close() })
	fs := &failingStore{Store: store.NewMemoryStore()}
	fs.failing.Store(true)
	l := audit.NewLog(fs, audit.LogOptions{})
	var logs testenv.SyncBuffer
	runConsumer(t, s, l, slog.New(slog.NewTextHandler(&logs, nil)))
	ids := publishN(t, audit.NewPublisher(s, nil), "s", 5)
	poll.Wait(t, 10*time.Second, "two failed writes", func() bool { return fs.failures.Load() >= 2 })
	fs.failing.Store(false)
	waitStored(t, l, 15*time.Second, ids)
	if n := strings.Count(logs.String(), "cannot store entries"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "storing entries again"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs.String())
	}
}

// errStream is a stream whose Publish fails while err is set.
type errStream struct {
	events.Stream
	mu  sync.Mutex
	err error
}

func (s *errStream) Publish(topic string, msg interface{}, opts ...events.PublishOption) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Stream.Publish(topic, msg, opts...)
}

// TestPublisherRecord: Publish fills ID and Time; Record never fails the
// caller: entries the stream refuses are kept and published, in order and
// once, when it takes them again; a run of refusals is logged once.
func TestPublisherRecord(t *testing.T) {
	mem := audit.NewMemoryStream(0)
	t.Cleanup(func() { _ = mem.Close() })
	ch, _ := mem.Consume(audit.Topic, events.WithGroup(audit.Group))
	es := &errStream{Stream: mem, err: errors.New("nats down")}
	var logs testenv.SyncBuffer
	p := audit.NewPublisher(es, slog.New(slog.NewTextHandler(&logs, nil)))

	for _, name := range []string{"a", "b", "c"} {
		p.Record(context.Background(), audit.Entry{Kind: audit.KindLogin, ActorName: name})
	}
	if p.Pending() != 3 || p.Failures() != 0 {
		t.Fatalf("Pending = %d, Failures = %d, want 3, 0", p.Pending(), p.Failures())
	}
	es.mu.Lock()
	es.err = nil
	es.mu.Unlock()
	before := time.Now()
	p.Record(context.Background(), audit.Entry{Kind: audit.KindLogout, ActorName: "lee"})
	for _, want := range []string{"a", "b", "c", "lee"} {
		var e audit.Entry
		if ev := recv(t, ch); ev.Unmarshal(&e) != nil {
			t.Fatalf("payload %q is not an entry", ev.Payload)
		}
		if e.ID == "" || e.Time.After(time.Now()) || e.ActorName != want {
			t.Fatalf("published %+v, want %s's", e, want)
		}
		if want == "lee" && (e.Kind != audit.KindLogout || e.Time.Before(before.Add(-time.Second))) {
			t.Fatalf("published %+v", e)
		}
	}
	poll.Wait(t, 10*time.Second, "the retry to end", func() bool {
		return p.Pending() == 0 && strings.Contains(logs.String(), "published again")
	})
	out := logs.String()
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "published_late=4") || p.Failures() != 0 {
		t.Fatalf("Failures %d, log:\n%s", p.Failures(), out)
	}
	if err := p.Publish(context.Background(), audit.Entry{Kind: "nope"}); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("Publish(bad kind) = %v", err)
	}
	var nilP *audit.Publisher
	nilP.Record(context.Background(), audit.Entry{Kind: audit.KindLogin}) // no-op
}
