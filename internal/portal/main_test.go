package portal_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/portal-go/portal/internal/portal"
	"github.com/portal-go/portal/internal/testenv/leak"
	"github.com/portal-go/portal/internal/user"
)

// TestMain makes the in-process Portals hash passwords cheaply (see
// user.CheapHashesForTests: the built binary these tests also run keeps the
// production cost), schedules the parallel tests itself
// (portal.ScheduleParallel), then fails the package when its tests leave a
// goroutine running.
func TestMain(m *testing.M) {
	user.CheapHashesForTests()
	flag.Parse()
	if err := portal.ScheduleParallel(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	leak.VerifyTestMain(m)
}

// parallel is portal.Parallel: every test of the package but the browser
// tests runs in one of its slots.
func parallel(t *testing.T) {
	t.Helper()
	portal.Parallel(t)
}
