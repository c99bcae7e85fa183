package user

import (
	"testing"

	"github.com/alexedwards/argon2id"
)

// CheapHashesForTests makes every password hashed from now on, and the
// comparison an unknown user's login makes, use argon2id's cheapest
// parameters (64 KiB, one pass) instead of the production ones.
// It is for the test binaries of other packages that run the user service
// in-process by the dozen (internal/portal's, through portaltest.Start):
// under -race a production hash costs about half a second and every
// in-process Portal shares this package's two hashing slots, so their
// registrations and logins queued behind each other's hashes. They test what
// is done with a hash, not its cost; the production parameters stay tested
// by this package's TestHashParams and by every test that runs the built
// binary (TestDistributed, TestLockoutEndToEnd, TestUp). Call it before any
// hashing starts (TestMain); it panics outside a test binary, so a program
// cannot weaken its hashes through it.
func CheapHashesForTests() {
	if !testing.Testing() {
		panic("user: CheapHashesForTests called outside a test binary")
	}
	hashParams = &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	h, err := argon2id.CreateHash("throwaway password", hashParams)
	if err != nil {
		panic(err)
	}
	unknownUserHash = h
}
