package user

import (
	"testing"

	"github.com/portal-go/portal/internal/testenv/leak"
)

// TestMain fails the package when its tests leave a goroutine running.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
