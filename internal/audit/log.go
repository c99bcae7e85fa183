package audit

// The log keeps entries in a kv.Store (over the system service's
// store.Store), under these keys, a position being "<unix nanoseconds, 19
// digits>.<id>", so that positions sort as times do:
//
//	a/e/<position>            the entry, JSON
//	a/i/<id>                  the entry's position: it is stored
//	a/n/<yyyymmddhh>/<kind>   how many entries of the kind the hour had
//
// and these indexes of positions, each written in the same atomic step as
// the entry: "t" (every entry), "k/<kind>", "u/<user>" and
// "uk/<user>/<kind>" (entries whose actor or subject is <user>). A page is
// one read of an index from a cursor, and one read of the page's entries:
// what it costs does not depend on the log's size. No entry is refused for
// being one too many: the log is bounded by age (Retention) and by size
// (MaxEntries; an entry is at most about 3 KB), the oldest going first,
// and every entry it drops is counted (LogOptions.OnDrop).

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
)

// Defaults of LogOptions.
const (
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultMaxEntries = 500_000
)

// Page sizes of List, and the most Page.Total counts.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	MaxTotal     = 10_000
)

// maxSkew is how far in the future an entry's time may be (publishers'
// clocks differ); later ones are invalid.
const maxSkew = time.Hour

// trimEvery is how many appends (or how long) the log goes between checks
// of its bounds: the most it can overshoot MaxEntries by.
const (
	trimEvery     = 1000
	trimEveryTime = time.Minute
	trimBatch     = 500
)

// ErrStore wraps the store's own errors: the store did not answer.
var ErrStore = errors.New("audit: store")

// LogOptions bound the log.
type LogOptions struct {
	// Retention is how long an entry is kept after its time (default
	// DefaultRetention; at least an hour).
	Retention time.Duration
	// MaxEntries is how many entries the log keeps at most (default
	// DefaultMaxEntries); past it, the oldest go first.
	MaxEntries int
	// KV is the atomic store over the log's store.Store (the file store,
	// kv.Redis). Unset: the store itself when it is one, else kv.NewLocal.
	KV kv.Store
	// OnDrop, when set, is told how many entries the bounds dropped (a
	// Prometheus counter): "age" or "size".
	OnDrop func(reason string, n int)
	// Now is the log's clock (default time.Now).
	Now func() time.Time
}

// Log is the audit log in a store.
type Log struct {
	st store.Store
	kv kv.Store
	o  LogOptions

	mu        sync.Mutex // the bounds' bookkeeping
	sinceTrim int
	lastTrim  time.Time
	trimming  sync.Mutex // one trim at a time
}

// Ping checks that the log's store answers.
func (l *Log) Ping() error {
	if _, err := l.st.Read("ping"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}

// NewLog keeps the log in st (its default table) with the bounds o.
func NewLog(st store.Store, o LogOptions) *Log {
	if o.Retention < time.Hour {
		o.Retention = DefaultRetention
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	k := o.KV
	if k == nil {
		if sk, ok := st.(kv.Store); ok {
			k = sk
		} else {
			k = kv.NewLocal(st)
		}
	}
	return &Log{st: st, kv: k, o: o}
}

// Append stores e with its index entries and its hour's count, in one
// atomic step. An entry whose ID is stored already is not stored again
// (nil). It fails with ErrInvalid for an entry without a valid ID, Kind or
// Time (or a time more than an hour ahead), ErrExpired for one older than the
// retention, and ErrStore when the store fails. Every so often it then
// drops what is past the log's bounds.
func (l *Log) Append(ctx context.Context, e Entry) error {
	e, err := normalize(e)
	if err != nil {
		return err
	}
	now := l.o.Now()
	switch {
	case !e.Time.Add(l.o.Retention).After(now):
		return ErrExpired
	case e.Time.After(now.Add(maxSkew)):
		return fmt.Errorf("%w: time %v is in the future", ErrInvalid, e.Time)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	pos := position(e)
	hour := e.Time.Truncate(time.Hour)
	ops := []kv.Op{
		kv.CheckOp(idKey(e.ID), kv.Absent), // a redelivery (or a retry) stores nothing
		kv.PutOp(entryKey(pos), data, 0),
		kv.IncrOp(countKey(hour, e.Kind), hour.Add(l.o.Retention+time.Hour).Sub(now)),
		kv.AddOp(ixTime, pos),
		kv.AddOp(ixKind+string(e.Kind), pos),
	}
	for _, u := range users(e) {
		ops = append(ops, kv.AddOp(ixUser+u, pos), kv.AddOp(ixUserKind+u+"/"+string(e.Kind), pos))
	}
	// The marker last: where the batch is not atomic (kv.Local over a
	// store shared with no one), it is what says the entry is whole.
	ops = append(ops, kv.PutOp(idKey(e.ID), []byte(pos), 0))
	if _, err := l.kv.Apply(ops...); err != nil {
		return fmt.Errorf("%w: append %s: %w", ErrStore, e.ID, err)
	}
	if l.trimDue(now) {
		if _, err := l.Trim(ctx); err != nil {
			return err
		}
	}
	return nil
}

// trimDue reports whether it is time to check the bounds.
func (l *Log) trimDue(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sinceTrim++
	if l.sinceTrim < trimEvery && now.Sub(l.lastTrim) < trimEveryTime {
		return false
	}
	l.sinceTrim, l.lastTrim = 0, now
	return true
}

// Trim drops the entries older than the retention and, oldest first, those
// past MaxEntries, and returns how many it dropped (also told to OnDrop).
func (l *Log) Trim(ctx context.Context) (int, error) {
	l.trimming.Lock()
	defer l.trimming.Unlock()
	cut := l.cutoff()
	dropped := 0
	for {
		if err := ctx.Err(); err != nil {
			return dropped, err
		}
		// Counted up to one batch past the bound: the most one round drops.
		n, err := l.kv.Count(ixTime, "", l.o.MaxEntries+trimBatch)
		if err != nil {
			return dropped, fmt.Errorf("%w: count: %w", ErrStore, err)
		}
		oldest, err := l.kv.Members(ixTime, kv.Range{Limit: trimBatch})
		if err != nil {
			return dropped, fmt.Errorf("%w: list: %w", ErrStore, err)
		}
		var byAge, bySize []string
		for i, pos := range oldest {
			switch {
			case pos < cut:
				byAge = append(byAge, pos)
			case n-i > l.o.MaxEntries:
				bySize = append(bySize, pos)
			}
		}
		for _, d := range []struct {
			reason string
			ps     []string
		}{{"age", byAge}, {"size", bySize}} {
			if err := l.drop(d.ps); err != nil {
				return dropped, err
			}
			if len(d.ps) > 0 && l.o.OnDrop != nil {
				l.o.OnDrop(d.reason, len(d.ps))
			}
			dropped += len(d.ps)
		}
		if len(byAge)+len(bySize) < trimBatch {
			return dropped, nil
		}
	}
}

// drop deletes the entries at positions, with their index entries.
func (l *Log) drop(positions []string) error {
	if len(positions) == 0 {
		return nil
	}
	keys := make([]string, len(positions))
	for i, p := range positions {
		keys[i] = entryKey(p)
	}
	vals, err := l.kv.Get(keys...)
	if err != nil {
		return fmt.Errorf("%w: read: %w", ErrStore, err)
	}
	var ops []kv.Op
	for i, pos := range positions {
		ops = append(ops, kv.DeleteOp(keys[i]), kv.RemoveOp(ixTime, pos))
		var e Entry
		if vals[i] == nil || json.Unmarshal(vals[i], &e) != nil {
			continue // its other index entries stay, skipped when listed
		}
		ops = append(ops, kv.DeleteOp(idKey(e.ID)), kv.RemoveOp(ixKind+string(e.Kind), pos))
		for _, u := range users(e) {
			ops = append(ops, kv.RemoveOp(ixUser+u, pos), kv.RemoveOp(ixUserKind+u+"/"+string(e.Kind), pos))
		}
	}
	if _, err := l.kv.Apply(ops...); err != nil {
		return fmt.Errorf("%w: drop: %w", ErrStore, err)
	}
	return nil
}

// cutoff is the position before which entries are past the retention.
func (l *Log) cutoff() string {
	return fmt.Sprintf("%019d", l.o.Now().Add(-l.o.Retention).UnixNano())
}

// Query selects entries for List.
type Query struct {
	// User, when set, is the ID or name (any case) of the actor or the
	// subject; the whole ID or name, not a part.
	User string
	// Kind, when set, is the only kind listed.
	Kind Kind
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
	// Cursor is the Next of the previous page; empty for the newest entries.
	Cursor string
	// From and To, when set, keep entries from From up to (not including)
	// To.
	From, To time.Time
	// Total asks for Page.Total.
	Total bool
}

// Page is one page of entries, newest first.
type Page struct {
	Entries []Entry
	// Next is the Query.Cursor of the next (older) page; empty when there is
	// none.
	Next string
	// Total is how many entries match User and Kind (whatever Cursor), at
	// most MaxTotal, when Query.Total asked for it.
	Total int
}

// List returns entries matching q, newest first. It fails with ErrInvalid
// for an unknown kind and ErrBadCursor for a cursor no Page gave.
//
// Cost: one read of one index (at most Limit+1 members, from the cursor on),
// one read of the page's entries, and with Total one count of the index (at
// most MaxTotal).
func (l *Log) List(ctx context.Context, q Query) (Page, error) {
	if q.Kind != "" && !q.Kind.Valid() {
		return Page{}, fmt.Errorf("%w: kind %q", ErrInvalid, q.Kind)
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	if q.Cursor != "" {
		if _, ok := positionTime(q.Cursor); !ok {
			return Page{}, ErrBadCursor
		}
	}
	index := ixTime
	switch u := userToken(q.User); {
	case u != "" && q.Kind != "":
		index = ixUserKind + u + "/" + string(q.Kind)
	case u != "":
		index = ixUser + u
	case q.Kind != "":
		index = ixKind + string(q.Kind)
	}
	// A bare time is a bound that sorts before every entry at that time.
	cut, before := l.cutoff(), q.Cursor
	if from := timePosition(q.From); from > cut {
		cut = from
	}
	if to := timePosition(q.To); to != "" && (before == "" || to < before) {
		before = to
	}
	positions, err := l.kv.Members(index, kv.Range{Desc: true, Before: before, After: cut, Limit: q.Limit + 1})
	if err != nil {
		return Page{}, fmt.Errorf("%w: list %s: %w", ErrStore, index, err)
	}
	var p Page
	if q.Total {
		if p.Total, err = l.count(index, cut, timePosition(q.To)); err != nil {
			return Page{}, err
		}
	}
	if len(positions) > q.Limit {
		positions = positions[:q.Limit]
		p.Next = positions[q.Limit-1]
	}
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	keys := make([]string, len(positions))
	for i, pos := range positions {
		keys[i] = entryKey(pos)
	}
	vals, err := l.kv.Get(keys...)
	if err != nil {
		return Page{}, fmt.Errorf("%w: read: %w", ErrStore, err)
	}
	for i, v := range vals {
		if v == nil {
			continue // dropped since it was listed
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return Page{}, fmt.Errorf("%w: decode %s: %w", ErrStore, keys[i], err)
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// count counts the members of index from from up to to (none: no bound),
// at most MaxTotal.
func (l *Log) count(index, from, to string) (int, error) {
	n, err := l.kv.Count(index, from, MaxTotal)
	if err == nil && to != "" && n > 0 {
		var above int
		above, err = l.kv.Count(index, to, MaxTotal)
		n = max(n-above, 0)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: count %s: %w", ErrStore, index, err)
	}
	return n, nil
}

// timePosition is t as a bound among positions, "" for the zero time.
func timePosition(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%019d", t.UnixNano())
}

// Get returns the entry with the ID, or ErrNotFound.
func (l *Log) Get(ctx context.Context, id string) (Entry, error) {
	if !validID.MatchString(id) {
		return Entry{}, ErrNotFound
	}
	vals, err := l.kv.Get(idKey(id))
	if err != nil {
		return Entry{}, fmt.Errorf("%w: read: %w", ErrStore, err)
	}
	if vals[0] == nil {
		return Entry{}, ErrNotFound
	}
	if vals, err = l.kv.Get(entryKey(string(vals[0]))); err != nil {
		return Entry{}, fmt.Errorf("%w: read: %w", ErrStore, err)
	}
	if vals[0] == nil {
		return Entry{}, ErrNotFound
	}
	var e Entry
	if err := json.Unmarshal(vals[0], &e); err != nil {
		return Entry{}, fmt.Errorf("%w: decode %s: %w", ErrStore, id, err)
	}
	return e, nil
}

// HourCount is how many entries of each kind one hour had.
type HourCount struct {
	// Start is the hour's start, UTC.
	Start  time.Time
	Counts map[Kind]int
}

// CountsByHour returns, oldest first, the counts of kinds in each of the
// last hours hours (1 to 24 × 31), the current one last: one read.
func (l *Log) CountsByHour(ctx context.Context, hours int, kinds ...Kind) ([]HourCount, error) {
	if hours < 1 || hours > 24*31 {
		return nil, fmt.Errorf("%w: %d hours", ErrInvalid, hours)
	}
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("%w: kind %q", ErrInvalid, k)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	last := l.o.Now().UTC().Truncate(time.Hour)
	out := make([]HourCount, 0, hours)
	var keys []string
	for i := hours - 1; i >= 0; i-- {
		hc := HourCount{Start: last.Add(-time.Duration(i) * time.Hour), Counts: make(map[Kind]int, len(kinds))}
		for _, k := range kinds {
			keys = append(keys, countKey(hc.Start, k))
		}
		out = append(out, hc)
	}
	vals, err := l.kv.Get(keys...)
	if err != nil {
		return nil, fmt.Errorf("%w: read counts: %w", ErrStore, err)
	}
	for i := range out {
		for j, k := range kinds {
			out[i].Counts[k] = kv.Atoi(vals[i*len(kinds)+j])
		}
	}
	return out, nil
}

// Key layouts and index names.
const (
	hourLayout = "2006010215"
	ixTime     = "t"
	ixKind     = "k/"
	ixUser     = "u/"
	ixUserKind = "uk/"
)

func entryKey(pos string) string { return "a/e/" + pos }

func idKey(id string) string { return "a/i/" + id }

func countKey(hour time.Time, k Kind) string {
	return "a/n/" + hour.UTC().Format(hourLayout) + "/" + string(k)
}

// position is e's sort key, also the cursor of a page ending at e.
func position(e Entry) string {
	return fmt.Sprintf("%019d.%s", e.Time.UnixNano(), e.ID)
}

var positionRE = regexp.MustCompile(`^[0-9]{19}\.[A-Za-z0-9_-]{1,64}$`)

// positionTime is the time of a position, and whether it is one.
func positionTime(pos string) (time.Time, bool) {
	if !positionRE.MatchString(pos) {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(pos[:19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns).UTC(), true
}

// users are the index tokens of e's actor and subject, IDs and names.
func users(e Entry) []string {
	var out []string
	for _, s := range []string{e.ActorID, e.ActorName, e.SubjectID, e.SubjectName} {
		if u := userToken(s); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// userToken is s as a key segment: lowercased; kept as it is when made of
// [a-z0-9_.-] only (every valid username and ID) and not only dots; else
// "%" and its hex, so that no segment holds a "/", a glob character or a
// "." or ".." (the memory store cleans keys as paths).
func userToken(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return ""
	}
	plain, dots := true, true
	for _, c := range s {
		switch {
		case c == '.':
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			dots = false
		default:
			plain = false
		}
	}
	if plain && !dots {
		return s
	}
	return "%" + hex.EncodeToString([]byte(s))
}

// layoutVersion marks a store whose entries are in this layout.
const layoutVersion = "a/v1"

// Migrate moves the entries an earlier version stored (e/<day>/<kind>/<pos>,
// with u/, i/ and n/ keys beside them) into this layout, once per store: a
// scan of those keys, at start, never on a request. It returns how many
// entries it moved.
func (l *Log) Migrate(ctx context.Context) (int, error) {
	if vals, err := l.kv.Get(layoutVersion); err != nil {
		return 0, fmt.Errorf("%w: read: %w", ErrStore, err)
	} else if vals[0] != nil {
		return 0, nil
	}
	n := 0
	for _, prefix := range []string{"e/", "u/", "i/", "n/"} {
		keys, err := l.st.List(store.ListPrefix(prefix))
		if err != nil {
			return n, fmt.Errorf("%w: list %s: %w", ErrStore, prefix, err)
		}
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			if prefix == "e/" {
				recs, err := l.st.Read(k)
				if err == nil && len(recs) == 1 {
					var e Entry
					if json.Unmarshal(recs[0].Value, &e) == nil {
						if err := l.Append(ctx, e); err == nil {
							n++
						} else if !errors.Is(err, ErrExpired) && !errors.Is(err, ErrInvalid) {
							return n, err
						}
					}
				}
			}
			if err := l.st.Delete(k); err != nil {
				return n, fmt.Errorf("%w: delete %s: %w", ErrStore, k, err)
			}
		}
	}
	if _, err := l.kv.Apply(kv.PutOp(layoutVersion, []byte("1"), 0)); err != nil {
		return n, fmt.Errorf("%w: write: %w", ErrStore, err)
	}
	return n, nil
}
