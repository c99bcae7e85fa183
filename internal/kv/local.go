package kv

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go-micro.dev/v4/store"
)

// Local is a Store over any go-micro store.Store, atomic within this process:
// a mutex serialises every Apply (and every read, so none sees half of one).
// Index members are records of their own under "#ix/<index>\x00". It is the
// Store of go-micro's memory store; over a store that other processes share,
// it is not atomic between them.
type Local struct {
	st store.Store
	mu sync.Mutex
}

// NewLocal wraps st.
func NewLocal(st store.Store) *Local { return &Local{st: st} }

// ixPrefix is where the members of index are kept in a Local's store (the
// NUL keeps index "a" from listing the members of index "a/b").
func ixPrefix(index string) string { return "#ix/" + index + "\x00" }

// Get implements Store.
func (l *Local) Get(keys ...string) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := l.get(k)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (l *Local) get(key string) ([]byte, error) {
	recs, err := l.st.Read(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(recs) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := recs[0].Value
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Apply implements Store.
func (l *Local) Apply(ops ...Op) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range ops {
		if o.Kind > Delete || o.If == Always {
			continue
		}
		v, err := l.get(o.Key)
		if err != nil {
			return false, err
		}
		if !Holds(o, v) {
			return false, nil
		}
	}
	for _, o := range ops {
		if err := l.apply(o); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Holds reports whether o's condition holds for the value v at its key (nil:
// none).
func Holds(o Op, v []byte) bool {
	switch o.If {
	case Exists:
		return v != nil
	case Absent:
		return v == nil
	case AbsentOrSame:
		return v == nil || bytes.Equal(v, o.Value)
	case Equal:
		return v != nil && bytes.Equal(v, o.Expect)
	}
	return true
}

func (l *Local) apply(o Op) error {
	switch o.Kind {
	case Put:
		return l.st.Write(&store.Record{Key: o.Key, Value: o.Value, Expiry: o.TTL})
	case Delete:
		return l.st.Delete(o.Key)
	case Add:
		return l.st.Write(&store.Record{Key: ixPrefix(o.Key) + string(o.Value), Value: []byte{}})
	case Remove:
		return l.st.Delete(ixPrefix(o.Key) + string(o.Value))
	case Incr:
		v, err := l.get(o.Key)
		if err != nil {
			return err
		}
		ttl := o.TTL
		if v != nil { // keep the counter's expiry
			recs, err := l.st.Read(o.Key)
			if err != nil || len(recs) == 0 {
				return err
			}
			ttl = recs[0].Expiry
		}
		return l.st.Write(&store.Record{Key: o.Key, Value: []byte(strconv.Itoa(Atoi(v) + 1)), Expiry: ttl})
	case TrimBelow:
		ms, err := l.members(o.Key)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m >= string(o.Value) {
				break
			}
			if err := l.st.Delete(ixPrefix(o.Key) + m); err != nil {
				return err
			}
		}
	}
	return nil
}

// Atoi is the counter value v (as Get returns it): 0 when absent or
// unreadable.
func Atoi(v []byte) int {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// members lists index, sorted.
func (l *Local) members(index string) ([]string, error) {
	p := ixPrefix(index)
	keys, err := l.st.List(store.ListPrefix(p))
	if err != nil {
		return nil, fmt.Errorf("kv: list %s: %w", index, err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if m, ok := strings.CutPrefix(k, p); ok {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Members implements Store.
func (l *Local) Members(index string, r Range) ([]string, error) {
	l.mu.Lock()
	all, err := l.members(index)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if r.Desc {
		for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
			all[i], all[j] = all[j], all[i]
		}
	}
	var out []string
	skipped := 0
	for _, m := range all {
		if !r.InRange(m) {
			continue
		}
		if skipped < r.Offset {
			skipped++
			continue
		}
		out = append(out, m)
		if len(out) == r.Max() {
			break
		}
	}
	return out, nil
}

// Count implements Store.
func (l *Local) Count(index, from string, max int) (int, error) {
	l.mu.Lock()
	all, err := l.members(index)
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := len(all) - sort.SearchStrings(all, from)
	if max > 0 {
		n = min(n, max)
	}
	return n, nil
}
