package audit

// The log keeps entries in a go-micro store.Store as plain records, under
// these keys (a position is "<unix nanoseconds, 19 digits>.<id>", so that
// positions sort as times do):
//
//	e/<yyyymmdd>/<kind>/<position>     the entry, JSON
//	u/<user>/<kind>/<position>         index: entries whose actor or subject is <user>
//	i/<id>                             the entry's e/ key: it is stored (or was dropped)
//	n/<yyyymmddhh>/<kind>              how many entries of the kind the hour had
//
// No store orders or pages its keys the same way (go-micro's redis store
// lists with SCAN, unordered; its memory store in random order), so the log
// lists one bucket at a time (a day of e/ keys, or one user's u/ keys) and
// sorts the keys itself. Every record expires with its entry (Retention
// after the entry's time), through the record's own expiry, which every
// store honours.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"
)

// Defaults of LogOptions.
const (
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultMaxPerHour = 1000
)

// Page sizes of List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// maxSkew is how far in the future an entry's time may be (publishers'
// clocks differ); later ones are invalid.
const maxSkew = time.Hour

// ErrStore wraps the store's own errors: the store did not answer.
var ErrStore = errors.New("audit: store")

// LogOptions bound the log. At most Retention / 1 h × MaxPerHour entries of
// each kind are kept: with the defaults, 720 000 per kind.
type LogOptions struct {
	// Retention is how long an entry is kept after its time (default
	// DefaultRetention; at least an hour).
	Retention time.Duration
	// MaxPerHour is how many entries of one kind one hour keeps (default
	// DefaultMaxPerHour). Later ones are counted (CountsByHour) but not
	// stored, so that a flood of failed logins cannot fill the store.
	MaxPerHour int
	// Now is the log's clock (default time.Now).
	Now func() time.Time
}

// Log is the audit log in a store.Store.
type Log struct {
	st store.Store
	o  LogOptions
	mu sync.Mutex // serialises Append: read-check-write of markers and counters
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
	if o.MaxPerHour <= 0 {
		o.MaxPerHour = DefaultMaxPerHour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Log{st: st, o: o}
}

// Append stores e. An entry whose ID is stored already is not stored again
// (nil). It fails with ErrInvalid for an entry without a valid ID, Kind or
// Time (or a time more than an hour ahead), ErrExpired for one older than the
// retention, ErrOverLimit when its hour holds MaxPerHour entries of its kind
// already (it is counted, not stored), and ErrStore when the store fails.
//
// Several processes appending to one store (several system instances) are
// not serialised: each entry is still stored once per ID but an hour's count
// can miss a concurrent increment.
func (l *Log) Append(ctx context.Context, e Entry) error {
	e, err := normalize(e)
	if err != nil {
		return err
	}
	now := l.o.Now()
	left := e.Time.Add(l.o.Retention).Sub(now)
	switch {
	case left <= 0:
		return ErrExpired
	case e.Time.After(now.Add(maxSkew)):
		return fmt.Errorf("%w: time %v is in the future", ErrInvalid, e.Time)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()

	if _, err := l.read(idKey(e.ID)); err == nil {
		return nil // stored already: a redelivery
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	hour := e.Time.Truncate(time.Hour)
	ck := countKey(hour, e.Kind)
	n, err := l.count(ck)
	if err != nil {
		return err
	}
	key := ""
	if n < l.o.MaxPerHour {
		key = entryKey(e)
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := l.write(key, data, left); err != nil {
			return err
		}
		for _, u := range users(e) {
			if err := l.write(userKey(u, e.Kind, position(e)), []byte("1"), left); err != nil {
				return err
			}
		}
	}
	// The count, then the marker: a failure in between leaves no marker, so
	// the redelivered entry overwrites the same keys (and counts twice).
	if err := l.write(ck, []byte(strconv.Itoa(n+1)), hour.Add(l.o.Retention+time.Hour).Sub(now)); err != nil {
		return err
	}
	if err := l.write(idKey(e.ID), []byte(key), left); err != nil {
		return err
	}
	if key == "" {
		return ErrOverLimit
	}
	return nil
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
	// Offset skips that many entries (after Cursor). Prefer Cursor: entries
	// appended between two pages shift offsets.
	Offset int
	// Total asks for Page.Total. Without a User it then lists the whole log
	// in one go instead of a day at a time.
	Total bool
}

// Page is one page of entries, newest first.
type Page struct {
	Entries []Entry
	// Next is the Query.Cursor of the next (older) page; empty when there is
	// none.
	Next string
	// Total is how many entries match User and Kind (whatever Cursor and
	// Offset), when Query.Total asked for it.
	Total int
}

// hit is a listed entry key and its position.
type hit struct{ pos, key string }

// List returns entries matching q, newest first. It fails with ErrInvalid
// for an unknown kind or a negative offset, and ErrBadCursor for a cursor no
// Page gave.
//
// Cost: a user's query lists that user's index keys once; one with Total
// lists every entry key once; any other lists one day of keys at a time,
// back from the cursor's day, until the page is full or the retention's
// first day is reached. Then one read per entry of the page. (go-micro's
// redis store lists with SCAN over the whole database, 10 keys a step.)
func (l *Log) List(ctx context.Context, q Query) (Page, error) {
	if q.Kind != "" && !q.Kind.Valid() {
		return Page{}, fmt.Errorf("%w: kind %q", ErrInvalid, q.Kind)
	}
	if q.Offset < 0 {
		return Page{}, fmt.Errorf("%w: offset %d", ErrInvalid, q.Offset)
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	var before time.Time // the cursor's time; zero: no cursor
	if q.Cursor != "" {
		t, ok := positionTime(q.Cursor)
		if !ok {
			return Page{}, ErrBadCursor
		}
		before = t
	}
	var hits []hit
	var err error
	switch u := userToken(q.User); {
	case u != "":
		hits, err = l.scan("u/"+u+"/", q.Kind)
	case q.Total:
		hits, err = l.scan("e/", q.Kind)
	default:
		hits, err = l.scanDays(ctx, q.Kind, before, q.Cursor, q.Offset+q.Limit+1)
	}
	if err != nil {
		return Page{}, err
	}
	var p Page
	if q.Total {
		p.Total = len(hits)
	}
	if q.Cursor != "" { // hits are newest first: skip those not older
		hits = hits[sort.Search(len(hits), func(i int) bool { return hits[i].pos < q.Cursor }):]
	}
	hits = hits[min(q.Offset, len(hits)):]
	if len(hits) > q.Limit {
		hits = hits[:q.Limit]
		p.Next = hits[q.Limit-1].pos
	}
	for _, h := range hits {
		if err := ctx.Err(); err != nil {
			return Page{}, err
		}
		e, err := l.entry(h.key)
		if errors.Is(err, ErrNotFound) {
			continue // expired since it was listed
		} else if err != nil {
			return Page{}, err
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// scanDays lists entry keys day by day, newest first, from the day of before
// (or now, when zero) back to the first day of the retention, until it has
// want of them older than cursor (when set).
func (l *Log) scanDays(ctx context.Context, kind Kind, before time.Time, cursor string, want int) ([]hit, error) {
	now := l.o.Now().UTC()
	day := now.Add(maxSkew)
	if !before.IsZero() {
		day = before
	}
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	first := now.Add(-l.o.Retention)
	first = time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, time.UTC)
	var hits []hit
	older := 0
	for ; !day.Before(first) && older < want; day = day.AddDate(0, 0, -1) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prefix := "e/" + day.Format(dayLayout) + "/"
		if kind != "" {
			prefix += string(kind) + "/"
		}
		h, err := l.scan(prefix, "")
		if err != nil {
			return nil, err
		}
		for _, x := range h {
			if cursor == "" || x.pos < cursor {
				older++
			}
		}
		hits = append(hits, h...)
	}
	return hits, nil
}

// scan lists the keys under prefix, all of the form ".../<kind>/<position>",
// of kind when set, newest first, as entry keys.
func (l *Log) scan(prefix string, kind Kind) ([]hit, error) {
	if kind != "" && strings.HasPrefix(prefix, "u/") {
		prefix += string(kind) + "/" // u/<user>/<kind>/: narrower
	}
	keys, err := l.st.List(store.ListPrefix(prefix))
	if err != nil {
		return nil, fmt.Errorf("%w: list %s: %w", ErrStore, prefix, err)
	}
	var hits []hit
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		i := strings.LastIndexByte(k, '/')
		j := strings.LastIndexByte(k[:max(i, 0)], '/')
		if j < 0 {
			continue
		}
		kd, pos := Kind(k[j+1:i]), k[i+1:]
		t, ok := positionTime(pos)
		if !ok || !kd.Valid() || (kind != "" && kd != kind) {
			continue
		}
		hits = append(hits, hit{pos: pos, key: "e/" + t.Format(dayLayout) + "/" + string(kd) + "/" + pos})
	}
	slices.SortFunc(hits, func(a, b hit) int { return strings.Compare(b.pos, a.pos) })
	return hits, nil
}

// Get returns the entry with the ID, or ErrNotFound (also for one that was
// counted but not stored: ErrOverLimit).
func (l *Log) Get(ctx context.Context, id string) (Entry, error) {
	if !validID.MatchString(id) {
		return Entry{}, ErrNotFound
	}
	key, err := l.read(idKey(id))
	if err != nil {
		return Entry{}, err
	}
	if len(key) == 0 {
		return Entry{}, ErrNotFound
	}
	return l.entry(string(key))
}

// HourCount is how many entries of each kind one hour had, stored or not
// (see LogOptions.MaxPerHour).
type HourCount struct {
	// Start is the hour's start, UTC.
	Start  time.Time
	Counts map[Kind]int
}

// CountsByHour returns, oldest first, the counts of kinds in each of the
// last hours hours (1 to 24 × 31), the current one last: hours × kinds
// reads.
func (l *Log) CountsByHour(ctx context.Context, hours int, kinds ...Kind) ([]HourCount, error) {
	if hours < 1 || hours > 24*31 {
		return nil, fmt.Errorf("%w: %d hours", ErrInvalid, hours)
	}
	for _, k := range kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("%w: kind %q", ErrInvalid, k)
		}
	}
	last := l.o.Now().UTC().Truncate(time.Hour)
	out := make([]HourCount, 0, hours)
	for i := hours - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hc := HourCount{Start: last.Add(-time.Duration(i) * time.Hour), Counts: make(map[Kind]int, len(kinds))}
		for _, k := range kinds {
			n, err := l.count(countKey(hc.Start, k))
			if err != nil {
				return nil, err
			}
			hc.Counts[k] = n
		}
		out = append(out, hc)
	}
	return out, nil
}

// entry reads and decodes the entry at key.
func (l *Log) entry(key string) (Entry, error) {
	data, err := l.read(key)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: decode %s: %w", ErrStore, key, err)
	}
	return e, nil
}

// count reads a counter; absent is 0.
func (l *Log) count(key string) (int, error) {
	data, err := l.read(key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(data))
	if err != nil || n < 0 {
		return 0, nil // unreadable: start again
	}
	return n, nil
}

// read returns the value at key, ErrNotFound, or an ErrStore.
func (l *Log) read(key string) ([]byte, error) {
	recs, err := l.st.Read(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrStore, key, err)
	}
	return recs[0].Value, nil
}

// write stores value at key, expiring after ttl.
func (l *Log) write(key string, value []byte, ttl time.Duration) error {
	if err := l.st.Write(&store.Record{Key: key, Value: value, Expiry: ttl}); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrStore, key, err)
	}
	return nil
}

// Key layouts.
const (
	dayLayout  = "20060102"
	hourLayout = "2006010215"
)

func entryKey(e Entry) string {
	return "e/" + e.Time.Format(dayLayout) + "/" + string(e.Kind) + "/" + position(e)
}

func userKey(user string, k Kind, pos string) string {
	return "u/" + user + "/" + string(k) + "/" + pos
}

func idKey(id string) string { return "i/" + id }

func countKey(hour time.Time, k Kind) string {
	return "n/" + hour.UTC().Format(hourLayout) + "/" + string(k)
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
// "%" and its hex, so that no segment holds a "/", a glob character (the
// redis store lists with SCAN MATCH) or a "." or ".." (the memory store
// cleans keys as paths).
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
