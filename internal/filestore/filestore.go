// Package filestore is a go-micro store.Store kept in a bbolt file: the embedded
// default's store, so that Portal needs no server to keep its data.
//
// go-micro v4's own file store plugin (github.com/go-micro/plugins/v4/store/file)
// is not served by the module proxy, so this package provides the same design:
// one bbolt file per database under a directory, one bucket per table, records
// with an optional expiry.
package filestore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by every call on a store that is not open.
var ErrClosed = errors.New("filestore: closed")

// Store is a store.Store backed by one bbolt file.
type Store struct {
	dir  string
	mu   sync.RWMutex
	opts store.Options
	db   *bolt.DB
}

// record is how a store.Record is kept on disk.
type record struct {
	Value     []byte                 `json:"v"`
	Metadata  map[string]interface{} `json:"m,omitempty"`
	ExpiresAt int64                  `json:"x,omitempty"` // unix nanoseconds, 0 = never
}

// New opens (creating if needed) the store's file under dir. Database names
// the file (<dir>/<database>.db) and Table the default bucket.
func New(dir string, opts ...store.Option) (*Store, error) {
	s := &Store{dir: dir}
	if err := s.Init(opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// Init applies options and (re)opens the file.
func (s *Store) Init(opts ...store.Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.Database == "" {
		s.opts.Database = "micro"
	}
	if s.opts.Table == "" {
		s.opts.Table = "micro"
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("filestore: close: %w", err)
		}
		s.db = nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	path := filepath.Join(s.dir, s.opts.Database+".db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("filestore: open %s: %w", path, err)
	}
	s.db = db
	return nil
}

// Options returns the store's options.
func (s *Store) Options() store.Options {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.opts
}

// String names the implementation.
func (s *Store) String() string { return "file" }

// Close closes the file; the store can be opened again with Init.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// view and update run fn on the open database, or fail with ErrClosed.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.Update(fn)
}

func (s *Store) table(database, table string) (string, error) {
	s.mu.RLock() // Init writes s.opts
	defer s.mu.RUnlock()
	if database != "" && database != s.opts.Database {
		return "", fmt.Errorf("filestore: database %q is not open (this store holds %q)", database, s.opts.Database)
	}
	if table == "" {
		table = s.opts.Table
	}
	return table, nil
}

// Read returns the record at key, or with ReadPrefix/ReadSuffix every record
// whose key matches, in key order, honouring Limit and Offset.
func (s *Store) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	var o store.ReadOptions
	for _, opt := range opts {
		opt(&o)
	}
	table, err := s.table(o.Database, o.Table)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []*store.Record
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return nil
		}
		if !o.Prefix && !o.Suffix {
			v := b.Get([]byte(key))
			if v == nil {
				return nil
			}
			r, live, err := decode(key, v, now)
			if err != nil || !live {
				return err
			}
			out = append(out, r)
			return nil
		}
		var skipped uint
		return scan(b, o.Prefix, key, func(k, v []byte) (bool, error) {
			if o.Suffix && !bytes.HasSuffix(k, []byte(key)) {
				return true, nil
			}
			r, live, err := decode(string(k), v, now)
			if err != nil || !live {
				return err == nil, err
			}
			if skipped < o.Offset {
				skipped++
				return true, nil
			}
			out = append(out, r)
			return o.Limit == 0 || uint(len(out)) < o.Limit, nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 && !o.Prefix && !o.Suffix {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// Write stores r, with an expiry from the record, WriteExpiry or WriteTTL.
func (s *Store) Write(r *store.Record, opts ...store.WriteOption) error {
	var o store.WriteOptions
	for _, opt := range opts {
		opt(&o)
	}
	table, err := s.table(o.Database, o.Table)
	if err != nil {
		return err
	}
	rec := record{Value: r.Value, Metadata: r.Metadata}
	switch { // store.WriteOptions: if Expiry and TTL are set, TTL takes precedence
	case o.TTL > 0:
		rec.ExpiresAt = time.Now().Add(o.TTL).UnixNano()
	case !o.Expiry.IsZero():
		rec.ExpiresAt = o.Expiry.UnixNano()
	case r.Expiry > 0:
		rec.ExpiresAt = time.Now().Add(r.Expiry).UnixNano()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("filestore: encode %q: %w", r.Key, err)
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(table))
		if err != nil {
			return err
		}
		return b.Put([]byte(r.Key), data)
	})
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(key string, opts ...store.DeleteOption) error {
	var o store.DeleteOptions
	for _, opt := range opts {
		opt(&o)
	}
	table, err := s.table(o.Database, o.Table)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
}

// List returns the live keys of a table, filtered by prefix and suffix, in key
// order, honouring Limit and Offset.
func (s *Store) List(opts ...store.ListOption) ([]string, error) {
	var o store.ListOptions
	for _, opt := range opts {
		opt(&o)
	}
	table, err := s.table(o.Database, o.Table)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var keys []string
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return nil
		}
		var skipped uint
		return scan(b, true, o.Prefix, func(k, v []byte) (bool, error) {
			if !strings.HasSuffix(string(k), o.Suffix) {
				return true, nil
			}
			_, live, err := decode(string(k), v, now)
			if err != nil || !live {
				return err == nil, err
			}
			if skipped < o.Offset {
				skipped++
				return true, nil
			}
			keys = append(keys, string(k))
			return o.Limit == 0 || uint(len(keys)) < o.Limit, nil
		})
	})
	return keys, err
}

// Sweep deletes the expired records of every table and returns how many. Reads
// already hide them; sweeping keeps the file from growing with them.
func (s *Store) Sweep() (int, error) {
	now := time.Now()
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			var dead [][]byte
			err := b.ForEach(func(k, v []byte) error {
				if _, live, err := decode(string(k), v, now); err == nil && !live {
					dead = append(dead, append([]byte(nil), k...))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range dead {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(dead)
			return nil
		})
	})
	return n, err
}

// scan calls fn for each key with the prefix (every key if !prefixed) until fn
// returns false or an error.
func scan(b *bolt.Bucket, prefixed bool, prefix string, fn func(k, v []byte) (bool, error)) error {
	c := b.Cursor()
	p := []byte(prefix)
	k, v := c.First()
	if prefixed {
		k, v = c.Seek(p)
	}
	for ; k != nil; k, v = c.Next() {
		if prefixed && !bytes.HasPrefix(k, p) {
			return nil
		}
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// decode turns a stored value into a record, reporting whether it is still live.
func decode(key string, data []byte, now time.Time) (*store.Record, bool, error) {
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, false, fmt.Errorf("filestore: decode %q: %w", key, err)
	}
	r := &store.Record{Key: key, Value: rec.Value, Metadata: rec.Metadata}
	if rec.ExpiresAt != 0 {
		left := time.Unix(0, rec.ExpiresAt).Sub(now)
		if left <= 0 {
			return nil, false, nil
		}
		r.Expiry = left
	}
	return r, true, nil
}

// The file store is a kv.Store too: Apply is one bbolt transaction, and an
// index is a bucket of its own ("#ix:<table>"), keyed "<index>\x00<member>",
// so that reading one index seeks straight to it.

// ixBucket names the bucket of table's indexes.
func ixBucket(table string) []byte { return []byte("#ix:" + table) }

// ixKey is member's key in index.
func ixKey(index, member string) []byte { return []byte(index + "\x00" + member) }

// Get implements kv.Store for the default table.
func (s *Store) Get(keys ...string) ([][]byte, error) {
	table, err := s.table("", "")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([][]byte, len(keys))
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return nil
		}
		for i, k := range keys {
			v, err := liveValue(b, k, now)
			if err != nil {
				return err
			}
			out[i] = v
		}
		return nil
	})
	return out, err
}

// liveValue is the value of the live record at key in b, nil when none.
func liveValue(b *bolt.Bucket, key string, now time.Time) ([]byte, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return nil, nil
	}
	r, live, err := decode(key, data, now)
	if err != nil || !live {
		return nil, err
	}
	if r.Value == nil {
		return []byte{}, nil
	}
	return r.Value, nil
}

// Apply implements kv.Store in one transaction of the default table.
func (s *Store) Apply(ops ...kv.Op) (bool, error) {
	table, err := s.table("", "")
	if err != nil {
		return false, err
	}
	now := time.Now()
	applied := false
	err = s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(table))
		if err != nil {
			return err
		}
		ix, err := tx.CreateBucketIfNotExists(ixBucket(table))
		if err != nil {
			return err
		}
		for _, o := range ops {
			if o.Kind > kv.Delete || o.If == kv.Always {
				continue
			}
			v, err := liveValue(b, o.Key, now)
			if err != nil {
				return err
			}
			if !kv.Holds(o, v) {
				return nil
			}
		}
		for _, o := range ops {
			if err := applyOp(b, ix, o, now); err != nil {
				return err
			}
		}
		applied = true
		return nil
	})
	return applied && err == nil, err
}

func applyOp(b, ix *bolt.Bucket, o kv.Op, now time.Time) error {
	switch o.Kind {
	case kv.Put:
		rec := record{Value: o.Value}
		if o.TTL > 0 {
			rec.ExpiresAt = now.Add(o.TTL).UnixNano()
		}
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(o.Key), data)
	case kv.Delete:
		return b.Delete([]byte(o.Key))
	case kv.Add:
		return ix.Put(ixKey(o.Key, string(o.Value)), nil)
	case kv.Remove:
		return ix.Delete(ixKey(o.Key, string(o.Value)))
	case kv.Incr:
		rec := record{}
		if data := b.Get([]byte(o.Key)); data != nil {
			if r, live, err := decode(o.Key, data, now); err == nil && live {
				rec.Value = r.Value
				if r.Expiry > 0 {
					rec.ExpiresAt = now.Add(r.Expiry).UnixNano()
				}
			} else if o.TTL > 0 {
				rec.ExpiresAt = now.Add(o.TTL).UnixNano()
			}
		} else if o.TTL > 0 {
			rec.ExpiresAt = now.Add(o.TTL).UnixNano()
		}
		rec.Value = []byte(strconv.Itoa(kv.Atoi(rec.Value) + 1))
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(o.Key), data)
	case kv.TrimBelow:
		c := ix.Cursor()
		p, end := ixKey(o.Key, ""), ixKey(o.Key, string(o.Value))
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && bytes.Compare(k, end) < 0; k, _ = c.Seek(p) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Members implements kv.Store: a cursor over the index's keys only.
func (s *Store) Members(index string, r kv.Range) ([]string, error) {
	table, err := s.table("", "")
	if err != nil {
		return nil, err
	}
	var out []string
	err = s.view(func(tx *bolt.Tx) error {
		ix := tx.Bucket(ixBucket(table))
		if ix == nil {
			return nil
		}
		p := ixKey(index, "")
		c := ix.Cursor()
		var k []byte
		step := c.Next
		switch {
		case r.Desc && r.Before != "":
			k, _ = c.Seek(ixKey(index, r.Before))
			k, _ = seekBack(c, k)
			step = c.Prev
		case r.Desc:
			// The first key past the index: its prefix with \x00 -> \x01.
			k, _ = c.Seek([]byte(index + "\x01"))
			k, _ = seekBack(c, k)
			step = c.Prev
		default:
			k, _ = c.Seek(ixKey(index, r.After))
		}
		skipped := 0
		for ; k != nil && bytes.HasPrefix(k, p); k, _ = step() {
			m := string(k[len(p):])
			if !r.InRange(m) {
				if !r.Desc && m == r.After {
					continue // Seek stops at the exclusive bound itself
				}
				return nil // past the far bound: nothing further is in range
			}
			if skipped < r.Offset {
				skipped++
				continue
			}
			out = append(out, m)
			if len(out) == r.Max() {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// seekBack steps the cursor c, which Seek left at k (nil: past the end), to
// the key before it.
func seekBack(c *bolt.Cursor, k []byte) ([]byte, []byte) {
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// Count implements kv.Store.
func (s *Store) Count(index, from string, max int) (int, error) {
	table, err := s.table("", "")
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.view(func(tx *bolt.Tx) error {
		ix := tx.Bucket(ixBucket(table))
		if ix == nil {
			return nil
		}
		p := ixKey(index, "")
		c := ix.Cursor()
		for k, _ := c.Seek(ixKey(index, from)); k != nil && bytes.HasPrefix(k, p) && (max <= 0 || n < max); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}
