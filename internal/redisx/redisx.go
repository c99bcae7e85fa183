// Package redisx adapts Redis to what Portal needs beyond go-micro's redis
// store and cache plugins: bounded client options (the plugins ignore
// contexts) and a Redis cache (go-micro's cache.Cache) that reads several
// keys in one MGET and can be closed. The store's
// atomic writes and indexes are internal/kv's (kv.Redis).
package redisx

import (
	"context"
	"errors"
	"strings"
	"time"

	goredis "github.com/go-redis/redis/v8"
	"go-micro.dev/v4/cache"
)

// Client bounds: the store plugin ignores contexts, so these are what keeps
// a hung Redis from holding a request for go-redis's default 12 s.
const (
	DialTimeout = time.Second
	IOTimeout   = 500 * time.Millisecond
)

// Addrs turns go-micro style addresses (host:port or redis://host:port)
// into go-redis ones; none gives 127.0.0.1:6379.
func Addrs(nodes []string) []string {
	var addrs []string
	for _, n := range nodes {
		if n = strings.TrimPrefix(strings.TrimSpace(n), "redis://"); n != "" {
			addrs = append(addrs, n)
		}
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:6379"}
	}
	return addrs
}

// Options bound every Redis call Portal makes.
func Options(addrs []string) goredis.UniversalOptions {
	return goredis.UniversalOptions{
		Addrs:       addrs,
		DialTimeout: DialTimeout, ReadTimeout: IOTimeout, WriteTimeout: IOTimeout,
		PoolTimeout: IOTimeout,
		// After a Redis restart the pool holds dead connections; each retry
		// drops one. Three, with short backoffs, ride that out while a
		// refused connection still fails in well under a second.
		MaxRetries: 3, MinRetryBackoff: 8 * time.Millisecond, MaxRetryBackoff: 64 * time.Millisecond,
		// go-redis v8 checks no pooled connection before use: after a Redis
		// restart a pool of more dead connections than attempts failed the
		// first requests (a 503 right after /readyz said ready). A
		// connection idle this long is dropped instead of used; one in use
		// is not.
		IdleTimeout: 2 * time.Second,
	}
}

// Cache is go-micro's cache.Cache on Redis, with the redis cache plugin's
// behaviour (values read as bytes, the expiry from the key's TTL), plus reads
// of several keys in one MGET (web.MultiGetter) and a Close. Portal no longer
// uses the plugin: its client could not be closed (cache.Cache has no Close),
// so every gateway leaked a connection pool and its reaper, beside a second
// client kept for MGET; and its Get cost two round trips (GET, then TTL).
type Cache struct {
	cli goredis.UniversalClient
}

// NewCache is a Cache on the Redis opts names (Dial: TLS, credentials,
// Sentinel or Cluster), bounded as Options bounds it.
func NewCache(opts goredis.UniversalOptions) *Cache {
	return &Cache{cli: goredis.NewUniversalClient(&opts)}
}

// Get implements cache.Cache: the value at key and when it expires, in one
// round trip.
func (c *Cache) Get(ctx context.Context, key string) (interface{}, time.Time, error) {
	var get *goredis.StringCmd
	var ttl *goredis.DurationCmd
	_, err := c.cli.Pipelined(ctx, func(p goredis.Pipeliner) error {
		get, ttl = p.Get(ctx, key), p.TTL(ctx, key)
		return nil
	})
	val, getErr := get.Bytes()
	switch {
	case errors.Is(getErr, goredis.Nil):
		return nil, time.Time{}, cache.ErrKeyNotFound
	case err != nil:
		return nil, time.Time{}, err
	}
	switch d := ttl.Val(); d {
	case -1: // no expiry
		return val, time.Unix(1<<63-1, 0), nil
	case -2: // expired between the two commands
		return nil, time.Time{}, cache.ErrItemExpired
	default:
		return val, time.Now().Add(d), nil
	}
}

// Put implements cache.Cache: val at key for d (0: no expiry).
func (c *Cache) Put(ctx context.Context, key string, val interface{}, d time.Duration) error {
	return c.cli.Set(ctx, key, val, d).Err()
}

// Delete implements cache.Cache.
func (c *Cache) Delete(ctx context.Context, key string) error {
	return c.cli.Del(ctx, key).Err()
}

// String implements cache.Cache.
func (c *Cache) String() string { return "redis" }

// Close closes the client and its connections.
func (c *Cache) Close() error { return c.cli.Close() }

// GetMany implements web.MultiGetter: each value as the []byte Get would
// return, nil where a key is missing.
func (c *Cache) GetMany(ctx context.Context, keys ...string) ([]interface{}, error) {
	vals, err := c.cli.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]interface{}, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}
