package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	"github.com/portal-go/portal/internal/outbox"
)

// QueueName is the outbox queue in the user service's store where mail
// waits to be sent, with its body: its records are under QueueName + "/".
const QueueName = "mail-queue"

// Given-up messages are kept in the user service's store under keyFailed.
const (
	keyFailed = "outbox/failed/" // outbox/failed/<id> -> entry without its body, given up
	// keyLegacy is where an older Portal kept mail waiting to be sent; Run
	// moves what it finds there into the queue, each message once
	// (keyMoved: a claim, for instances starting together).
	keyLegacy = "outbox/msg/"
	keyMoved  = "mail-moved/"
)

// OutboxOptions tune the outbox; zero values take the defaults.
type OutboxOptions struct {
	// Backoff is the wait before the first retry (default 5 s); each
	// further retry waits twice as long, at most MaxBackoff (default 10
	// min).
	Backoff, MaxBackoff time.Duration
	// MaxAttempts is how many sends are tried before the message is given
	// up (default 10: about an hour and a half with the default backoff).
	MaxAttempts int
	// Poll is how often the store is looked at for messages another
	// instance queued (default 15 s); a message queued here is sent at once.
	Poll time.Duration
	// Timeout is how long an attempt may take (default 1 min): the send is
	// cut there, and no other instance tries the message meanwhile, so
	// that a slow send is not doubled; after a crash mid-send the message
	// is tried again once twice that has passed.
	Timeout time.Duration
	// KeepFailed is how long a given-up message stays listed (default 30 days).
	KeepFailed time.Duration
}

func (o *OutboxOptions) defaults() {
	if o.Backoff <= 0 {
		o.Backoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Poll <= 0 {
		o.Poll = 15 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.KeepFailed <= 0 {
		o.KeepFailed = 30 * 24 * time.Hour
	}
}

// Entry is a queued (or given-up) message and its sending history.
type Entry struct {
	Message  Message   `json:"message"`
	Queued   time.Time `json:"queued"`
	Attempts int       `json:"attempts"`
	// NextAt is when the next attempt is due.
	NextAt time.Time `json:"next_at"`
	// LastError is why the last attempt failed.
	LastError string `json:"last_error,omitempty"`
}

// Outbox queues messages in a store and sends them in the background, so
// that no request waits for a mail server: Enqueue writes the message;
// Run sends it, retrying with exponential backoff, and gives it up after
// MaxAttempts (or at once on a permanent refusal): logged at error level
// and listed by Failed for admins. The queue is the outbox package's, as
// for every message Portal must deliver (outbox.NewQueue).
type Outbox struct {
	st     store.Store
	kv     kv.Store
	queue  *outbox.Outbox
	sender Sender
	log    *slog.Logger
	o      OutboxOptions
}

// NewOutbox keeps its queue in k and the given-up messages in st (the user
// service's store and its kv.Store: atomic for every process sharing it:
// kv.Redis, the file store; kv.NewLocal(st) for one process), sending
// through sender.
func NewOutbox(st store.Store, k kv.Store, sender Sender, log *slog.Logger, o OutboxOptions) *Outbox {
	o.defaults()
	b := &Outbox{st: st, kv: k, sender: sender, log: log, o: o}
	b.queue = outbox.NewQueue(k, QueueName, b.send, outbox.Retry{
		MaxAttempts: o.MaxAttempts, Backoff: o.Backoff, MaxBackoff: o.MaxBackoff, Timeout: o.Timeout,
		Final:  func(err error) bool { return errors.As(err, new(*PermanentError)) },
		GiveUp: b.gaveUp,
	}, log)
	b.queue.Poll = o.Poll
	return b
}

// Enqueue stores m to be sent and wakes the sender. It returns once m is
// stored: it never waits for the mail server.
func (b *Outbox) Enqueue(ctx context.Context, m Message) error {
	if m.ID == "" {
		return errors.New("mail: a message without an id")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("mail: encode: %w", err)
	}
	return b.queue.Put(outbox.Message{ID: m.ID, Topic: string(m.Kind), Body: body, At: time.Now().UTC()})
}

// Run sends queued messages until ctx ends: at once when one is queued
// here, when a retry is due, and every Poll for those queued elsewhere.
func (b *Outbox) Run(ctx context.Context) {
	b.moveLegacy(ctx)
	b.queue.Run(ctx)
}

// send is the queue's sender: one attempt of the message in om.
func (b *Outbox) send(ctx context.Context, om outbox.Message) error {
	var m Message
	if err := json.Unmarshal(om.Body, &m); err != nil {
		return &PermanentError{Err: fmt.Errorf("unreadable message %s: %w", om.ID, err)}
	}
	if err := b.sender.Send(ctx, m); err != nil {
		return err
	}
	b.log.Info("mail sent", "id", m.ID, "kind", m.Kind, "to", m.To, "attempts", om.Attempts+1)
	return nil
}

// gaveUp keeps what admins need of a message given up (the queue logged
// it): not its body, which holds its link.
func (b *Outbox) gaveUp(om outbox.Message, err error) {
	e := entry(om)
	e.Message.Text, e.Message.HTML = "", ""
	if werr := b.write(keyFailed+om.ID, e, b.o.KeepFailed); werr != nil {
		b.log.Warn("mail outbox: cannot record a failure", "id", om.ID, "err", werr)
	}
}

// entry is the queue's message om as an Entry.
func entry(om outbox.Message) *Entry {
	e := &Entry{Queued: om.At, Attempts: om.Attempts, NextAt: om.Next, LastError: om.Error}
	if e.NextAt.IsZero() {
		e.NextAt = om.At
	}
	_ = json.Unmarshal(om.Body, &e.Message)
	return e
}

// moveLegacy moves the messages an older Portal left under keyLegacy into
// the queue, with their attempts and due times.
func (b *Outbox) moveLegacy(ctx context.Context) {
	entries, err := b.list(ctx, keyLegacy)
	if err != nil {
		b.log.Warn("mail outbox: messages queued by an older Portal not read; they wait for the next start", "err", err)
		return
	}
	b.move(entries)
}

// move moves entries, read under keyLegacy, into the queue: each once,
// though another instance may have read, moved and sent it meanwhile.
func (b *Outbox) move(entries []*Entry) {
	for _, e := range entries {
		id := e.Message.ID
		won, err := b.kv.Apply(kv.PutOp(keyMoved+id, []byte("1"), 24*time.Hour).When(kv.Absent))
		if err == nil && won {
			body, _ := json.Marshal(e.Message)
			err = b.queue.Put(outbox.Message{ID: id, Topic: string(e.Message.Kind), Body: body,
				At: e.Queued, Next: e.NextAt, Attempts: e.Attempts, Error: e.LastError})
			if err != nil {
				_, _ = b.kv.Apply(kv.DeleteOp(keyMoved + id)) // for the next start to try
			}
		}
		if err == nil {
			err = b.st.Delete(keyLegacy + id)
		}
		if err != nil {
			b.log.Warn("mail outbox: a message queued by an older Portal not moved; it waits for the next start", "id", id, "err", err)
		}
	}
}

// pendingLimit bounds Pending.
const pendingLimit = 1000

// Pending returns the messages waiting to be sent, the soonest due first
// (at most pendingLimit).
func (b *Outbox) Pending(ctx context.Context) ([]*Entry, error) {
	msgs, err := b.queue.Messages(pendingLimit)
	if err != nil {
		return nil, fmt.Errorf("mail: list: %w", err)
	}
	out := make([]*Entry, len(msgs))
	for i, m := range msgs {
		out[i] = entry(m)
	}
	return out, nil
}

// Failed returns the messages given up (without their bodies), newest
// first: what admins are shown.
func (b *Outbox) Failed(ctx context.Context) ([]*Entry, error) {
	list, err := b.list(ctx, keyFailed)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Queued.After(list[j].Queued) })
	return list, nil
}

// list reads the entries under prefix, oldest first.
func (b *Outbox) list(ctx context.Context, prefix string) ([]*Entry, error) {
	keys, err := b.st.List(store.ListPrefix(prefix))
	if err != nil {
		return nil, fmt.Errorf("mail: list: %w", err)
	}
	out := make([]*Entry, 0, len(keys))
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		e, err := b.read(k)
		if errors.Is(err, store.ErrNotFound) {
			continue // sent meanwhile
		} else if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Queued.Before(out[j].Queued) })
	return out, nil
}

func (b *Outbox) read(key string) (*Entry, error) {
	recs, err := b.st.Read(key)
	if err == nil && len(recs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var e Entry
	if err := json.Unmarshal(recs[0].Value, &e); err != nil {
		return nil, fmt.Errorf("mail: decode %s: %w", key, err)
	}
	return &e, nil
}

func (b *Outbox) write(key string, e *Entry, ttl time.Duration) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.st.Write(&store.Record{Key: key, Value: data, Expiry: ttl}); err != nil {
		return fmt.Errorf("mail: write: %w", err)
	}
	return nil
}
