package redisx

import (
	"slices"
	"testing"
)

// TestAddrs: go-micro style addresses become go-redis ones; none gives the
// local default.
func TestAddrs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{"127.0.0.1:6379"}},
		{[]string{"", " "}, []string{"127.0.0.1:6379"}},
		{[]string{"redis://a:1", " b:2 "}, []string{"a:1", "b:2"}},
	} {
		if got := Addrs(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Addrs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestOptionsBounded: every call has a dial and an I/O timeout, and retries
// are few, so that a hung Redis cannot hold a request for go-redis's 12 s.
func TestOptionsBounded(t *testing.T) {
	o := Options([]string{"a:1"})
	if o.DialTimeout <= 0 || o.ReadTimeout <= 0 || o.WriteTimeout <= 0 || o.PoolTimeout <= 0 {
		t.Errorf("unbounded: %+v", o)
	}
	if o.MaxRetries < 1 || o.MaxRetries > 3 {
		t.Errorf("MaxRetries %d", o.MaxRetries)
	}
}
