package portal_test

import (
	"testing"

	"github.com/portal-go/portal/internal/testenv/leak"
	"github.com/portal-go/portal/internal/user"
)

// TestMain makes the in-process Portals hash passwords cheaply (see
// user.CheapHashesForTests: the built binary these tests also run keeps the
// production cost), then fails the package when its tests leave a goroutine
// running.
func TestMain(m *testing.M) {
	user.CheapHashesForTests()
	leak.VerifyTestMain(m)
}
