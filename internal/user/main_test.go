package user

import (
	"testing"

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
	CheapHashesForTests()
	leak.VerifyTestMain(m)
}

// productionHashes makes the test hash with the production parameters, as
// the service does, until it ends. (No test of this package runs in
// parallel.)
func productionHashes(t *testing.T) {
	t.Helper()
	cheap, cheapUnknown := hashParams, unknownUserHash
	hashParams, unknownUserHash = &productionHashParams, dummyHash
	t.Cleanup(func() { hashParams, unknownUserHash = cheap, cheapUnknown })
}
