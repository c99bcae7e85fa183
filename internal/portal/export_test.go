package portal

import (
	"log/slog"

	"go-micro.dev/v4/store"

	"github.com/portal-go/portal/internal/user"
)

// RedisUserStore is serviceStore for the user service on a Redis store, for
// the external tests (which may use testenv: it imports this package).
func RedisUserStore(st store.Store, log *slog.Logger) (store.Store, user.Claimer, error) {
	return serviceStore("user", serviceFlags{storeName: "redis"}, st, log)
}
