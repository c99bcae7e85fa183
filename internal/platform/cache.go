package platform

import (
	"context"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"go-micro.dev/v4/cache"
)

// memoryCache is a go-micro cache.Cache that, unlike go-micro's own memory
// cache, evicts expired items, so that a long-running gateway does not keep
// every session it ever saw.
type memoryCache struct{ c *gocache.Cache }

// NewMemoryCache returns an in-process cache.Cache; items live d unless Put
// gives another duration, and expired items are swept every minute.
func NewMemoryCache(d time.Duration) cache.Cache {
	return memoryCache{c: gocache.New(d, time.Minute)}
}

// Get returns the item at key, or cache.ErrKeyNotFound.
func (m memoryCache) Get(_ context.Context, key string) (interface{}, time.Time, error) {
	v, exp, ok := m.c.GetWithExpiration(key)
	if !ok {
		return nil, time.Time{}, cache.ErrKeyNotFound
	}
	return v, exp, nil
}

// Put stores val at key for d (0: the cache's default).
func (m memoryCache) Put(_ context.Context, key string, val interface{}, d time.Duration) error {
	if d == 0 {
		d = gocache.DefaultExpiration
	}
	m.c.Set(key, val, d)
	return nil
}

// Delete removes key.
func (m memoryCache) Delete(_ context.Context, key string) error {
	m.c.Delete(key)
	return nil
}

// String names the implementation.
func (m memoryCache) String() string { return "memory" }

// noCache is a cache.Cache that keeps nothing: every Get misses.
type noCache struct{}

// NewNoCache returns a cache.Cache that stores nothing, so that every lookup
// goes to the source. The gateway with PORTAL_CACHE=none asks the user
// service about the session on every request; a revocation then needs no
// tombstone, since the user service no longer knows the session.
func NewNoCache() cache.Cache { return noCache{} }

// Get always answers cache.ErrKeyNotFound.
func (noCache) Get(context.Context, string) (interface{}, time.Time, error) {
	return nil, time.Time{}, cache.ErrKeyNotFound
}

// Put does nothing.
func (noCache) Put(context.Context, string, interface{}, time.Duration) error { return nil }

// Delete does nothing.
func (noCache) Delete(context.Context, string) error { return nil }

// String names the implementation.
func (noCache) String() string { return "none" }
