// Package kv is what Portal's services need from a store beyond go-micro's
// store.Store: several writes applied as one atomic step, each of them
// conditional on what is at a key, and ordered indexes kept in that same
// step, read a page at a time.
//
// go-micro's Store interface has neither: a read-then-write (a "last seen"
// update racing a logout) can bring a deleted record back, and listing is a
// scan of every key (the redis plugin's List is a SCAN over the whole
// database). Each store Portal runs on implements Store over the same records
// its store.Store reads and writes:
//
//   - the file store (internal/filestore): one bbolt transaction;
//   - Redis (NewRedis): one Lua script, run atomically by the server; an
//     index is a sorted set;
//   - any other store.Store, go-micro's memory store among them (NewLocal):
//     a mutex, so atomic within this process only (which is all a memory
//     store is shared by).
//
// One contract test (kv_test.go) runs against all three.
package kv

import "time"

// Cond is a condition on the record at an Op's key.
type Cond uint8

// Conditions. Each is checked, for every Op of a batch, before anything is
// written: the batch applies only when all hold.
const (
	// Always holds.
	Always Cond = iota
	// Exists holds when a live record is at the key.
	Exists
	// Absent holds when no live record is at the key.
	Absent
	// AbsentOrSame holds when no live record is at the key or its value is
	// the Op's own Value: a claim that recognises itself when retried.
	AbsentOrSame
	// Equal holds when the record at the key holds Op.Expect.
	Equal
)

// Kind is what an Op does.
type Kind uint8

// Kinds of Op.
const (
	// Check writes nothing: only its condition counts.
	Check Kind = iota
	// Put stores Value at Key, expiring after TTL (0: never).
	Put
	// Delete removes the record at Key.
	Delete
	// Add puts Value (the member) into the index named Key.
	Add
	// Remove takes Value out of the index named Key.
	Remove
	// TrimBelow removes every member of the index named Key that sorts
	// before Value.
	TrimBelow
	// Incr adds one to the decimal counter at Key (absent: 0); a counter it
	// creates expires after TTL (0: never). Not idempotent by itself: put
	// it in a batch with a condition that a retry finds false.
	Incr
)

// Op is one step of an atomic batch.
type Op struct {
	Kind  Kind
	Key   string // a record's key, or an index's name
	Value []byte // the record's value, or the index member (or bound)
	TTL   time.Duration
	// If is a condition on the record at Key (Check, Put, Delete only).
	If     Cond
	Expect []byte
}

// PutOp stores value at key, expiring after ttl (0: never).
func PutOp(key string, value []byte, ttl time.Duration) Op {
	return Op{Kind: Put, Key: key, Value: value, TTL: ttl}
}

// DeleteOp removes the record at key.
func DeleteOp(key string) Op { return Op{Kind: Delete, Key: key} }

// CheckOp writes nothing and holds when c holds at key.
func CheckOp(key string, c Cond) Op { return Op{Kind: Check, Key: key, If: c} }

// AddOp puts member into index.
func AddOp(index, member string) Op { return Op{Kind: Add, Key: index, Value: []byte(member)} }

// RemoveOp takes member out of index.
func RemoveOp(index, member string) Op { return Op{Kind: Remove, Key: index, Value: []byte(member)} }

// IncrOp adds one to the counter at key, which expires ttl after it is
// created.
func IncrOp(key string, ttl time.Duration) Op { return Op{Kind: Incr, Key: key, TTL: ttl} }

// TrimOp removes the members of index that sort before bound.
func TrimOp(index, bound string) Op { return Op{Kind: TrimBelow, Key: index, Value: []byte(bound)} }

// When returns o with the condition c.
func (o Op) When(c Cond) Op {
	o.If = c
	return o
}

// WhenEqual returns o, holding only when the record at its key is expect.
func (o Op) WhenEqual(expect []byte) Op {
	o.If, o.Expect = Equal, expect
	return o
}

// Range selects members of an index, in byte order of the members.
type Range struct {
	// After and Before, when set, are exclusive bounds.
	After, Before string
	// Desc lists from the highest member down.
	Desc bool
	// Offset skips that many members first.
	Offset int
	// Limit is how many members at most; it must be positive.
	Limit int
}

// Store is an atomic, indexed store. Keys are in the table of the
// store.Store it goes with; index names are a namespace of their own.
type Store interface {
	// Get returns the live values at keys, nil where a key has none.
	Get(keys ...string) ([][]byte, error)
	// Apply runs ops as one atomic step when every condition holds, and
	// reports whether it did. It is idempotent when its ops are: a retry
	// after a lost reply does what the first try did or finds it done.
	Apply(ops ...Op) (bool, error)
	// Members returns the members of index that r selects.
	Members(index string, r Range) ([]string, error)
	// Count returns how many members of index sort at or after from, or
	// max when there are more (max <= 0: no bound). A file store counts
	// one member at a time: a bound keeps that cheap.
	Count(index, from string, max int) (int, error)
}

// MaxRange bounds Range.Limit: no read returns more.
const MaxRange = 10000

// Max is r.Limit clamped to 1..MaxRange.
func (r Range) Max() int { return min(max(r.Limit, 1), MaxRange) }

// InRange reports whether m is within r's bounds.
func (r Range) InRange(m string) bool {
	return (r.After == "" || m > r.After) && (r.Before == "" || m < r.Before)
}
