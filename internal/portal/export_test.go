package portal

import (
	"log/slog"

	"go-micro.dev/v4/cache"
	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/kv"
)

// RedisUserStore is serviceStore for the user service on a Redis store, for
// the external tests (which may use testenv: it imports this package).
func RedisUserStore(st store.Store, log *slog.Logger) (store.Store, kv.Store, error) {
	return serviceStore(ServiceSettings{Name: "user", Store: st}, log)
}

// RedisWebCache is the gateway's cache with PORTAL_CACHE=redis at addr.
func RedisWebCache(addr string, log *slog.Logger) (cache.Cache, error) {
	return webCache(ServiceSettings{Cache: "redis", CacheAddress: addr}, log)
}

// RedisServiceStore is serviceStore for service name on a Redis store
// whose certificate is signed by the CA of caFile ("" none).
func RedisServiceStore(name, caFile string, st store.Store, log *slog.Logger) (store.Store, kv.Store, error) {
	return serviceStore(ServiceSettings{Name: name, Store: st, RedisCAFile: caFile}, log)
}

// RedisCache is the gateway's cache with PORTAL_CACHE=redis at addr and
// PORTAL_REDIS_CA_FILE=caFile.
func RedisCache(addr, caFile string, log *slog.Logger) (cache.Cache, error) {
	return webCache(ServiceSettings{Cache: "redis", CacheAddress: addr, RedisCAFile: caFile}, log)
}
