package supervisor_test

import (
	"os"
	"testing"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/leak"
)

// TestMain fails the package when its tests leave a goroutine running. The
// admin password is set here, for the whole test binary, rather than with
// t.Setenv in the tests that supervise children (which read it from the
// environment they inherit): t.Setenv would keep those tests from running
// in parallel.
func TestMain(m *testing.M) {
	if err := os.Setenv("PORTAL_ADMIN_PASSWORD", testenv.AdminPassword); err != nil {
		panic(err)
	}
	leak.VerifyTestMain(m)
}
