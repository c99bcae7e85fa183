package audit_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/events"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/audit"
	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// The distributed mode's path: a real nats-server with JetStream (from
// testenv), publishers and consumers on connections of their own, as the
// user and system processes have.

// testAckWait keeps redeliveries of unacknowledged entries quick.
const testAckWait = 2 * time.Second

func natsStream(t *testing.T, n *testenv.NATS, name string) *audit.NATSStream {
	t.Helper()
	s, err := audit.NewNATSStream(n.URL, audit.NATSOptions{Name: name, AckWait: testAckWait, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewNATSStream: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestNATSBacklog: entries published while no consumer has ever run (the
// stream does not exist yet) are all stored, once, when one starts; and
// after a restart of the NATS server too.
func TestNATSBacklog(t *testing.T) {
	n := testenv.StartNATS(t)
	pub := audit.NewPublisher(natsStream(t, n, "user"), nil)
	ids := publishN(t, pub, "p", 100)

	// NATS restarts: what it stored is still there.
	n.Stop(t)
	n.Start(t)
	poll.Wait(t, 10*time.Second, "publishing again after the restart", func() bool {
		return pub.Publish(context.Background(), audit.Entry{ID: "r000", Kind: audit.KindLogin}) == nil
	})
	ids = append(ids, "r000")

	l, _ := memLog(t)
	runConsumer(t, natsStream(t, n, "system"), l, nil)
	waitStored(t, l, 20*time.Second, ids)

	// The stream is bounded, on disk, and acknowledged entries leave the
	// group's backlog.
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), audit.Topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != audit.DefaultMaxAge || cfg.MaxBytes != audit.DefaultMaxBytes || cfg.Storage != jetstream.FileStorage || !slices.Equal(cfg.Subjects, []string{audit.Topic}) {
		t.Errorf("stream config %+v", cfg)
	}
	poll.Wait(t, 10*time.Second, "every entry acknowledged", func() bool {
		ci, err := st.Consumer(context.Background(), audit.Group)
		if err != nil {
			return false
		}
		info, err := ci.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Config.Durable == audit.Group
	})
}

// gateStore blocks the Write after the first open entries are stored,
// until released, so that a test can stop a consumer in the middle of one.
type gateStore struct {
	store.Store
	open    int64
	markers atomic.Int64
	hit     chan struct{} // closed when a Write blocks
	release chan struct{}
	once    sync.Once
}

func (g *gateStore) Write(r *store.Record, opts ...store.WriteOption) error {
	if g.markers.Load() >= g.open {
		g.once.Do(func() { close(g.hit) })
		<-g.release
	}
	if err := g.Store.Write(r, opts...); err != nil {
		return err
	}
	if strings.HasPrefix(r.Key, "a/i/") { // the entry's marker
		g.markers.Add(1)
	}
	return nil
}

// TestNATSConsumerRestart: the system service stops in the middle of an
// entry (stored, never acknowledged) while more are published; a new one
// stores everything, nothing twice.
func TestNATSConsumerRestart(t *testing.T) {
	n := testenv.StartNATS(t)
	pub := audit.NewPublisher(natsStream(t, n, "user"), nil)
	ids := publishN(t, pub, "a", 60)

	mem := store.NewMemoryStore()
	t.Cleanup(func() { _ = mem.Close() })
	gate := &gateStore{Store: mem, open: 25, hit: make(chan struct{}), release: make(chan struct{})}
	l := audit.NewLog(gate, audit.LogOptions{})
	s1 := natsStream(t, n, "system-1")
	stop1 := runConsumer(t, s1, l, nil)
	select {
	case <-gate.hit:
	case <-time.After(20 * time.Second):
		t.Fatalf("the first consumer stored %d entries in 20s, want 25", gate.markers.Load())
	}
	// The process goes down: its connection closes while entry 26 is being
	// stored; the entries it had fetched go back to the server.
	cancelled := make(chan struct{})
	go func() { _ = s1.Close(); close(cancelled) }()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not return")
	}
	ids = append(ids, publishN(t, pub, "b", 40)...) // while no consumer runs
	close(gate.release)                             // entry 26 is stored; its ack is lost
	stop1()
	if got := len(stored(t, l)); got != 26 {
		t.Fatalf("%d stored by the first consumer, want 26", got)
	}

	runConsumer(t, natsStream(t, n, "system-2"), l, nil)
	waitStored(t, l, 30*time.Second, ids)
}

// TestNATSAckAfterStore: entries whose storing failed are not acknowledged:
// they come again until stored.
func TestNATSAckAfterStore(t *testing.T) {
	n := testenv.StartNATS(t)
	fs := &failingStore{Store: store.NewMemoryStore()}
	fs.failing.Store(true)
	l := audit.NewLog(fs, audit.LogOptions{})
	runConsumer(t, natsStream(t, n, "system"), l, nil)
	ids := publishN(t, audit.NewPublisher(natsStream(t, n, "user"), nil), "f", 5)
	poll.Wait(t, 10*time.Second, "two failed writes", func() bool { return fs.failures.Load() >= 2 })
	fs.failing.Store(false)
	waitStored(t, l, 20*time.Second, ids)
}

// TestNATSStream: events.Stream behaviour beyond the audit log's use:
// groups share events, separate groups each get all, Close stops.
func TestNATSStream(t *testing.T) {
	n := testenv.StartNATS(t)
	s := natsStream(t, n, "s")
	a1, err := s.Consume("t.x", events.WithGroup("a"), events.WithAutoAck(false, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Consume("t.x", events.WithGroup("b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish("t.x", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	ea, eb := recv(t, a1), recv(t, b)
	if ea.ID != eb.ID || string(ea.Payload) != `{"n":1}` || ea.Topic != "t.x" {
		t.Fatalf("a got %+v, b got %+v", ea, eb)
	}
	// Nack: it comes again.
	if err := ea.Nack(); err != nil {
		t.Fatal(err)
	}
	if again := recv(t, a1); again.ID != ea.ID {
		t.Fatalf("after Nack: %s, want %s", again.ID, ea.ID)
	} else if err := again.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan events.Event{a1, b} {
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatalf("an event after Close")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("channel not closed by Close")
		}
	}
	if err := s.Publish("t.x", 1); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// TestNATSDown: with the server gone, Publish fails at once (a login is not
// held up; the caller counts the loss) and the entry is not sent later; a
// consumer waits for the server to come back. "At once" is once the client
// has seen the connection drop: before that (a moment, longer on a loaded
// machine) a publish is written to the dead socket and waits for its
// acknowledgement until the stream's Timeout, as any request would.
func TestNATSDown(t *testing.T) {
	n := testenv.StartNATS(t)
	s := natsStream(t, n, "user")
	pub := audit.NewPublisher(s, nil)
	ids := publishN(t, pub, "u", 1) // makes the stream
	n.Stop(t)
	poll.Wait(t, 20*time.Second, "the client to see NATS gone", func() bool { return !audit.Connected(s) })
	began := time.Now()
	if err := pub.Publish(context.Background(), audit.Entry{Kind: audit.KindLogin}); err == nil {
		t.Fatalf("Publish with NATS down succeeded")
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Publish took %v to fail", d)
	}
	l, _ := memLog(t)
	runConsumer(t, natsStream(t, n, "system"), l, nil) // not connected yet
	n.Start(t)
	waitStored(t, l, 20*time.Second, ids)
}

// TestNATSStreamMadeAtOnce: processes that start together on a fresh server
// each make the same stream; the server refuses all but one create as
// overlapping (10065), and those publishes must still succeed (the user and
// system services starting at once lost their first audit entry to this).
// The race is staged, not hoped for: another process's stream is made
// between this one's look and its create, whose answer is the server's
// refusal; the publish must still be stored, in a stream with this process's
// settings.
func TestNATSStreamMadeAtOnce(t *testing.T) {
	n := testenv.StartNATS(t)
	s := natsStream(t, n, "user")
	var staged atomic.Int32
	audit.WrapJetStream(s, func(js jetstream.JetStream) jetstream.JetStream {
		return &loseCreateRace{JetStream: js, staged: &staged}
	})
	if err := s.Publish("race", map[string]int{"n": 1}); err != nil {
		t.Fatalf("Publish after a lost create race: %v", err)
	}
	if staged.Load() != 1 {
		t.Fatalf("the race was staged %d times, want 1", staged.Load())
	}
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(context.Background(), "race")
	if err != nil {
		t.Fatalf("the stream: %v", err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.Config.MaxAge == time.Hour {
		t.Fatalf("stream after the race: %d messages, max age %v; want 1, and this process's age (not the other's hour)", info.State.Msgs, info.Config.MaxAge)
	}
}

// loseCreateRace makes its first CreateOrUpdateStream lose the race that
// two processes starting at once run: another process's create of the
// same stream (with a one-hour age) lands first, and the server
// refuses this one as overlapping.
type loseCreateRace struct {
	jetstream.JetStream
	staged *atomic.Int32
}

func (l *loseCreateRace) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if l.staged.Add(1) > 1 {
		return l.JetStream.CreateOrUpdateStream(ctx, cfg)
	}
	other := cfg
	other.MaxAge = time.Hour
	if _, err := l.JetStream.CreateStream(ctx, other); err != nil {
		return nil, err
	}
	return nil, &jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}
}
