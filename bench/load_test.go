package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadBounds: a run stops at its count bound, counts errors apart from
// successes, and records one latency per call.
func TestLoadBounds(t *testing.T) {
	var calls atomic.Int64
	r := load(context.Background(), 4, 10*time.Second, 100, func(context.Context) error {
		if calls.Add(1)%4 == 0 {
			return errors.New("every fourth fails")
		}
		return nil
	})
	if calls.Load() != 100 {
		t.Fatalf("%d calls, want 100 (the count bound)", calls.Load())
	}
	if r.ok != 75 || r.errs != 25 || len(r.lat) != 100 {
		t.Errorf("ok %d, errs %d, latencies %d; want 75, 25, 100", r.ok, r.errs, len(r.lat))
	}
	if r.firstErr != "every fourth fails" || r.conc != 4 {
		t.Errorf("firstErr %q, conc %d", r.firstErr, r.conc)
	}
	if r.elapsed <= 0 || r.elapsed > 5*time.Second {
		t.Errorf("elapsed %v: the count bound, not the time, should end this run", r.elapsed)
	}
}

// TestLoadTime: without a count bound a run ends after its duration, and
// lets the calls in flight finish.
func TestLoadTime(t *testing.T) {
	began := time.Now()
	r := load(context.Background(), 2, 50*time.Millisecond, 0, func(context.Context) error {
		time.Sleep(20 * time.Millisecond) // a slow server
		return nil
	})
	took := time.Since(began)
	if took < 50*time.Millisecond || took > 2*time.Second {
		t.Errorf("run took %v, want about 50-70ms", took)
	}
	if r.ok < 4 || r.errs != 0 || r.ok != len(r.lat) {
		t.Errorf("ok %d errs %d latencies %d", r.ok, r.errs, len(r.lat))
	}
	for _, l := range r.lat {
		if l < 20*time.Millisecond {
			t.Fatalf("latency %v shorter than the call", l)
		}
	}
}

// TestDoStatus: an answer with another status than the wanted one is an
// error that says what came back.
func TestDoStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := newClient(1)
	if err := do(context.Background(), c, request{method: "GET", url: srv.URL + "/me", token: "tok", want: 200}); err != nil {
		t.Errorf("good request: %v", err)
	}
	err := do(context.Background(), c, request{method: "GET", url: srv.URL + "/me", want: 200})
	if err == nil || err.Error() != "GET /me: 401 Unauthorized no token\n" {
		t.Errorf("request without a token: %v", err)
	}
}
