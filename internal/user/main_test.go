package user

import (
	"testing"

	"github.com/alexedwards/argon2id"

	"github.com/portal-go/portal/internal/testenv/leak"
)

// productionHashParams are the parameters the service hashes with, before
// TestMain makes them cheap: TestHashParams and
// TestLoginComparesForUnknownUsers check the dummy hash against them.
var productionHashParams = *hashParams

// TestMain hashes with argon2id's cheapest parameters: the package's tests
// make hundreds of hashes under -race, which at the production cost (19 MiB,
// 2 passes) were most of the package's time, and they test what is done with
// a hash, not its cost. Then it fails the package when its tests leave a
// goroutine running.
func TestMain(m *testing.M) {
	hashParams = &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	leak.VerifyTestMain(m)
}

// productionHashes makes the test hash with the production parameters, as
// the service does, until it ends. (No test of this package runs in
// parallel.)
func productionHashes(t *testing.T) {
	t.Helper()
	cheap := hashParams
	hashParams = &productionHashParams
	t.Cleanup(func() { hashParams = cheap })
}
