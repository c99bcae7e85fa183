// Package redisx adapts Redis to what Portal needs beyond go-micro's redis
// store and cache plugins: bounded client options (the plugins ignore
// contexts) and the cache's reads of several keys in one MGET. The store's
// atomic writes and indexes are internal/kv's (kv.Redis).
package redisx

import (
	"context"
	"strings"
	"time"

	rediscache "github.com/go-micro/plugins/v4/cache/redis"
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

// Cache is the redis cache plugin, plus reads of several keys in one MGET
// (web.MultiGetter): the plugin reads a key with GET and then TTL, so a
// request on a Redis-cached gateway cost three round trips instead of one.
type Cache struct {
	cache.Cache
	cli goredis.UniversalClient
}

// NewCache is the cache plugin and its MGET client on the Redis opts names
// (Dial).
func NewCache(opts goredis.UniversalOptions) Cache {
	return Cache{Cache: rediscache.NewCache(rediscache.WithRedisOptions(opts)), cli: goredis.NewUniversalClient(&opts)}
}

// GetMany implements web.MultiGetter: each value as the []byte the plugin's
// Get would return, nil where a key is missing.
func (c Cache) GetMany(ctx context.Context, keys ...string) ([]interface{}, error) {
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
