package portal

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestWebCacheChoice: PORTAL_CACHE picks the gateway's cache; "none" keeps
// nothing, so every request reaches the user service; anything else is
// refused at start.
func TestWebCacheChoice(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	for _, tc := range []struct {
		name, want string
		keeps      bool
	}{
		{"", "memory", true},
		{"memory", "memory", true},
		{"none", "none", false},
	} {
		c, err := webCache(ServiceSettings{Cache: tc.name}, log)
		if err != nil {
			t.Fatalf("PORTAL_CACHE=%q: %v", tc.name, err)
		}
		if c.String() != tc.want {
			t.Errorf("PORTAL_CACHE=%q: cache %q, want %q", tc.name, c.String(), tc.want)
		}
		if err := c.Put(ctx, "k", []byte("v"), time.Minute); err != nil {
			t.Fatalf("PORTAL_CACHE=%q: Put: %v", tc.name, err)
		}
		_, _, err = c.Get(ctx, "k")
		if kept := err == nil; kept != tc.keeps {
			t.Errorf("PORTAL_CACHE=%q: Get after Put: %v, want kept=%v", tc.name, err, tc.keeps)
		}
	}
	c, err := webCache(ServiceSettings{Cache: "redis", CacheAddress: "127.0.0.1:1"}, log)
	if err != nil || c == nil {
		t.Fatalf("PORTAL_CACHE=redis: %v", err)
	}
	// The service closes it at the end (the package's leak check sees a
	// client left open).
	if cl, ok := c.(io.Closer); !ok {
		t.Errorf("PORTAL_CACHE=redis: %T cannot be closed", c)
	} else if err := cl.Close(); err != nil {
		t.Errorf("PORTAL_CACHE=redis: Close: %v", err)
	}
	if _, err := webCache(ServiceSettings{Cache: "off"}, log); err == nil {
		t.Error("PORTAL_CACHE=off accepted")
	}
}
